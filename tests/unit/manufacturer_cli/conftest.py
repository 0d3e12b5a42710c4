"""The root `backflush` app with every service's commands, and a manufacturer database seeded from the sample data.

The database is filled the way the running manufacturer fills it: each event is encoded into a Kafka record and
applied by the service's own batch processor (inbox, handlers, outbox), only without a broker. The story:

- the sample master data (items, BOMs, plans, policies, initial stock);
- SO-PRE-1: pre-product, 10 CHAIR-ERGO. The quality check passes, the pre lines flush at release, the post lines
  at the completion that follows, into finished lot SO-PRE-1-1 (this is the flush with genealogy);
- SO-POST-1: post-product, 20 CHAIR-ERGO: pre lines flush at release (20 x 1.02 = 20.4 -> 21 BASE-STAR-5 and
  21 GAS-LIFT-100; no finished lot exists yet, so no genealogy), then a partial completion of 8 flushes its post
  lines into lot SO-POST-1-C8 (8 x 1.02 x 5 x 1.03 = 42.024 -> 43 CASTOR-50, 8 x 8.4 + 8.16 x 4 = 99.84 -> 100
  SCREW-M6);
- SO-POST-2: post-product, 40 CHAIR-ERGO: its release needs 41 BASE-STAR-5 (40.8 rounded up) while
  60 - 11 - 21 = 28 are left, so the release flush parks whole (entry 1 of the exception queue);
- a receipt of 13 BASE-STAR-5 in lot BS-1102 makes 41: entry 1 posts (FIFO: all 28 of BS-1001, then all 13 of
  BS-1102, which leaves both lots empty) and SO-POST-2 is released;
- SO-POST-3: post-product, 5 CHAIR-ERGO: its release needs 6 BASE-STAR-5 (5.1 up), none is left: entry 2 waits.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from backflush_manufacturer.app import SERVICE
from backflush_manufacturer.master_data_events import events_from
from backflush_manufacturer.master_data_files import load_master_data
from backflush_manufacturer.settings import ManufacturerSettings
from backflush_shared import cli as root_cli
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.common import Flow, OrderProcessingInfo
from backflush_shared.contracts.completions import CompletionReported
from backflush_shared.contracts.master_data import ComponentsReceived
from backflush_shared.contracts.orders import OrderForwarded
from backflush_shared.messaging.codec import encode
from backflush_shared.messaging.publish import envelope_for, source_for
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceRuntime
from support.consumed import Record

SAMPLE_DATA = Path(__file__).resolve().parents[3] / "services" / "manufacturer" / "sample_data"

# Wide enough that rich never wraps or truncates a table cell the tests look for.
WIDE = {"COLUMNS": "250"}


@pytest.fixture(scope="session")
def cli_app() -> typer.Typer:
    """The root app with the shared and service commands, registered once however many tests ask for it."""
    root_cli.register_commands()
    return root_cli.app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()




_offsets = itertools.count()


async def feed(runtime: ServiceRuntime, events: Sequence[Event]) -> None:
    """Apply events through the service's batch processor, one batch; nothing may be refused."""
    assert runtime.processor is not None
    records = []
    for event in events:
        source = source_for(event, otherwise="/backflush/tests")  # a service topic's events come from its writer
        encoded = encode(event, envelope_for(event, source), runtime.topics(event.topic))
        records.append(Record.of(encoded, next(_offsets)))
    result = await runtime.processor.process(records)
    assert result.dead_lettered == 0, result


def _order(order_id: str, flow: Flow, quantity: int) -> OrderForwarded:
    return OrderForwarded(
        order_id=order_id, flow=flow, item="CHAIR-ERGO", quantity=Decimal(quantity),
        processing=OrderProcessingInfo(order_holder="Acme Offices", ship_to="Main Street 1",
                                       due_date=date(2030, 1, 31)),
    )


async def seed(url: str) -> None:
    await upgrade_to_head_async(url, SERVICE.migrations)
    settings = ManufacturerSettings(service="manufacturer", database_url=url, negative_stock_policy="park")
    runtime = ServiceRuntime.create(SERVICE, settings)
    try:
        await feed(runtime, events_from(load_master_data(SAMPLE_DATA)))
        await feed(runtime, [_order("SO-PRE-1", Flow.PRE, 10), _order("SO-POST-1", Flow.POST, 20)])
        await feed(runtime, [CompletionReported(order_id="SO-POST-1", quantity=Decimal(8), reported_by="line 2")])
        await feed(runtime, [_order("SO-POST-2", Flow.POST, 40)])
        await feed(runtime, [ComponentsReceived(receipt_id="R-1102", item="BASE-STAR-5", lot="BS-1102",
                                                quantity=Decimal(13))])
        await feed(runtime, [_order("SO-POST-3", Flow.POST, 5)])
    finally:
        await runtime.database.close()


@pytest.fixture(scope="module")
def sample_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a SQLite manufacturer database holding the story above (read-only for the tests)."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('manufacturer') / 'manufacturer.db'}"
    asyncio.run(seed(url))
    yield url
