"""Make-to-stock production orders (issue 15, defect 5): a subassembly made here for the manufacturer's own stock is
consumed by its parents' flushes.

Sample data worked by hand: 40 SEAT-ASSY in stock (lot SA-2411-01, MAIN). A make-to-stock order MTS-1 for 20
SEAT-ASSY releases its pre lines (SEAT-SHELL, FOAM-PU, FABRIC-MESH) and, at its completion of 20, flushes
6 x 1.02 x 20 = 122.4 -> 123 SCREW-M6; its lot MTS-1-C20 is received at MAIN, SEAT-ASSY's supply location.
"""

from __future__ import annotations

from decimal import Decimal

from support.manufacturer_feed import SAMPLE_DATA, dead_letter_reasons, emitted, feed, order, rows

from backflush_manufacturer.master_data_events import events_from
from backflush_manufacturer.master_data_files import load_master_data
from backflush_shared.audit import audit_service
from backflush_shared.contracts.completions import CompletionCancellationRequested, CompletionReported
from backflush_shared.contracts.master_data import StockProductionOrderPlaced


def make_to_stock(order_id: str, item: str, quantity: str) -> StockProductionOrderPlaced:
    return StockProductionOrderPlaced(order_id=order_id, item=item, quantity=Decimal(quantity))


def completed(order_id: str, quantity: int) -> CompletionReported:
    return CompletionReported(order_id=order_id, quantity=Decimal(quantity), make_to_stock=True)


async def test_a_subassembly_made_to_stock_is_received_at_its_supply_location_and_the_order_closes(
        database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [make_to_stock("MTS-1", "SEAT-ASSY", "20")])
    assert await rows(database_url, "SELECT flow, status FROM production_orders") == [("stock", "released")]
    await feed(database_url, [completed("MTS-1", 20)])
    assert await rows(database_url, "SELECT lot, location, quantity FROM ledger_movements WHERE item = 'SEAT-ASSY' "
                                    "AND production_order = 'MTS-1'") == [("MTS-1-C20", "MAIN", "20")]
    assert await rows(database_url, "SELECT status, completed FROM production_orders") == [("closed", "20")]
    [done] = await emitted(database_url, "backflush.completion.production-completed")
    assert done["make_to_stock"] is True
    assert await emitted(database_url, "backflush.inventory.turned-over") == []  # not a customer's goods
    assert all(e["make_to_stock"] for e in await emitted(database_url, "backflush.completion.components-backflushed"))


