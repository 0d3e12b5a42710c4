"""Repetitive production (issue 17, part 2): a line reports a run; its whole BOM (pre and post lines) is flushed at
once, its lot handed to the warehouse as finished-goods stock; reversal waits for the warehouse's withdrawal.

Sample data worked by hand, one run R-1 of 20 SEAT-ASSY on line L1 in period 2026-W49, lot SA-R1:
SEAT-SHELL 20 x 1 x 1.01 = 20.2 -> 21 (from SS-0925), FOAM-PU 20 x 1.25 x 1.05 = 26.25 kg (FP-0930),
FABRIC-MESH 20 x 0.8 x 1.10 = 17.6 m (FM-1002), SCREW-M6 20 x 6 x 1.02 = 122.4 -> 123 (SC-0901).
"""

from __future__ import annotations

from decimal import Decimal

from support.manufacturer_feed import SAMPLE_DATA, emitted, feed, rows

from backflush_manufacturer.master_data_events import events_from
from backflush_manufacturer.master_data_files import load_master_data
from backflush_manufacturer.runs import run_variance
from backflush_shared.audit import audit_service
from backflush_shared.contracts.completions import (
    ComponentIssueReported,
    FinishedStockWithdrawalRefused,
    FinishedStockWithdrawn,
    RunCancellationRequested,
    RunQuantityReported,
)
from backflush_shared.contracts.master_data import ComponentsReceived
from backflush_shared.persistence.database import read_once


def run(run_id: str, quantity: str, *, item: str = "SEAT-ASSY", lot: str | None = None,
        line: str = "L1", period: str = "2026-W49") -> RunQuantityReported:
    return RunQuantityReported(run_id=run_id, line=line, item=item, quantity=Decimal(quantity), period=period,
                               lot=lot or f"SA-{run_id}")


async def consumed(url: str, run_id: str) -> list[tuple[object, ...]]:
    return await rows(url, f"SELECT item, lot, quantity, into_lot FROM ledger_movements WHERE production_order = "
                           f"'{run_id}' AND reason = 'backflush' ORDER BY item, id")


async def test_a_run_flushes_pre_and_post_lines_at_once_and_hands_its_lot_to_the_warehouse(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [run("R-1", "20", lot="SA-R1")])
    assert await consumed(database_url, "R-1") == [
        ("FABRIC-MESH", "FM-1002", "-17.600", "SA-R1"), ("FOAM-PU", "FP-0930", "-26.250", "SA-R1"),
        ("SCREW-M6", "SC-0901", "-123", "SA-R1"), ("SEAT-SHELL", "SS-0925", "-21", "SA-R1")]
    assert await rows(database_url, "SELECT flow, status, completed FROM production_orders") == [
        ("run", "stocked", "20")]
    [stocked] = await emitted(database_url, "backflush.inventory.finished-goods-stocked")
    assert (stocked["run_id"], stocked["lot"], stocked["quantity"], stocked["owner"]) == (
        "R-1", "SA-R1", "20", "manufacturer")
    [flushed] = await emitted(database_url, "backflush.completion.components-backflushed")
    assert flushed["make_to_stock"] is True  # no customer order: the distributor and warehouse ignore it
    assert all(f.ok for f in await audit_service("manufacturer", database_url))


async def test_the_same_run_report_again_posts_nothing_and_a_different_one_under_its_id_is_refused(
        database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [run("R-1", "20"), run("R-1", "20"), run("R-1", "5")])
    assert len(await consumed(database_url, "R-1")) == 4
    [refused] = await emitted(database_url, "backflush.completion.run-report-refused")
    assert refused["code"] == "run-id-in-use" and "R-1 was reported already" in refused["reason"]


