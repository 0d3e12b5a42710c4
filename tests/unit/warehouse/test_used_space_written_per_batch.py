"""The warehouse writes each location's used space once per batch, at its commit, with every put-away and shipment
of the batch counted, and a refused event's change not.

Thousands of orders at once bring hundreds of put-aways into one batch (issue 18); each read and wrote its
location's `used` before. On the warehouse's real processor and a SQLite file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceRuntime

from backflush_warehouse.adapters.tables import locations, stock_units
from backflush_warehouse.app import SERVICE as WAREHOUSE
from backflush_warehouse.layout import apply_layout
from backflush_warehouse.settings import WarehouseSettings
from support.consumed import Record




def directed(order_id: str) -> inv.GoodsDirectedToRacks:
    return inv.GoodsDirectedToRacks(order_id=order_id, item="CHAIR-ERGO", lot=f"L-{order_id}", quantity=Decimal(2),
                                    certificate_id=f"QC-{order_id}")


def final_order(order_id: str) -> o.FinalOrderPlaced:
    return o.FinalOrderPlaced(order_id=order_id, item="CHAIR-ERGO", quantity=Decimal(1), ship_to="1 Road",
                              order_holder="Holder")


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'warehouse.db'}"
    await upgrade_to_head_async(url, WAREHOUSE.migrations)
    runtime = ServiceRuntime.create(WAREHOUSE, WarehouseSettings(service="warehouse", database_url=url,
                                                                 racks="DC-A1=100", bootstrap_servers="127.0.0.1:9"))
    await apply_layout(runtime)
    try:
        yield runtime
    finally:
        await runtime.database.close()


async def apply(runtime: ServiceRuntime, *events: Event) -> Any:
    assert runtime.processor is not None
    return await runtime.processor.process([Record.of_event(e, n) for n, e in enumerate(events)])


async def used_and_stored(runtime: ServiceRuntime) -> tuple[Decimal, Decimal]:
    async with runtime.database.reading() as session:
        used = (await session.execute(select(locations.c.used).where(locations.c.code == "DC-A1"))).scalar_one()
        stored = (await session.execute(select(stock_units.c.quantity)
                                        .where(stock_units.c.status == "stored"))).scalars().all()
    return Decimal(used), sum(stored, Decimal(0))


async def test_the_put_aways_of_a_batch_write_their_locations_used_space_once(runtime: ServiceRuntime) -> None:
    assert runtime.database.sqlite_engine is not None
    writes: list[str] = []

    def count_writes(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE LOCATIONS"):
            writes.append(statement)

    event.listen(runtime.database.sqlite_engine, "before_cursor_execute", count_writes)
    try:
        result = await apply(runtime, directed("A"), directed("B"), directed("C"))
    finally:
        event.remove(runtime.database.sqlite_engine, "before_cursor_execute", count_writes)

    assert result.applied == 3
    assert len(writes) == 1, writes
    assert await used_and_stored(runtime) == (Decimal(6), Decimal(6))


async def test_an_event_refused_in_a_batch_leaves_the_space_the_others_took(runtime: ServiceRuntime) -> None:
    """The refusal reruns the batch with a savepoint per event and drops what the unit of work kept: the space the
    other put-aways took is written all the same, exactly once."""
    result = await apply(runtime, directed("A"), final_order("NOTHING-STORED"), directed("C"))

    assert (result.applied, result.refused) == (2, 1)
    assert await used_and_stored(runtime) == (Decimal(4), Decimal(4))
