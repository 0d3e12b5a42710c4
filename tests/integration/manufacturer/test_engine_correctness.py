"""Engine correctness through the manufacturer's own handlers: no order stuck for ever, no refused order that
blocks its id, one completion reversible (issue 15).

The sample data (services/manufacturer/sample_data), worked by hand: 60 CHAIR-ERGO need 62 BASE-STAR-5 at release
(60 x 1.02 = 61.2, rounded up) against 60 in stock, so the release of a 60-chair order parks; a completion of 50
needs 50 SEAT-ASSY against 40 in stock.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import text
from support.manufacturer_feed import SAMPLE_DATA, dead_letter_reasons, emitted, feed, order, rows

from backflush_manufacturer.master_data_events import events_from
from backflush_manufacturer.master_data_files import load_master_data
from backflush_shared.audit import audit_service
from backflush_shared.contracts.completions import (
    CompletionCancellationRequested,
    CompletionReported,
    ComponentIssueReported,
    GoodsShipped,
)
from backflush_shared.contracts.common import Flow
from backflush_shared.contracts.master_data import ComponentsReceived, ItemDefined
from backflush_shared.persistence.database import Database

CHECK = "manufacturer: every waiting parked flush can be released"


def seat_assembly_policy(policy: str) -> ItemDefined:
    return ItemDefined(item="SEAT-ASSY", unit="pcs", decimals=0, negative_stock_policy=policy,
                       description="Upholstered seat assembly (stocked subassembly)")


async def _release_parked(url: str, **kwargs: object) -> None:
    await feed(url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(url, [order("SO-A", "CHAIR-ERGO", 60)], **kwargs)  # type: ignore[arg-type]


# -- defect 1: a later flush behind an earlier parked one -----------------------------------------------------------


async def test_under_reject_a_completion_behind_a_parked_release_is_refused_not_queued(database_url: str) -> None:
    await _release_parked(database_url)
    await feed(database_url, [seat_assembly_policy("reject")])
    await feed(database_url, [CompletionReported(order_id="SO-A", quantity=Decimal(50))])
    assert await rows(database_url, "SELECT id, step, status FROM parked_flushes ORDER BY id") == [
        (1, "release", "waiting")]
    assert await rows(database_url, "SELECT count(*) FROM finished_lots") == [(0,)]
    [refusal] = await emitted(database_url, "backflush.completion.refused")
    assert refusal["waits_for_components"] is True and "not enough SEAT-ASSY" in str(refusal["reason"])


async def test_a_queued_completion_whose_item_turned_reject_is_refused_when_the_queue_is_reprocessed(
        database_url: str) -> None:
    await _release_parked(database_url)
    await feed(database_url, [CompletionReported(order_id="SO-A", quantity=Decimal(50))])
    await feed(database_url, [seat_assembly_policy("reject"),
                              ComponentsReceived(receipt_id="R-BS", item="BASE-STAR-5", lot="BS-NEW",
                                                 quantity=Decimal(2))])
    assert await rows(database_url, "SELECT id, step, status FROM parked_flushes ORDER BY id") == [
        (1, "release", "posted"), (2, "completion", "refused")]
    assert await rows(database_url, "SELECT count(*) FROM finished_lots") == [(0,)]


async def test_the_audit_names_a_flush_that_waits_for_an_item_whose_policy_is_reject(database_url: str) -> None:
    await _release_parked(database_url)
    await feed(database_url, [CompletionReported(order_id="SO-A", quantity=Decimal(50)),
                              ComponentsReceived(receipt_id="R-BS", item="BASE-STAR-5", lot="BS-NEW",
                                                 quantity=Decimal(2))])
    database = Database(database_url)
    try:
        async with database.transaction() as session:  # what a policy change nobody reprocessed would leave
            await session.execute(text("UPDATE items SET negative_stock_policy = 'reject' WHERE item = 'SEAT-ASSY'"))
    finally:
        await database.close()
    finding = next(f for f in await audit_service("manufacturer", database_url) if f.check == CHECK)
    assert not finding.ok and "#2 SO-A: waits for SEAT-ASSY, whose policy is reject" in finding.detail


# -- defect 2: a refused order does not block its id ------------------------------------------------------------------


async def test_an_order_refused_at_validation_leaves_no_order_so_the_corrected_one_is_accepted(
        database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("SO-FIX", "CHAIR-ERGOO", 5)])  # a typo: no such item
    assert await rows(database_url, "SELECT order_id FROM production_orders") == []
    await feed(database_url, [order("SO-FIX", "CHAIR-ERGO", 5)])
    assert await rows(database_url, "SELECT order_id, item, status FROM production_orders") == [
        ("SO-FIX", "CHAIR-ERGO", "released")]
    rejections = await emitted(database_url, "backflush.completion.production-order-rejected")
    assert [r["order_id"] for r in rejections] == ["SO-FIX"] and "CHAIR-ERGOO" in str(rejections[0]["reason"])


async def test_an_id_burned_by_an_order_past_validation_refuses_a_different_order_loudly(database_url: str) -> None:
    await _release_parked(database_url, policy="reject")  # 62 BASE-STAR-5 needed, 60 in stock: rejected
    await feed(database_url, [order("SO-A", "CHAIR-ERGO", 50)], policy="reject")
    rejections = await emitted(database_url, "backflush.completion.production-order-rejected")
    assert [r["code"] for r in rejections] == ["insufficient-component-stock", "order-id-in-use"]
    assert "exists already for 60 CHAIR-ERGO (rejected: not enough BASE-STAR-5" in str(rejections[1]["reason"])


# -- defect 3: a production order for a phantom ---------------------------------------------------------------------


async def test_a_production_order_for_a_phantom_is_refused_and_nothing_is_flushed(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("SO-PH", "BASE-KIT", 5)])
    rejections = await emitted(database_url, "backflush.completion.production-order-rejected")
    assert [r["code"] for r in rejections] == ["phantom-production-order"]
    assert await rows(database_url, "SELECT count(*) FROM production_orders") == [(0,)]
    assert await rows(database_url, "SELECT count(*) FROM ledger_movements WHERE production_order = 'SO-PH'") == [(0,)]


# -- defect 4: `completed` counts only what was produced -------------------------------------------------------------


async def test_a_parked_completion_is_not_counted_as_completed_until_it_posts(database_url: str) -> None:
    """The release posts (62 BASE-STAR-5 received first); a completion of 50 needs 50 SEAT-ASSY, 40 in stock: it
    parks, and the order counts 0 completed, showing what it waits for; after 10 more seats it counts 50."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [ComponentsReceived(receipt_id="R-BS", item="BASE-STAR-5", lot="BS-NEW",
                                                 quantity=Decimal(2)), order("SO-A", "CHAIR-ERGO", 60)])
    await feed(database_url, [CompletionReported(order_id="SO-A", quantity=Decimal(50))])
    assert await rows(database_url, "SELECT status, completed, reason FROM production_orders") == [
        ("parked", "0", "SEAT-ASSY: needs 50 pcs, 40 available")]
    await feed(database_url, [CompletionReported(order_id="SO-A", quantity=Decimal(11))], dead_letters=1)  # 61 > 60
    await feed(database_url, [ComponentsReceived(receipt_id="R-SA", item="SEAT-ASSY", lot="SA-NEW",
                                                 quantity=Decimal(10))])
    assert await rows(database_url, "SELECT status, completed FROM production_orders") == [
        ("in-production", "50")]


