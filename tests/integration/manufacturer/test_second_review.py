"""Issue 15, second review: behaviours a planner or the shop floor would hit, each worked by hand on the sample data
(services/manufacturer/sample_data: 40 SEAT-ASSY in stock, 60 BASE-STAR-5, 80 GAS-LIFT-100; a chair's release takes
1.02 x its quantity of bases and gas lifts, rounded up; its completion takes one SEAT-ASSY per chair).
"""

from __future__ import annotations

from decimal import Decimal

from support.manufacturer_feed import SAMPLE_DATA, dead_letter_reasons, emitted, feed, order, rows

from backflush_manufacturer.master_data_events import events_from
from backflush_manufacturer.master_data_files import load_master_data
from backflush_shared.contracts.common import Flow
from backflush_shared.contracts.completions import CompletionReported
from backflush_shared.contracts.master_data import ComponentsReceived, ItemDefined, StockProductionOrderPlaced


def seat_assembly_policy(policy: str) -> ItemDefined:
    return ItemDefined(item="SEAT-ASSY", unit="pcs", decimals=0, negative_stock_policy=policy,
                       description="Upholstered seat assembly (stocked subassembly)")


async def test_a_flush_released_by_a_rejected_pre_orders_reversal_posts_once(database_url: str) -> None:
    """PRE-A (pre, 50 chairs) releases (51 bases) and parks its completion (50 SEAT-ASSY, 40 in stock). Y-1 (5 chairs)
    releases (6 bases of the 9 left) and its completion of 5 queues behind PRE-A for SEAT-ASSY. SEAT-ASSY turns
    `reject`: PRE-A's completion is refused (the order rejected, its 51 bases given back) and Y-1's completion posts,
    once: 5 SEAT-ASSY taken, one finished lot of 5."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("PRE-A", "CHAIR-ERGO", 50, Flow.PRE)])
    await feed(database_url, [order("Y-1", "CHAIR-ERGO", 5)])
    await feed(database_url, [CompletionReported(order_id="Y-1", quantity=Decimal(5))])
    assert await rows(database_url, "SELECT order_id, step, status FROM parked_flushes ORDER BY id") == [
        ("PRE-A", "completion", "waiting"), ("Y-1", "completion", "waiting")]
    await feed(database_url, [seat_assembly_policy("reject")])
    assert await rows(database_url, "SELECT order_id, status, completed FROM production_orders ORDER BY order_id") \
        == [("PRE-A", "rejected", "0"), ("Y-1", "completed", "5")]
    assert await rows(database_url, "SELECT sum(CAST(quantity AS NUMERIC)) FROM ledger_movements "
                                    "WHERE item = 'SEAT-ASSY' AND production_order = 'Y-1'") == [(-5,)]
    assert await rows(database_url, "SELECT lot, quantity FROM finished_lots WHERE order_id = 'Y-1'") == [
        ("Y-1-C5", "5")]
    assert len(await emitted(database_url, "backflush.completion.production-completed")) == 1


async def test_a_closed_stock_order_placed_again_under_its_id_is_refused_loudly(database_url: str) -> None:
    """MTS-1 made its 20 seats and closed. The planner places MTS-1 for 20 again (another batch): it is not a
    redelivery (that is skipped by its event id) but a new order under a taken id, so it is refused with the
    reason, not silently ignored with nothing made."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [StockProductionOrderPlaced(order_id="MTS-1", item="SEAT-ASSY", quantity=Decimal(20))])
    await feed(database_url, [CompletionReported(order_id="MTS-1", quantity=Decimal(20), make_to_stock=True)])
    assert await rows(database_url, "SELECT status FROM production_orders") == [("closed",)]
    await feed(database_url, [StockProductionOrderPlaced(order_id="MTS-1", item="SEAT-ASSY", quantity=Decimal(20))],
               dead_letters=1)
    [reason] = await dead_letter_reasons(database_url)
    assert "MTS-1" in reason and "closed" in reason, reason


async def test_a_stock_order_refused_at_release_is_not_announced_to_the_distributor(database_url: str) -> None:
    """MTS-R for 200 seats needs 202 SEAT-SHELL (120 in stock) at release, and SEAT-SHELL is `reject`: the order is
    rejected with the reason, shown in the production orders. No `ProductionOrderRejected` goes out on `completions`: the distributor
    knows customer orders only, and would dead-letter it as an unknown order (or file it under a customer order of
    the same id)."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [ItemDefined(item="SEAT-SHELL", unit="pcs", decimals=0, negative_stock_policy="reject",
                                          description="Polypropylene seat shell")])
    await feed(database_url, [StockProductionOrderPlaced(order_id="MTS-R", item="SEAT-ASSY", quantity=Decimal(200))])
    [(status, reason)] = await rows(database_url, "SELECT status, reason FROM production_orders")
    assert status == "rejected" and "SEAT-SHELL" in str(reason), reason
    assert await emitted(database_url, "backflush.completion.production-order-rejected") == []


async def test_an_order_still_waiting_after_an_earlier_flush_posts_says_so_again(database_url: str) -> None:
    """O-1 (50 chairs) reports 45 (parks: 45 SEAT-ASSY, 40 in stock), then 5 (queues behind it). 5 seats arrive: the
    45 post and the 5 still wait. The posting tells the distributor `ComponentsBackflushed` and `ProductionCompleted`,
    which end its order's wait; the order still waits, so a `BackflushParked` naming what for follows them, or
    `backflush orders` would show no wait while `production-orders` shows it parked."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("O-1", "CHAIR-ERGO", 50)])
    await feed(database_url, [CompletionReported(order_id="O-1", quantity=Decimal(45))])
    await feed(database_url, [CompletionReported(order_id="O-1", quantity=Decimal(5))])
    await feed(database_url, [ComponentsReceived(receipt_id="R-SA", item="SEAT-ASSY", lot="SA-NEW",
                                                 quantity=Decimal(5))])
    [(status, reason)] = await rows(database_url, "SELECT status, reason FROM production_orders")
    assert status == "parked", (status, reason)
    tail = await rows(database_url, "SELECT event_type FROM outbox WHERE event_type LIKE 'backflush.completion.%' "
                                    "ORDER BY id DESC LIMIT 1")
    assert tail == [("backflush.completion.backflush-parked",)]
    [*_, last] = await emitted(database_url, "backflush.completion.backflush-parked")
    assert last["reason"] == reason
