"""The warehouse reads the rows of a batch's orders once per batch, and a batch ends as if its events had been
applied one batch each.

Thousands of orders at once bring hundreds of events into one batch (issue 18); each read its order's shipment,
cancellations, stock order and units with statements of its own before. Now the service's `load_batch` reads them
for every order of the batch at once, under the storage lock, and every write of the batch updates or forgets what
it changes: a stale row would ship twice, put away goods of a cancelled order, or sign twice. On the warehouse's
real processor and SQLite files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.common import Flow, OrderProcessingInfo
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceRuntime

from backflush_warehouse.app import SERVICE as WAREHOUSE
from backflush_warehouse.layout import apply_layout
from backflush_warehouse.settings import WarehouseSettings
from support.consumed import Record

ITEM = "CHAIR-ERGO"
SIGNED_AT = datetime(2030, 1, 1, tzinfo=UTC)
ORDER_TABLES = ("stock_units", "shipments", "cancelled_orders", "cancelled_lots", "stock_orders", "finished_stock")




def directed(order_id: str, lot: str | None = None) -> inv.GoodsDirectedToRacks:
    return inv.GoodsDirectedToRacks(order_id=order_id, item=ITEM, lot=lot or f"L-{order_id}", quantity=Decimal(2),
                                    certificate_id=f"QC-{order_id}")


def turned_over(order_id: str, lot: str | None = None) -> inv.GoodsTurnedOver:
    return inv.GoodsTurnedOver(order_id=order_id, item=ITEM, lot=lot or f"L-{order_id}", quantity=Decimal(2),
                               owner="manufacturer")


def final_order(order_id: str) -> o.FinalOrderPlaced:
    return o.FinalOrderPlaced(order_id=order_id, item=ITEM, quantity=Decimal(2), ship_to="1 Road",
                              order_holder="Holder")


def called_off(order_id: str) -> o.RackedGoodsCalledOff:
    return o.RackedGoodsCalledOff(order_id=order_id, order_holder="Holder", ship_to="1 Road")


def signed(order_id: str) -> c.DeliverySigned:
    return c.DeliverySigned(order_id=order_id, signed_by="Holder", signed_at=SIGNED_AT)


def cancelled(order_id: str) -> o.OrderCancelled:
    return o.OrderCancelled(order_id=order_id, reason="holder changed their mind", stage="in production")


def completion_cancelled(order_id: str, lot: str) -> c.CompletionCancelled:
    return c.CompletionCancelled(order_id=order_id, completion_id=f"C-{lot}", item=ITEM, lot=lot,
                                 quantity=Decimal(2), cumulative_quantity=Decimal(0), order_quantity=Decimal(2))


def stocked(run_id: str, quantity: int) -> inv.FinishedGoodsStocked:
    return inv.FinishedGoodsStocked(run_id=run_id, item=ITEM, lot=f"L-{run_id}", quantity=Decimal(quantity))


def stock_order(order_id: str, quantity: int) -> o.OrderForwarded:
    return o.OrderForwarded(order_id=order_id, flow=Flow.STOCK, item=ITEM, quantity=Decimal(quantity),
                            processing=OrderProcessingInfo(order_holder="Holder", ship_to="1 Road",
                                                           due_date=date(2030, 1, 1)))


def stock_cancel(order_id: str) -> o.StockOrderCancellationRequested:
    return o.StockOrderCancellationRequested(order_id=order_id, reason="no longer needed", requested_by="Holder")


async def _runtime(path: Path) -> ServiceRuntime:
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_to_head_async(url, WAREHOUSE.migrations)
    runtime = ServiceRuntime.create(WAREHOUSE, WarehouseSettings(
        service="warehouse", database_url=url, racks="DC-A1=6,DC-A2=100", consignment_locations="CS-1=100",
        bootstrap_servers="127.0.0.1:9"))
    await apply_layout(runtime)
    return runtime


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[ServiceRuntime, ServiceRuntime]]:
    """Two warehouses: one is given a batch at once, the other each of its events in a batch of its own."""
    together, apart = await _runtime(tmp_path / "together.db"), await _runtime(tmp_path / "apart.db")
    try:
        yield together, apart
    finally:
        await together.database.close()
        await apart.database.close()


_offsets: dict[int, int] = {}


async def apply(runtime: ServiceRuntime, events: Sequence[Event]) -> tuple[int, int]:
    assert runtime.processor is not None
    start = _offsets.get(id(runtime), 0)
    _offsets[id(runtime)] = start + len(events)
    result = await runtime.processor.process([Record.of_event(e, start + n) for n, e in enumerate(events)])
    return result.applied, result.refused


async def state(runtime: ServiceRuntime) -> dict[str, list[Any]]:
    """What the warehouse holds and said, with nothing that depends on when or in which batch it happened."""
    queries = {
        "units": "SELECT order_id, item, lot, location, kind, quantity, owner, status FROM stock_units "
                 "ORDER BY order_id, lot, location, status, quantity",
        "used": "SELECT code, used FROM locations ORDER BY code",
        "shipments": "SELECT order_id, quantity, lots, signed_by FROM shipments ORDER BY order_id",
        "cancelled": "SELECT order_id FROM cancelled_orders ORDER BY order_id",
        "cancelled_lots": "SELECT order_id, lot FROM cancelled_lots ORDER BY order_id, lot",
        "waiting": "SELECT order_id, lot, quantity FROM waiting_put_aways ORDER BY id",
        "stock_orders": "SELECT order_id, shipped, status FROM stock_orders ORDER BY order_id",
        "finished_stock": "SELECT run_id, status FROM finished_stock ORDER BY run_id",
        "transfers": "SELECT order_id, lot, quantity, from_owner, to_owner FROM ownership_transfers "
                     "ORDER BY order_id, lot",
        "outbox": "SELECT correlation_id, event_type FROM outbox ORDER BY id",
    }
    async with runtime.database.reading() as session:
        return {name: [tuple(str(v) for v in row) for row in (await session.execute(text(sql))).all()]
                for name, sql in queries.items()}


async def same_together_as_apart(two: tuple[ServiceRuntime, ServiceRuntime], before: Sequence[Event],
                                 batch: Sequence[Event]) -> dict[str, list[Any]]:
    together, apart = two
    for runtime in two:
        await apply(runtime, before)
    applied_together = await apply(together, batch)
    applied_apart = [0, 0]
    for one in batch:
        applied, refused = await apply(apart, [one])
        applied_apart[0] += applied
        applied_apart[1] += refused
    assert applied_together == tuple(applied_apart)
    held = await state(together)
    assert held == await state(apart)
    return held


async def test_a_batch_reads_its_orders_rows_in_a_few_statements_whatever_its_size(tmp_path: Path) -> None:
    runtime = await _runtime(tmp_path / "warehouse.db")
    try:
        await apply(runtime, [turned_over(f"POST-{n}") for n in range(20)])
        engine = runtime.database.sqlite_engine
        assert engine is not None
        reads: list[str] = []

        def count_reads(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            head = statement.lstrip()[:6].upper()
            if head == "SELECT" and any(f"FROM {table}" in statement for table in ORDER_TABLES):
                reads.append(statement)

        event.listen(engine, "before_cursor_execute", count_reads)
        try:
            applied, refused = await apply(runtime, [directed(f"PRE-{n}") for n in range(20)]
                                           + [final_order(f"POST-{n}") for n in range(10)])
        finally:
            event.remove(engine, "before_cursor_execute", count_reads)
        assert (applied, refused) == (30, 0)
        # one statement per table for the whole batch (was three per put-away and two per final order)
        assert len(reads) <= len(ORDER_TABLES), reads
    finally:
        await runtime.database.close()


async def test_a_put_away_after_its_orders_cancel_in_the_same_batch_is_not_stored(
        two: tuple[ServiceRuntime, ServiceRuntime]) -> None:
    held = await same_together_as_apart(two, [directed("A"), turned_over("B", lot="L-B1")], [
        cancelled("A"), directed("A", lot="L-A2"),  # the order cancelled, then more of its goods arrive
        completion_cancelled("B", "L-B2"), turned_over("B", lot="L-B2"),  # a lot cancelled, then its goods arrive
        cancelled("C"), directed("C"),  # an order cancelled before anything of it arrived
    ])
    assert [u[:3] + u[-1:] for u in held["units"]] == [
        ("A", ITEM, "L-A", "released"), ("B", ITEM, "L-B1", "stored")]


async def test_a_shipment_then_its_signature_in_the_same_batch_ship_and_sign_once(
        two: tuple[ServiceRuntime, ServiceRuntime]) -> None:
    held = await same_together_as_apart(two, [turned_over("POST"), directed("PRE")], [
        final_order("POST"), final_order("POST"), signed("POST"), signed("POST"),
        called_off("PRE"), called_off("PRE"), signed("PRE"), signed("PRE"),
        cancelled("PRE"),  # refused: shipped and signed for
    ])
    assert held["shipments"] == [("POST", "2", '["L-POST"]', "Holder"), ("PRE", "2", '["L-PRE"]', "Holder")]
    assert {u[-1] for u in held["units"]} == {"delivered"}
    assert len(held["transfers"]) == 2


async def test_a_refused_event_leaves_the_rest_of_its_batch_as_if_applied_alone(
        two: tuple[ServiceRuntime, ServiceRuntime]) -> None:
    await same_together_as_apart(two, [turned_over("V"), directed("FULL")], [
        directed("Z"), final_order("NOTHING-STORED"),  # refused: the batch runs again, a savepoint per event
        cancelled("Z"), directed("Z", lot="L-Z2"), final_order("V"), signed("V"), final_order("V"),
        signed("NEVER-SHIPPED"),  # refused too
        directed("W"), called_off("W"), signed("W"),
    ])


async def test_stock_sales_in_one_batch_serve_sign_and_refuse_cancels_as_apart(
        two: tuple[ServiceRuntime, ServiceRuntime]) -> None:
    held = await same_together_as_apart(two, [stocked("RUN-1", 3)], [
        stock_order("S1", 2), signed("S1"), stock_cancel("S1"),  # shipped and signed: its cancel is refused
        cancelled("RUN-1"),  # what is left of the run's lot after S1 took its part leaves storage
        stock_order("S2", 2),  # waits: one unit left
        stocked("RUN-2", 4),  # S2 served from it
        signed("S2"), stock_cancel("S3"), stock_order("S3", 1),  # cancelled before it arrived: never served
        # refused: allocated to S2
        inv.FinishedStockWithdrawalRequested(run_id="RUN-2", item=ITEM, lot="L-RUN-2", quantity=Decimal(4)),
    ])
    assert held["stock_orders"] == [("S1", "2", "shipped"), ("S2", "2", "shipped")]