async def test_a_completion_refused_under_reject_is_not_counted(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [ComponentsReceived(receipt_id="R-BS", item="BASE-STAR-5", lot="BS-NEW",
                                                 quantity=Decimal(2)), order("SO-A", "CHAIR-ERGO", 60)],
               policy="reject")
    await feed(database_url, [CompletionReported(order_id="SO-A", quantity=Decimal(50))], policy="reject")
    assert await rows(database_url, "SELECT completed FROM production_orders") == [("0",)]


# -- defect 5: a subassembly made here is consumed by its parent ------------------------------------------------------


async def test_a_customer_orders_subassembly_is_received_at_fg_and_never_flushed_by_another_order(
        database_url: str) -> None:
    """SA-1 makes 30 SEAT-ASSY for its holder: the lot is received at FG (the order's finished goods, turned over and
    shipped to its holder), so the chair order CH-1 cannot take any of it. CH-1's completion of 50 finds the 40
    purchased seats at MAIN and parks; a receipt of 10 seats at MAIN (the supply location) lets it post."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("SA-1", "SEAT-ASSY", 30)])
    await feed(database_url, [CompletionReported(order_id="SA-1", quantity=Decimal(30))])
    assert await rows(database_url, "SELECT lot, location, quantity FROM ledger_movements WHERE item = 'SEAT-ASSY' "
                                    "AND production_order = 'SA-1'") == [("SA-1-C30", "FG", "30")]
    await feed(database_url, [order("CH-1", "CHAIR-ERGO", 50)])
    await feed(database_url, [CompletionReported(order_id="CH-1", quantity=Decimal(50))])
    assert await rows(database_url, "SELECT reason FROM parked_flushes WHERE status = 'waiting'") == [
        ("SEAT-ASSY: needs 50 pcs, 40 available",)]
    await feed(database_url, [ComponentsReceived(receipt_id="R-SA", item="SEAT-ASSY", lot="SA-NEW",
                                                 quantity=Decimal(10))])
    assert await rows(database_url, "SELECT lot, location, quantity FROM ledger_movements WHERE item = 'SEAT-ASSY' "
                                    "AND production_order = 'CH-1' ORDER BY id") == [
        ("SA-2411-01", "MAIN", "-40"), ("SA-NEW", "MAIN", "-10")]


async def test_a_supply_location_set_on_the_item_is_where_flushes_take_it_from(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [ItemDefined(item="SEAT-ASSY", unit="pcs", decimals=0, supply_location="LINE-1"),
                              ComponentsReceived(receipt_id="R-L1", item="SEAT-ASSY", lot="SA-L1",
                                                 quantity=Decimal(10), location="LINE-1"),
                              order("CH-1", "CHAIR-ERGO", 5)])
    await feed(database_url, [CompletionReported(order_id="CH-1", quantity=Decimal(5))])
    assert await rows(database_url, "SELECT lot, location, quantity FROM ledger_movements WHERE item = 'SEAT-ASSY' "
                                    "AND production_order = 'CH-1' ORDER BY id") == [("SA-L1", "LINE-1", "-5")]


# -- defect 8: under `reject` a completion is refused, not the order ---------------------------------------------------


async def test_under_reject_a_completion_stock_cannot_cover_is_refused_and_the_order_stays_open(
        database_url: str) -> None:
    """After 10 chairs were produced, a completion of 40 needs 40 SEAT-ASSY with 30 left: it is refused with the
    shortage, and what was produced stays; the next completion that stock covers (30) posts."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("SO-R", "CHAIR-ERGO", 50)], policy="reject")
    await feed(database_url, [CompletionReported(order_id="SO-R", quantity=Decimal(10))], policy="reject")
    await feed(database_url, [CompletionReported(order_id="SO-R", quantity=Decimal(40))], policy="reject")
    refusals = await emitted(database_url, "backflush.completion.refused")
    assert [(r["quantity"], r["code"]) for r in refusals] == [("40", "insufficient-component-stock")]
    assert "not enough SEAT-ASSY" in str(refusals[0]["reason"]) and "available 30" in str(refusals[0]["reason"])
    assert await emitted(database_url, "backflush.completion.production-order-rejected") == []
    assert (await rows(database_url, "SELECT status, completed FROM production_orders")) == [("in-production", "10")]
    await feed(database_url, [CompletionReported(order_id="SO-R", quantity=Decimal(30))], policy="reject")
    assert (await rows(database_url, "SELECT status, completed FROM production_orders")) == [("in-production", "40")]