async def test_a_run_short_of_stock_parks_whole_and_posts_when_stock_arrives(database_url: str) -> None:
    """FOAM-PU: 105.500 kg in stock, 1.3125 kg a seat. R-1 (70 seats, 91.875 kg) posts; R-2 (20, 26.250 kg) finds
    13.625 kg and parks whole; a receipt of 20 kg lets it post."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [run("R-1", "70"), run("R-2", "20")])
    assert await consumed(database_url, "R-2") == []
    assert await rows(database_url, "SELECT order_id, status, reason FROM parked_flushes") == [
        ("R-2", "waiting", "FOAM-PU: needs 26.250 kg, 13.625 available")]
    assert await emitted(database_url, "backflush.inventory.finished-goods-stocked") != []
    await feed(database_url, [ComponentsReceived(receipt_id="RC-FOAM-1", item="FOAM-PU", lot="FP-1201",
                                                 quantity=Decimal(20))])
    assert await rows(database_url, "SELECT order_id, status FROM parked_flushes") == [("R-2", "posted")]
    lots = [e["run_id"] for e in await emitted(database_url, "backflush.inventory.finished-goods-stocked")]
    assert lots == ["R-1", "R-2"]


async def test_a_run_under_the_reject_policy_is_refused_with_the_reason_and_posts_nothing(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [run("R-1", "200")], policy="reject")
    assert await consumed(database_url, "R-1") == []
    [refused] = await emitted(database_url, "backflush.completion.run-report-refused")
    assert refused["code"] == "insufficient-component-stock" and "not enough FABRIC-MESH" in refused["reason"]
    assert await emitted(database_url, "backflush.inventory.finished-goods-stocked") == []


async def test_a_run_under_the_allow_policy_posts_negative_with_the_alert(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [run("R-1", "200")], policy="allow")
    [alert] = [e for e in await emitted(database_url, "backflush.completion.negative-stock-posted")
               if e["item"] == "SEAT-SHELL"]
    assert alert["order_id"] == "R-1" and alert["balance"] == "-82"  # 200 x 1.01 = 202 from 120
    assert len(await emitted(database_url, "backflush.inventory.finished-goods-stocked")) == 1


async def test_variance_per_line_and_period_counts_the_manual_issues_of_its_runs(database_url: str) -> None:
    """R-1 (20) and R-2 (10) on L1 in W49; R-3 on L2. Standard SEAT-SHELL 21 + 11 = 32 (20.2 and 10.1 rounded up
    per run), actual the same; an extra scrap of 2 SEAT-SHELL on R-1 makes it 34."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [run("R-1", "20"), run("R-2", "10"), run("R-3", "10", line="L2")])
    await feed(database_url, [ComponentIssueReported(order_id="R-1", component="SEAT-SHELL", quantity=Decimal(2),
                                                     kind="scrap", make_to_stock=True)])
    lines = {v.item: v for v in await read_once(database_url,
                                                      lambda session: run_variance(session, "L1", "2026-W49"))}
    assert (lines["SEAT-SHELL"].standard, lines["SEAT-SHELL"].actual) == (Decimal(32), Decimal(34))
    assert lines["SCREW-M6"].actual == 123 + 62  # 122.4 -> 123 and 61.2 -> 62


async def test_a_run_reversal_waits_for_the_warehouse_and_gives_the_components_back_to_their_lots(
        database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [run("R-1", "20", lot="SA-R1")])
    await feed(database_url, [RunCancellationRequested(run_id="R-1", reason="counted twice")])
    [asked] = await emitted(database_url, "backflush.inventory.finished-stock-withdrawal-requested")
    assert (asked["lot"], asked["quantity"]) == ("SA-R1", "20")
    assert await rows(database_url, "SELECT status FROM production_orders") == [("withdrawal-requested",)]
    await feed(database_url, [FinishedStockWithdrawn(run_id="R-1", item="SEAT-ASSY", lot="SA-R1",
                                                     quantity=Decimal(20))])
    assert await rows(database_url, "SELECT status FROM production_orders") == [("cancelled",)]
    net = await rows(database_url, "SELECT item, lot, sum(CAST(quantity AS NUMERIC)) FROM ledger_movements "
                                   "WHERE production_order = 'R-1' GROUP BY item, lot ORDER BY item, lot")
    assert all(Decimal(str(total)) == 0 for _item, _lot, total in net), net
    assert len(await emitted(database_url, "backflush.completion.run-reversed")) == 1
    assert all(f.ok for f in await audit_service("manufacturer", database_url))


async def test_a_run_reversal_the_warehouse_refuses_leaves_the_run_standing_with_the_reason(
        database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [run("R-1", "20", lot="SA-R1")])
    await feed(database_url, [RunCancellationRequested(run_id="R-1")])
    await feed(database_url, [FinishedStockWithdrawalRefused(run_id="R-1", reason="5 of 20 allocated to SO-1")])
    assert await rows(database_url, "SELECT status FROM production_orders") == [("stocked",)]
    [refused] = await emitted(database_url, "backflush.completion.run-report-refused")
    assert refused["code"] == "run-not-reversible" and "5 of 20 allocated to SO-1" in refused["reason"]
    assert len(await consumed(database_url, "R-1")) == 4


