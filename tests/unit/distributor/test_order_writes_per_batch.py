"""The distributor writes each order a batch moves once, at the batch's commit, with what its last event left.

Thousands of orders at once bring many events of one order in one batch (issue 18); each of them wrote the order's
row again before. The rows are now buffered in the batch's unit of work and written together just before the
commit, without changing what is stored: a refused event still takes only its own effects with it.

On the distributor's real processor and a SQLite file.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import event, select

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.common import RackPlacement
from backflush_shared.service import ServiceRuntime

from backflush_distributor.adapters import repository
from backflush_distributor.adapters.tables import order_transitions
from support.consumed import Record


def placed(order_id: str) -> o.OrderPlaced:
    return o.OrderPlaced(order_id=order_id, order_holder="Batch Ltd", flow="pre", item="CHAIR-ERGO",
                         quantity=Decimal(1), ship_to="1 Batch Road", due_date=dt.date(2030, 1, 1))


def inspected(order_id: str) -> c.QualityInspectionRecorded:
    return c.QualityInspectionRecorded(order_id=order_id, item="CHAIR-ERGO", passed=True, inspected_by="QA")


def racked(order_id: str) -> inv.GoodsRacked:
    return inv.GoodsRacked(order_id=order_id, item="CHAIR-ERGO", lot="L-1",
                           placements=[RackPlacement(location="DC-A1", quantity=Decimal(1))])


async def apply(runtime: ServiceRuntime, *events: Event, first_offset: int) -> Any:
    assert runtime.processor is not None
    return await runtime.processor.process([Record.of_event(e, first_offset + n) for n, e in enumerate(events)])


async def milestones(runtime: ServiceRuntime, order_id: str) -> tuple[bool, bool]:
    async with runtime.database.reading() as session:
        row = await repository.load(session, order_id)
    assert row is not None
    return row.order.milestones.quality_passed, row.order.milestones.racked


async def test_orders_moved_by_several_events_of_a_batch_are_written_in_one_statement_with_their_last_state(
    runtime: ServiceRuntime,
) -> None:
    await apply(runtime, placed("A"), placed("B"), first_offset=0)
    assert runtime.database.sqlite_engine is not None
    writes: list[str] = []

    def count_writes(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("UPDATE ORDERS", "INSERT INTO ORDERS ")):
            writes.append(statement)

    event.listen(runtime.database.sqlite_engine, "before_cursor_execute", count_writes)
    try:
        result = await apply(runtime, inspected("A"), racked("A"), inspected("B"), first_offset=10)
    finally:
        event.remove(runtime.database.sqlite_engine, "before_cursor_execute", count_writes)

    assert result.applied == 3
    assert len(writes) == 1, writes  # one executemany for both orders, three events
    assert await milestones(runtime, "A") == (True, True)
    assert await milestones(runtime, "B") == (True, False)
    async with runtime.database.reading() as session:
        moves = (await session.execute(select(order_transitions.c.order_id, order_transitions.c.state)
                                       .order_by(order_transitions.c.id))).all()
    assert [tuple(m) for m in moves][2:] == [("A", "quality-checked"), ("A", "racked"), ("B", "quality-checked")]


async def test_an_event_refused_in_a_batch_leaves_the_order_writes_of_the_events_before_and_after_it(
    runtime: ServiceRuntime,
) -> None:
    """The refusal reruns the batch with a savepoint per event and drops what the unit of work kept: the orders
    the other events moved are written all the same, and an order placed in the batch is there for its next event."""
    await apply(runtime, placed("A"), first_offset=0)

    result = await apply(runtime, inspected("A"), placed("C"), racked("NEVER-PLACED"), racked("A"), inspected("C"),
                         first_offset=10)

    assert (result.applied, result.refused) == (4, 1)
    assert await milestones(runtime, "A") == (True, True)
    assert await milestones(runtime, "C") == (True, False)


async def test_an_order_placed_again_in_the_batch_that_placed_it_is_recognised_as_the_same_order(
    runtime: ServiceRuntime,
) -> None:
    """Its row is not written yet when the second placement (a producer's retry, a new event id) is applied."""
    result = await apply(runtime, placed("A"), placed("A"), inspected("A"), first_offset=0)

    assert (result.applied, result.refused) == (3, 0)
    assert await milestones(runtime, "A") == (True, False)