async def test_under_reject_a_release_stock_cannot_cover_still_rejects_the_order(database_url: str) -> None:
    await _release_parked(database_url, policy="reject")
    assert await rows(database_url, "SELECT status FROM production_orders") == [("rejected",)]
    assert [r["code"] for r in await emitted(database_url, "backflush.completion.production-order-rejected")] == [
        "insufficient-component-stock"]


# -- capability 7: cancel one completion ------------------------------------------------------------------------------


def _cancel(order_id: str, completion_id: str) -> CompletionCancellationRequested:
    return CompletionCancellationRequested(order_id=order_id, completion_id=completion_id, reason="reported twice")


async def _two_completions(url: str) -> None:
    await feed(url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(url, [order("SO-C", "CHAIR-ERGO", 20)])
    await feed(url, [CompletionReported(order_id="SO-C", quantity=Decimal(8))])
    await feed(url, [CompletionReported(order_id="SO-C", quantity=Decimal(7))])


async def _component_balances(url: str) -> list[tuple[object, ...]]:
    return await rows(url, "SELECT item, location, lot, sum(CAST(quantity AS NUMERIC)) FROM ledger_movements "
                           "WHERE reason != 'allocation' AND item != 'CHAIR-ERGO' GROUP BY item, location, lot "
                           "ORDER BY item, location, lot")


async def test_cancelling_the_latest_completion_reverses_its_flush_and_lot_and_the_order_stays_open(
        database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("SO-C", "CHAIR-ERGO", 20)])
    await feed(database_url, [CompletionReported(order_id="SO-C", quantity=Decimal(8))])
    after_first = await _component_balances(database_url)
    await feed(database_url, [CompletionReported(order_id="SO-C", quantity=Decimal(7))])
    await feed(database_url, [_cancel("SO-C", "SO-C-C15")])
    assert await _component_balances(database_url) == after_first  # back to the very lots, exactly
    assert await rows(database_url, "SELECT status, completed FROM production_orders") == [("in-production", "8")]
    assert await rows(database_url, "SELECT lot FROM finished_lots WHERE cancelled_at IS NULL") == [("SO-C-C8",)]
    assert await rows(database_url, "SELECT count(*) FROM ledger_movements WHERE into_lot = 'SO-C-C15' "
                                    "GROUP BY into_lot, item, lot HAVING sum(CAST(quantity AS NUMERIC)) != 0") == []
    [cancelled] = await emitted(database_url, "backflush.completion.cancelled")
    assert (cancelled["lot"], cancelled["quantity"], cancelled["cumulative_quantity"]) == ("SO-C-C15", "7", "8")
    # the order goes on: the next completion of 7 flushes what it would have, under a lot name never used before
    await feed(database_url, [CompletionReported(order_id="SO-C", quantity=Decimal(12))])
    assert await rows(database_url, "SELECT lot, quantity FROM finished_lots WHERE cancelled_at IS NULL "
                                    "ORDER BY produced_at") == [("SO-C-C8", "8"), ("SO-C-C20", "12")]
    assert await rows(database_url, "SELECT status, completed FROM production_orders") == [("completed", "20")]


