"""Feeding events to the manufacturer the way the running service applies them, without a broker.

Each event is encoded into a Kafka record and applied by the service's own batch processor (inbox, handlers,
outbox) on a database of the test's own; the events the service emits are read back from its outbox.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from backflush_manufacturer.app import SERVICE
from backflush_manufacturer.settings import ManufacturerSettings
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.common import Flow, OrderProcessingInfo
from backflush_shared.contracts.orders import OrderForwarded
from backflush_shared.messaging.codec import encode
from backflush_shared.messaging.publish import envelope_for, source_for
from backflush_shared.persistence.database import Database
from backflush_shared.service import ServiceRuntime
from support.consumed import Record

SAMPLE_DATA = Path(__file__).resolve().parents[2] / "services" / "manufacturer" / "sample_data"




_offsets = itertools.count(10_000)


async def feed(url: str, events: Sequence[Event], *, policy: str = "park", dead_letters: int = 0) -> None:
    """Apply `events` in one batch; exactly `dead_letters` of them must be dead-lettered."""
    settings = ManufacturerSettings(service="manufacturer", database_url=url, negative_stock_policy=policy)
    runtime = ServiceRuntime.create(SERVICE, settings)
    try:
        await apply(runtime, events, dead_letters=dead_letters)
    finally:
        await runtime.database.close()


async def apply(runtime: ServiceRuntime, events: Sequence[Event], *, dead_letters: int = 0) -> None:
    """Apply `events` in one batch through any service's own batch processor."""
    assert runtime.processor is not None
    records = []
    for event in events:
        source = source_for(event, otherwise="/backflush/tests")  # a service topic's events come from its writer
        encoded = encode(event, envelope_for(event, source), runtime.topics(event.topic))
        records.append(Record.of(encoded, next(_offsets)))
    result = await runtime.processor.process(records)
    assert result.dead_lettered == dead_letters, result


def order(order_id: str, item: str, quantity: int | str, flow: Flow = Flow.POST) -> OrderForwarded:
    return OrderForwarded(order_id=order_id, flow=flow, item=item, quantity=Decimal(quantity),
                          processing=OrderProcessingInfo(order_holder="Acme Offices", ship_to="Main Street 1",
                                                         due_date=date(2030, 1, 31)))


async def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    database = Database(url)
    try:
        async with database.reading() as session:
            return [tuple(row) for row in (await session.execute(text(sql))).all()]
    finally:
        await database.close()


async def emitted(url: str, event_type: str) -> list[dict[str, object]]:
    """The payloads of the events of one type the manufacturer emitted (its outbox), in order."""
    found = []
    for (value,) in await rows(url, f"SELECT value FROM outbox WHERE event_type = '{event_type}' ORDER BY id"):
        raw = json.loads(value if isinstance(value, str) else bytes(value).decode())
        found.append(raw.get("data", raw) if isinstance(raw, dict) else raw)
    return found


async def dead_letter_reasons(url: str) -> list[str]:
    """The reasons of the dead letters the manufacturer wrote (its outbox), in order."""
    reasons = []
    for (headers,) in await rows(url, "SELECT headers FROM outbox ORDER BY id"):
        named = {name: base64.b64decode(value).decode() for name, value in json.loads(str(headers))}
        if "dlq_error_message" in named:
            reasons.append(named["dlq_error_message"])
    return reasons