async def test_a_parent_consumes_the_subassembly_lot_made_here(database_url: str) -> None:
    """After MTS-1's 20 seats, CH-1's completion of 50 takes the 40 purchased (first in) and 10 of MTS-1-C20."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [make_to_stock("MTS-1", "SEAT-ASSY", "20")])
    await feed(database_url, [completed("MTS-1", 20)])
    await feed(database_url, [order("CH-1", "CHAIR-ERGO", 50)])
    await feed(database_url, [CompletionReported(order_id="CH-1", quantity=Decimal(50))])
    assert await rows(database_url, "SELECT lot, quantity, into_lot FROM ledger_movements WHERE item = 'SEAT-ASSY' "
                                    "AND production_order = 'CH-1' ORDER BY id") == [
        ("SA-2411-01", "-40", "CH-1-C50"), ("MTS-1-C20", "-10", "CH-1-C50")]


async def test_a_stock_order_completion_releases_a_flush_parked_for_its_item(database_url: str) -> None:
    """CH-1's completion of 50 parks (40 seats); MTS-1's completion of 20 lets it post, as a receipt would."""
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("CH-1", "CHAIR-ERGO", 50), make_to_stock("MTS-1", "SEAT-ASSY", "20")])
    await feed(database_url, [CompletionReported(order_id="CH-1", quantity=Decimal(50))])
    assert await rows(database_url, "SELECT order_id, status FROM parked_flushes") == [("CH-1", "waiting")]
    await feed(database_url, [completed("MTS-1", 20)])
    assert await rows(database_url, "SELECT order_id, status FROM parked_flushes") == [("CH-1", "posted")]
    assert await rows(database_url, "SELECT order_id, status FROM production_orders ORDER BY order_id") == [
        ("CH-1", "completed"), ("MTS-1", "closed")]
    assert all(f.ok for f in await audit_service("manufacturer", database_url)), \
        [f for f in await audit_service("manufacturer", database_url) if not f.ok]


async def test_a_stock_order_refused_at_validation_leaves_no_order_and_names_the_reason(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [make_to_stock("MTS-P", "BASE-KIT", "5"), make_to_stock("MTS-U", "NO-SUCH", "5"),
                              make_to_stock("MTS-D", "SEAT-ASSY", "2.5"), make_to_stock("MTS-B", "SCREW-M6", "5")],
               dead_letters=4)
    reasons = await dead_letter_reasons(database_url)
    assert len(reasons) == 4 and "phantom" in reasons[0] and "NO-SUCH" in reasons[1] and "2.5" in reasons[2] \
        and "BOM" in reasons[3], reasons
    assert await rows(database_url, "SELECT count(*) FROM production_orders") == [(0,)]
    await feed(database_url, [make_to_stock("MTS-D", "SEAT-ASSY", "2")])  # the corrected order takes the id
    assert await rows(database_url, "SELECT order_id, status FROM production_orders") == [("MTS-D", "released")]


async def test_a_stock_order_under_the_id_of_a_customer_order_is_refused(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [order("SO-1", "SEAT-ASSY", 5)])
    await feed(database_url, [make_to_stock("SO-1", "SEAT-ASSY", "5")], dead_letters=1)
    assert "production order SO-1 exists already" in (await dead_letter_reasons(database_url))[0]
    await feed(database_url, [make_to_stock("MTS-1", "SEAT-ASSY", "5"), make_to_stock("MTS-1", "SEAT-ASSY", "5")])
    assert await rows(database_url, "SELECT order_id, flow FROM production_orders ORDER BY order_id") == [
        ("MTS-1", "stock"), ("SO-1", "post")]


async def test_a_completion_reported_without_the_stock_flag_is_refused_with_the_hint(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [make_to_stock("MTS-1", "SEAT-ASSY", "5")])
    await feed(database_url, [CompletionReported(order_id="MTS-1", quantity=Decimal(5))], dead_letters=1)
    assert await dead_letter_reasons(database_url) == [
        "production order MTS-1 is a make-to-stock order: report it with --stock"]


async def test_the_latest_completion_of_a_stock_order_is_cancelled_while_its_lot_is_unconsumed(
        database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [make_to_stock("MTS-1", "SEAT-ASSY", "20")])
    await feed(database_url, [completed("MTS-1", 20)])
    await feed(database_url, [CompletionCancellationRequested(order_id="MTS-1", completion_id="MTS-1-C20",
                                                              make_to_stock=True)])
    assert await rows(database_url, "SELECT status, completed FROM production_orders") == [("released", "0")]
    assert await rows(database_url, "SELECT sum(CAST(quantity AS NUMERIC)) FROM ledger_movements "
                                    "WHERE lot = 'MTS-1-C20'") == [(0,)]
    [cancelled] = await emitted(database_url, "backflush.completion.cancelled")
    assert cancelled["make_to_stock"] is True


async def test_a_consumed_stock_lot_cannot_be_cancelled(database_url: str) -> None:
    await feed(database_url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(database_url, [make_to_stock("MTS-1", "SEAT-ASSY", "20")])
    await feed(database_url, [completed("MTS-1", 20)])
    await feed(database_url, [order("CH-1", "CHAIR-ERGO", 50)])
    await feed(database_url, [CompletionReported(order_id="CH-1", quantity=Decimal(50))])
    await feed(database_url, [CompletionCancellationRequested(order_id="MTS-1", completion_id="MTS-1-C20",
                                                              make_to_stock=True)], dead_letters=1)
    assert "10 of the 20 produced are still on hand" in (await dead_letter_reasons(database_url))[0]