async def test_only_the_latest_completion_can_be_cancelled(database_url: str) -> None:
    await _two_completions(database_url)
    await feed(database_url, [_cancel("SO-C", "SO-C-C8")], dead_letters=1)
    assert await dead_letter_reasons(database_url) == [
        "cannot cancel completion SO-C-C8 of order SO-C: only the latest completion can be cancelled; "
        "cancel SO-C-C15 first"]
    assert await rows(database_url, "SELECT completed FROM production_orders") == [("15",)]


async def test_a_shipped_completion_cannot_be_cancelled(database_url: str) -> None:
    await _two_completions(database_url)
    await feed(database_url, [GoodsShipped(order_id="SO-C", item="CHAIR-ERGO", quantity=Decimal(15), ship_to="x",
                                           lots=["SO-C-C8", "SO-C-C15"])])
    await feed(database_url, [_cancel("SO-C", "SO-C-C15")], dead_letters=1)
    assert await dead_letter_reasons(database_url) == [
        "cannot cancel completion SO-C-C15 of order SO-C: lot SO-C-C15 was shipped"]
    assert await rows(database_url, "SELECT completed FROM production_orders") == [("15",)]


# -- choice: scrap and manual issues are the order's consumption, not a lot's ------------------------------------------


async def test_scrap_reported_against_an_order_is_charged_to_the_order_not_to_a_finished_lot(
        database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("SO-S", "CHAIR-ERGO", 20)])
    await feed(database_url, [CompletionReported(order_id="SO-S", quantity=Decimal(8))])
    await feed(database_url, [ComponentIssueReported(order_id="SO-S", component="CASTOR-50", quantity=Decimal(3),
                                                     kind="scrap")])
    assert await rows(database_url, "SELECT production_order, into_lot, quantity FROM ledger_movements "
                                    "WHERE reason = 'scrap'") == [("SO-S", None, "-3")]


async def test_a_parked_flush_names_the_shortage_it_has_now_not_the_one_it_had_at_first(database_url: str) -> None:
    """62 BASE-STAR-5 needed, 60 in stock; a receipt of 1 leaves it short by 1: the queue and the order say 61
    available now."""
    await _release_parked(database_url)
    await feed(database_url, [ComponentsReceived(receipt_id="R-BS1", item="BASE-STAR-5", lot="BS-ONE",
                                                 quantity=Decimal(1))])
    assert await rows(database_url, "SELECT reason FROM parked_flushes") == [("BASE-STAR-5: needs 62 pcs, 61 available",)]
    assert await rows(database_url, "SELECT status, reason FROM production_orders") == [
        ("parked", "BASE-STAR-5: needs 62 pcs, 61 available")]


