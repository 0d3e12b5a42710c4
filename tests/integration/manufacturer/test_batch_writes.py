"""A batch of many orders' events writes each production order and the ledger's movements once per batch, and a
refused event in a batch takes only its own effects with it.

When thousands of orders run at once their events come in batches of hundreds: one INSERT or UPDATE of an order,
one INSERT of movements and one SELECT of an order per event cost more CPU than the flush itself (issue 18).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from support.manufacturer_feed import apply, feed, order, rows

from backflush_manufacturer.app import SERVICE
from backflush_manufacturer.settings import ManufacturerSettings
from backflush_shared.contracts.completions import CompletionReported
from backflush_shared.contracts.master_data import BomDefined, BomLineDefinition, ComponentsReceived, ItemDefined
from backflush_shared.service import ServiceRuntime

CATALOGUE = [
    ItemDefined(item="LEG", unit="pcs", decimals=0),
    ItemDefined(item="TOP", unit="pcs", decimals=0),
    ItemDefined(item="DESK", unit="pcs", decimals=0),
    BomDefined(parent="DESK", lines=[BomLineDefinition(component="LEG", quantity_per=Decimal(4), flush="pre"),
                                     BomLineDefinition(component="TOP", quantity_per=Decimal(1), flush="post")]),
    ComponentsReceived(receipt_id="R-LEG", item="LEG", lot="LEG-1", quantity=Decimal(1000)),
    ComponentsReceived(receipt_id="R-TOP", item="TOP", lot="TOP-1", quantity=Decimal(1000)),
]


@contextmanager
def statements() -> Iterator[list[str]]:
    """The SQL statements sent to the database meanwhile (an executemany counts once)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()).upper())

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _touching(seen: list[str], start: str) -> int:
    return sum(1 for statement in seen if statement.startswith(start))


async def test_a_batch_of_many_orders_reads_and_writes_their_orders_lots_and_movements_once_per_batch(
        database_url: str) -> None:
    await feed(database_url, CATALOGUE)
    runtime = ServiceRuntime.create(SERVICE, ManufacturerSettings(service="manufacturer", database_url=database_url))
    try:
        forwarded = [order(f"PO-{n}", "DESK", 1) for n in range(10)]
        completed = [CompletionReported(order_id=f"PO-{n}", quantity=Decimal(1)) for n in range(10)]
        with statements() as seen:
            await apply(runtime, forwarded + completed)
    finally:
        await runtime.database.close()

    assert _touching(seen, "INSERT INTO PRODUCTION_ORDERS") == 1
    assert _touching(seen, "UPDATE PRODUCTION_ORDERS") <= 1
    assert sum(1 for s in seen if s.startswith("SELECT") and "FROM PRODUCTION_ORDERS" in s) == 1
    assert _touching(seen, "INSERT INTO LEDGER_MOVEMENTS") == 1
    assert _touching(seen, "INSERT INTO FINISHED_LOTS") == 1
    assert sum(1 for s in seen if s.startswith("SELECT") and "FROM FINISHED_LOTS" in s
               and "FINISHED_LOTS.LOT =" not in s) == 1  # (a completion's lot name checked against every lot ever)
    # and what they wrote is all there: every order completed, its two flushes and its lot in the ledger
    assert await rows(database_url, "SELECT status, completed, COUNT(*) FROM production_orders GROUP BY 1, 2") == [
        ("completed", "1", 10)]
    assert await rows(database_url, "SELECT reason, SUM(CAST(quantity AS INTEGER)) FROM ledger_movements "
                                    "GROUP BY reason ORDER BY reason") == [
        ("backflush", -50), ("production_receipt", 10), ("receipt", 2000)]


async def test_an_event_refused_in_a_batch_leaves_the_other_events_orders_and_movements_written(
        database_url: str) -> None:
    """The refusal makes the batch run again with a savepoint per event; the others' writes must not go with the
    refused event's (a buffer dropped with its savepoint would take them along)."""
    await feed(database_url, CATALOGUE)
    await feed(database_url, [
        order("PO-A", "DESK", 1),
        CompletionReported(order_id="PO-A", quantity=Decimal(1)),
        CompletionReported(order_id="PO-UNKNOWN", quantity=Decimal(1)),  # refused: no such production order
        order("PO-B", "DESK", 2),
        CompletionReported(order_id="PO-B", quantity=Decimal(1)),
    ], dead_letters=1)

    assert await rows(database_url, "SELECT order_id, status, completed FROM production_orders ORDER BY 1") == [
        ("PO-A", "completed", "1"), ("PO-B", "in-production", "1")]
    assert await rows(database_url, "SELECT production_order, item, SUM(CAST(quantity AS INTEGER)) "
                                    "FROM ledger_movements WHERE production_order IS NOT NULL "
                                    "GROUP BY 1, 2 ORDER BY 1, 2") == [
        ("PO-A", "DESK", 1), ("PO-A", "LEG", -4), ("PO-A", "TOP", -1),
        ("PO-B", "DESK", 1), ("PO-B", "LEG", -8), ("PO-B", "TOP", -1)]
    assert await rows(database_url, "SELECT order_id, lot FROM finished_lots ORDER BY 1") == [
        ("PO-A", "PO-A-C1"), ("PO-B", "PO-B-C1")]