async def test_the_manufacturer_plays_no_part_in_a_stock_order_and_dead_letters_none_of_its_events(
        database_url: str) -> None:
    from datetime import UTC, date, datetime

    from backflush_shared.contracts.common import Flow, OrderProcessingInfo
    from backflush_shared.contracts.completions import GoodsShipped, GoodsSignedFor
    from backflush_shared.contracts.orders import OrderCancelled, OrderForwarded

    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    processing = OrderProcessingInfo(order_holder="ACME", ship_to="dock 1", due_date=date(2026, 12, 24))
    await feed(database_url, [
        OrderForwarded(order_id="SO-S", flow=Flow.STOCK, item="SEAT-ASSY", quantity=Decimal(5), processing=processing),
        GoodsShipped(order_id="SO-S", item="SEAT-ASSY", quantity=Decimal(5), ship_to="dock 1", lots=["SA-R1"]),
        GoodsSignedFor(order_id="SO-S", item="SEAT-ASSY", quantity=Decimal(5), signed_by="J. Doe",
                       signed_at=datetime(2026, 12, 7, tzinfo=UTC), previous_owner="manufacturer", new_owner="ACME",
                       from_stock=True),
        OrderForwarded(order_id="SO-T", flow=Flow.STOCK, item="SEAT-ASSY", quantity=Decimal(5), processing=processing),
        OrderCancelled(order_id="SO-T", reason="changed mind", stage="waiting-for-stock"),
    ])  # `feed` fails on any dead letter
    assert await rows(database_url, "SELECT count(*) FROM production_orders") == [(0,)]


async def test_a_parked_run_cancelled_stops_waiting_and_posts_nothing(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [run("R-1", "70"), run("R-2", "20")])
    await feed(database_url, [RunCancellationRequested(run_id="R-2", reason="never made")])
    assert await rows(database_url, "SELECT order_id, status FROM parked_flushes") == [("R-2", "cancelled")]
    assert await rows(database_url, "SELECT order_id, status FROM production_orders ORDER BY order_id") == [
        ("R-1", "stocked"), ("R-2", "cancelled")]
    assert await emitted(database_url, "backflush.inventory.finished-stock-withdrawal-requested") == []
    assert [e["run_id"] for e in await emitted(database_url, "backflush.completion.run-reversed")] == ["R-2"]
    assert all(f.ok for f in await audit_service("manufacturer", database_url))


async def test_a_run_lot_sold_from_stock_leaves_the_manufacturers_books_as_the_holder_signs(
        database_url: str) -> None:
    """R-1 stocks 20 SEAT-ASSY of lot SA-R1 (the manufacturer's until sold). A stock order signed for 15 of them, in
    a part of 5 and one of 10, takes 15 off the books; 5 stay, still the manufacturer's."""
    from datetime import UTC, datetime

    from backflush_shared.contracts.common import LotQuantity
    from backflush_shared.contracts.completions import GoodsSignedFor

    def signed(quantity: int) -> GoodsSignedFor:
        return GoodsSignedFor(order_id="SO-S", item="SEAT-ASSY", quantity=Decimal(quantity), signed_by="J. Doe",
                              signed_at=datetime(2026, 12, 7, tzinfo=UTC), previous_owner="manufacturer",
                              new_owner="ACME", from_stock=True,
                              lots=(LotQuantity(lot="SA-R1", quantity=Decimal(quantity)),))

    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [run("R-1", "20", lot="SA-R1")])
    await feed(database_url, [signed(5)])
    await feed(database_url, [signed(10)])
    on_hand = await rows(database_url, "SELECT reason, sum(CAST(quantity AS NUMERIC)) FROM ledger_movements "
                                       "WHERE lot = 'SA-R1' GROUP BY reason ORDER BY reason")
    assert [(reason, Decimal(str(total))) for reason, total in on_hand] == [
        ("delivery", Decimal(-15)), ("production_receipt", Decimal(20))]
    assert all(f.ok for f in await audit_service("manufacturer", database_url))