async def test_once_the_release_posts_an_order_whose_completion_still_waits_shows_that_wait(
        database_url: str) -> None:
    await _release_parked(database_url)
    await feed(database_url, [CompletionReported(order_id="SO-A", quantity=Decimal(50))])
    await feed(database_url, [ComponentsReceived(receipt_id="R-BS", item="BASE-STAR-5", lot="BS-NEW",
                                                 quantity=Decimal(2))])
    assert await rows(database_url, "SELECT status, completed, reason FROM production_orders") == [
        ("parked", "0", "SEAT-ASSY: needs 50 pcs, 40 available")]


# -- review of issue 15 -------------------------------------------------------------------------------------------


async def test_a_receipt_without_a_location_lands_at_the_items_supply_location(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [ItemDefined(item="SEAT-ASSY", unit="pcs", decimals=0, supply_location="LINE-1"),
                              ComponentsReceived(receipt_id="R-L1", item="SEAT-ASSY", lot="SA-L1",
                                                 quantity=Decimal(10))])
    assert await rows(database_url, "SELECT location, quantity FROM ledger_movements WHERE lot = 'SA-L1'") == [
        ("LINE-1", "10")]


async def test_a_completion_of_a_completed_order_cannot_be_cancelled(database_url: str) -> None:
    """Once the order's quantity is produced, a final order may exist and the goods may ship: too late."""
    await _two_completions(database_url)
    await feed(database_url, [CompletionReported(order_id="SO-C", quantity=Decimal(5))])
    await feed(database_url, [_cancel("SO-C", "SO-C-C20")], dead_letters=1)
    assert await dead_letter_reasons(database_url) == [
        "cannot cancel completion SO-C-C20 of order SO-C: the order is completed (20 of 20 produced)"]
    assert await rows(database_url, "SELECT status, completed FROM production_orders") == [("completed", "20")]


async def test_a_rejected_order_placed_again_with_the_same_content_is_refused_loudly(database_url: str) -> None:
    """Not ignored: the order would wait in `forwarded` for ever at the distributor."""
    await _release_parked(database_url, policy="reject")
    await feed(database_url, [order("SO-A", "CHAIR-ERGO", 60)], policy="reject")
    rejections = await emitted(database_url, "backflush.completion.production-order-rejected")
    assert [r["code"] for r in rejections] == ["insufficient-component-stock", "order-id-in-use"]
    assert "(rejected: not enough BASE-STAR-5" in str(rejections[1]["reason"])


async def test_a_pre_product_order_rejected_at_its_completion_flush_gives_back_its_release_consumption(
        database_url: str) -> None:
    """50 CHAIR-ERGO pre-product: the release takes 51 BASE-STAR-5 (60 in stock); the completion needs 50 SEAT-ASSY
    against 40 under `reject`: the order is rejected, and a rejected order consumed nothing."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("PRE-R", "CHAIR-ERGO", 50, Flow.PRE)], policy="reject")
    assert await rows(database_url, "SELECT status FROM production_orders") == [("rejected",)]
    assert await rows(database_url, "SELECT item, sum(CAST(quantity AS NUMERIC)) FROM ledger_movements "
                                    "WHERE production_order = 'PRE-R' GROUP BY item "
                                    "HAVING sum(CAST(quantity AS NUMERIC)) != 0") == []


async def test_a_new_flush_waits_behind_a_parked_flush_short_of_a_component_it_needs(database_url: str) -> None:
    """SO-A's release waits for 62 BASE-STAR-5 with 60 in stock; SO-B's release needs 6 of them, which stock
    covers, but it must not take the bases SO-A waits for: it parks behind it, and both post once 8 arrive."""
    await _release_parked(database_url)
    await feed(database_url, [order("SO-B", "CHAIR-ERGO", 5)])
    assert await rows(database_url, "SELECT order_id, status, reason FROM parked_flushes ORDER BY id") == [
        ("SO-A", "waiting", "BASE-STAR-5: needs 62 pcs, 60 available"),
        ("SO-B", "waiting", "waits behind an earlier parked flush that needs the same components")]
    await feed(database_url, [ComponentsReceived(receipt_id="R-BS", item="BASE-STAR-5", lot="BS-NEW",
                                                 quantity=Decimal(8))])
    assert await rows(database_url, "SELECT order_id, status FROM parked_flushes ORDER BY id") == [
        ("SO-A", "posted"), ("SO-B", "posted")]


async def test_a_flush_held_behind_another_ones_component_names_that_wait_so_the_audit_raises_no_alarm(
        database_url: str) -> None:
    """SO-A's release waits for BASE-STAR-5; SO-B's release of 85 is short of BASE-STAR-5 and GAS-LIFT-100. When
    GAS-LIFT-100 turns `reject`, SO-B is not refused while it waits behind SO-A for the bases: it names that wait,
    not its old GAS-LIFT-100 shortage, and the audit's policy check stays quiet."""
    await _release_parked(database_url)
    await feed(database_url, [order("SO-B", "CHAIR-ERGO", 85)])
    await feed(database_url, [ItemDefined(item="GAS-LIFT-100", unit="pcs", decimals=0,
                                          negative_stock_policy="reject")])
    assert await rows(database_url, "SELECT order_id, status, reason FROM parked_flushes ORDER BY id") == [
        ("SO-A", "waiting", "BASE-STAR-5: needs 62 pcs, 60 available"),
        ("SO-B", "waiting", "waits behind an earlier parked flush that needs the same components")]
    finding = next(f for f in await audit_service("manufacturer", database_url) if f.check == CHECK)
    assert finding.ok, finding.detail


