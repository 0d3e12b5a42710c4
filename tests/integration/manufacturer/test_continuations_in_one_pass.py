"""Several parked flushes freed by one event: each posted flush's follow-on step runs in turn, and a later one must not
undo what an earlier one's nested reprocessing did.

A small catalogue worked by hand: SUB is made to stock from 1 WIRE (post); LAMP takes 1 WIRE at release (pre) and
1 SUB at its completion (post). No WIRE and no SUB in stock at first.
"""

from __future__ import annotations

from decimal import Decimal

from support.manufacturer_feed import emitted, feed, order, rows

from backflush_shared.contracts.completions import CompletionReported
from backflush_shared.contracts.master_data import (
    BomDefined,
    BomLineDefinition,
    ComponentsReceived,
    ItemDefined,
    StockProductionOrderPlaced,
)


def lamp_catalogue() -> list[ItemDefined | BomDefined]:
    return [
        ItemDefined(item="WIRE", unit="pcs", decimals=0, description="Cable"),
        ItemDefined(item="SUB", unit="pcs", decimals=0, description="Wired socket (made to stock)"),
        ItemDefined(item="LAMP", unit="pcs", decimals=0, description="Desk lamp"),
        BomDefined(parent="SUB", lines=[BomLineDefinition(component="WIRE", quantity_per=Decimal(1), flush="post")]),
        BomDefined(parent="LAMP", lines=[BomLineDefinition(component="WIRE", quantity_per=Decimal(1), flush="pre"),
                                         BomLineDefinition(component="SUB", quantity_per=Decimal(1), flush="post")]),
    ]


async def test_an_order_completed_by_a_nested_pass_is_not_set_back_to_released_by_its_release(
        database_url: str) -> None:
    """MTS-1 (1 SUB, to stock) reports its completion: it parks (no WIRE). L-1 (1 LAMP) parks its release (no WIRE)
    and its completion queues behind it. 2 WIRE arrive: one pass posts MTS-1's completion and L-1's release; L-1's
    completion still waits (no SUB yet). MTS-1's lot of SUB is received and its reprocessing posts L-1's completion:
    L-1 is completed. L-1's release was posted first, but its follow-on step runs after: it must not set L-1 back
    to `released` with its 1 lamp produced."""
    await feed(database_url, lamp_catalogue())
    await feed(database_url, [StockProductionOrderPlaced(order_id="MTS-1", item="SUB", quantity=Decimal(1))])
    await feed(database_url, [CompletionReported(order_id="MTS-1", quantity=Decimal(1), make_to_stock=True)])
    await feed(database_url, [order("L-1", "LAMP", 1)])
    await feed(database_url, [CompletionReported(order_id="L-1", quantity=Decimal(1))])
    assert await rows(database_url, "SELECT order_id, step, status FROM parked_flushes ORDER BY id") == [
        ("MTS-1", "completion", "waiting"), ("L-1", "release", "waiting"), ("L-1", "completion", "waiting")]

    await feed(database_url, [ComponentsReceived(receipt_id="R-W", item="WIRE", lot="W-1", quantity=Decimal(2))])

    assert await rows(database_url, "SELECT order_id, step, status FROM parked_flushes ORDER BY id") == [
        ("MTS-1", "completion", "posted"), ("L-1", "release", "posted"), ("L-1", "completion", "posted")]
    assert await rows(database_url, "SELECT order_id, status, completed FROM production_orders ORDER BY order_id") \
        == [("L-1", "completed", "1"), ("MTS-1", "closed", "1")]
    [done] = [e for e in await emitted(database_url, "backflush.completion.production-completed")
              if e["order_id"] == "L-1"]
    assert done["cumulative_quantity"] == "1"