async def test_cancelling_a_completion_lets_another_orders_parked_flush_post_with_the_stock_it_gave_back(
        database_url: str) -> None:
    """SO-C produced 15 chairs (15 of the 40 SEAT-ASSY); CH-2's completion of 30 needs 30 with 25 left and parks.
    Cancelling SO-C's completion of 7 gives 7 seats back (32): CH-2's flush posts, as after a receipt."""
    await _two_completions(database_url)
    await feed(database_url, [order("CH-2", "CHAIR-ERGO", 30)])
    await feed(database_url, [CompletionReported(order_id="CH-2", quantity=Decimal(30))])
    assert await rows(database_url, "SELECT order_id, status FROM parked_flushes") == [("CH-2", "waiting")]
    await feed(database_url, [_cancel("SO-C", "SO-C-C15")])
    assert await rows(database_url, "SELECT order_id, status FROM parked_flushes") == [("CH-2", "posted")]
    assert await rows(database_url, "SELECT order_id, status, completed FROM production_orders ORDER BY order_id") == [
        ("CH-2", "completed", "30"), ("SO-C", "in-production", "8")]


async def test_a_rejected_pre_product_orders_returned_release_lets_a_flush_waiting_for_it_post(
        database_url: str) -> None:
    """P-1 takes 57 of the 60 BASE-STAR-5. PRE-R (pre, 50) parks its release (51 needed, 3 left) and Y-1's release
    (11) queues behind it. 50 GAS-LIFT-100 arrive (PRE-R was short of them too), then 50 bases (53): PRE-R's release posts (2 left), then its completion is refused under
    `reject` (50 SEAT-ASSY, 40 in stock), so PRE-R is rejected and its 51 bases come back: Y-1 posts with them, as
    after a receipt, instead of waiting for the next one."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [seat_assembly_policy("reject"), order("P-1", "CHAIR-ERGO", 55)])
    await feed(database_url, [order("PRE-R", "CHAIR-ERGO", 50, Flow.PRE)])
    await feed(database_url, [order("Y-1", "CHAIR-ERGO", 10)])
    assert await rows(database_url, "SELECT order_id, status FROM parked_flushes ORDER BY id") == [
        ("PRE-R", "waiting"), ("Y-1", "waiting")]
    await feed(database_url, [ComponentsReceived(receipt_id="R-GL", item="GAS-LIFT-100", lot="GL-NEW",
                                                 quantity=Decimal(50))])
    await feed(database_url, [ComponentsReceived(receipt_id="R-BS", item="BASE-STAR-5", lot="BS-NEW",
                                                 quantity=Decimal(50))])
    assert await rows(database_url, "SELECT order_id, status FROM production_orders ORDER BY order_id") == [
        ("P-1", "released"), ("PRE-R", "rejected"), ("Y-1", "released")]
    assert await rows(database_url, "SELECT order_id, status FROM parked_flushes ORDER BY id") == [
        ("PRE-R", "posted"), ("Y-1", "posted")]
