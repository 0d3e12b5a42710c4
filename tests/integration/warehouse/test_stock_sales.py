"""Selling from finished-goods stock at the warehouse (issue 17): runs' lots racked unallocated, stock orders served
first in, first out by lot, in arrival order, waiting with the figures when stock is short; runs withdrawn for a
reversal only while whole and unallocated. Racks: DC-A1, DC-A2, DC-B1, 40 units each.

Worked by hand: run R-1 racks 30 units of lot L-1 (DC-A1), run R-2 25 of lot L-2 (10 in DC-A1, 15 in DC-A2).
SO-1 for 35 takes L-1's 30 and 5 of L-2 (first in, first out); SO-2 for 25 then finds 20 free and waits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import make_url
from support.manufacturer_feed import apply, emitted, rows

from backflush_shared.audit import audit_service
from backflush_shared.contracts.common import Flow, OrderProcessingInfo
from backflush_shared.contracts.completions import DeliverySigned
from backflush_shared.contracts.inventory_details import FinishedGoodsStocked, FinishedStockWithdrawalRequested
from backflush_shared.contracts.orders import OrderCancelled, OrderForwarded, StockOrderCancellationRequested
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceRuntime
from backflush_warehouse.app import SERVICE
from backflush_warehouse.layout import apply_layout
from backflush_warehouse.settings import WarehouseSettings

from integration.manufacturer.conftest import _admin  # noqa: PLC2701 - one way to make a database on the server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def warehouse(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceRuntime]:
    name = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('warehouse') / 'warehouse.db'}"
    else:
        server_url = request.getfixturevalue("postgres_server")
        name = f"warehouse_{uuid.uuid4().hex[:12]}"
        await _admin(server_url, f'CREATE DATABASE "{name}"')
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    await upgrade_to_head_async(url, SERVICE.migrations)
    runtime = ServiceRuntime.create(SERVICE, WarehouseSettings(service="warehouse", database_url=url))
    await apply_layout(runtime)
    try:
        yield runtime
    finally:
        await runtime.database.close()
        if name is not None:
            await _admin(request.getfixturevalue("postgres_server"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stocked(run_id: str, lot: str, quantity: int) -> FinishedGoodsStocked:
    return FinishedGoodsStocked(run_id=run_id, item="SEAT-ASSY", lot=lot, quantity=Decimal(quantity))


def stock_order(order_id: str, quantity: int) -> OrderForwarded:
    return OrderForwarded(order_id=order_id, flow=Flow.STOCK, item="SEAT-ASSY", quantity=Decimal(quantity),
                          processing=OrderProcessingInfo(order_holder="ACME", ship_to="ACME dock 1",
                                                         due_date=date(2026, 12, 24)))


async def outbox(runtime: ServiceRuntime, event_type: str) -> list[str]:
    return [r[0] for r in await rows(runtime.settings.database_url,
                                     f"SELECT correlation_id FROM outbox WHERE event_type = '{event_type}' "
                                     "ORDER BY id")]


async def clean(runtime: ServiceRuntime) -> None:
    findings = await audit_service("warehouse", runtime.settings.database_url)
    assert all(f.ok for f in findings), [f for f in findings if not f.ok]


async def test_stock_orders_are_served_first_in_first_out_by_lot_and_wait_with_the_figures(
        warehouse: ServiceRuntime) -> None:
    url = warehouse.settings.database_url
    await apply(warehouse, [stocked("R-1", "L-1", 30), stocked("R-2", "L-2", 25)])
    assert await outbox(warehouse, "backflush.inventory.racked") == []  # stock for sale: no order to confirm to
    await apply(warehouse, [stock_order("SO-1", 35), stock_order("SO-2", 25)])
    assert await rows(url, "SELECT order_id, run_id, lot, quantity FROM stock_allocations ORDER BY id") == [
        ("SO-1", "R-1", "L-1", "30"), ("SO-1", "R-2", "L-2", "5")]
    assert await outbox(warehouse, "backflush.completion.goods-shipped") == ["SO-1"]
    [awaited] = await emitted(url, "backflush.completion.finished-stock-awaited")
    assert (awaited["order_id"], awaited["needed"], awaited["free"]) == ("SO-2", "25", "20")
    await clean(warehouse)


async def test_a_waiting_stock_order_is_served_when_a_run_is_racked_and_signed_for(warehouse: ServiceRuntime) -> None:
    url = warehouse.settings.database_url
    await apply(warehouse, [stock_order("SO-1", 10)])
    assert await outbox(warehouse, "backflush.completion.finished-stock-awaited") == ["SO-1"]
    await apply(warehouse, [stocked("R-1", "L-1", 12)])
    assert await outbox(warehouse, "backflush.completion.goods-shipped") == ["SO-1"]
    await apply(warehouse, [DeliverySigned(order_id="SO-1", signed_by="J. Doe", signed_at="2026-12-07T10:00:00Z")])
    [signed] = await emitted(url, "backflush.completion.goods-signed-for")
    assert signed["from_stock"] is True and signed["new_owner"] == "ACME"
    assert signed["lots"] == [{"lot": "L-1", "quantity": "10"}]  # what leaves the manufacturer's books
    # closing it is the distributor's word on this signature (`completions.distributor` is not ours to write)
    assert await outbox(warehouse, "backflush.completion.order-closed") == []
    assert await rows(url, "SELECT order_id, quantity, status FROM stock_units ORDER BY id") == [
        ("R-1", "2", "stored"), ("SO-1", "10", "delivered")]
    await clean(warehouse)


async def test_stock_orders_wait_in_arrival_order_and_a_cancelled_one_lets_the_next_go(
        warehouse: ServiceRuntime) -> None:
    await apply(warehouse, [stock_order("SO-1", 30), stock_order("SO-2", 5)])
    await apply(warehouse, [stocked("R-1", "L-1", 10)])
    # SO-2 would fit, but SO-1 came first: nothing jumps the line
    assert await outbox(warehouse, "backflush.completion.goods-shipped") == []
    await apply(warehouse, [OrderCancelled(order_id="SO-1", reason="changed mind", stage="waiting-for-stock")])
    assert await outbox(warehouse, "backflush.completion.goods-shipped") == ["SO-2"]
    await clean(warehouse)


async def test_a_run_is_withdrawn_only_while_its_lot_is_whole_and_unallocated(warehouse: ServiceRuntime) -> None:
    url = warehouse.settings.database_url
    await apply(warehouse, [stocked("R-1", "L-1", 10), stocked("R-2", "L-2", 10), stock_order("SO-1", 4)])
    await apply(warehouse, [FinishedStockWithdrawalRequested(run_id="R-1", item="SEAT-ASSY", lot="L-1",
                                                             quantity=Decimal(10)),
                            FinishedStockWithdrawalRequested(run_id="R-2", item="SEAT-ASSY", lot="L-2",
                                                             quantity=Decimal(10))])
    assert await outbox(warehouse, "backflush.completion.finished-stock-withdrawal-refused") == ["R-1"]
    assert await outbox(warehouse, "backflush.completion.finished-stock-withdrawn") == ["R-2"]
    [refusal] = await emitted(url, "backflush.completion.finished-stock-withdrawal-refused")
    assert "4 of its 10 units of lot L-1 were allocated and shipped to SO-1" in str(refusal["reason"])
    assert await rows(url, "SELECT used FROM locations WHERE code = 'DC-A1'") == [("6",)]
    await clean(warehouse)


async def test_an_order_allowing_partial_deliveries_ships_what_is_free_and_each_part_is_signed_for_on_its_own(
        warehouse: ServiceRuntime) -> None:
    url = warehouse.settings.database_url
    order = stock_order("SO-P", 5)
    partial = order.model_copy(update={"processing": order.processing.model_copy(update={"partial_deliveries": True})})
    await apply(warehouse, [stocked("R-1", "L-1", 2), partial])
    [first] = await emitted(url, "backflush.completion.goods-shipped")
    [awaited] = await emitted(url, "backflush.completion.finished-stock-awaited")
    assert (first["quantity"], awaited["needed"], awaited["free"]) == ("2", "3", "0")
    await apply(warehouse, [DeliverySigned(order_id="SO-P", signed_by="J. Doe", signed_at="2026-12-07T10:00:00Z")])
    assert [e["quantity"] for e in await emitted(url, "backflush.completion.goods-signed-for")] == ["2"]
    await clean(warehouse)
    await apply(warehouse, [stocked("R-2", "L-2", 4)])
    assert [e["quantity"] for e in await emitted(url, "backflush.completion.goods-shipped")] == ["2", "3"]
    await clean(warehouse)  # a part delivered, a part shipped
    await apply(warehouse, [DeliverySigned(order_id="SO-P", signed_by="J. Doe", signed_at="2026-12-08T10:00:00Z")])
    assert [e["lots"] for e in await emitted(url, "backflush.completion.goods-signed-for")] == [
        [{"lot": "L-1", "quantity": "2"}], [{"lot": "L-2", "quantity": "3"}]]  # each part its own lots
    assert await rows(url, "SELECT quantity, lots, signed_by FROM shipments") == [("5", '["L-1", "L-2"]', "J. Doe")]
    await clean(warehouse)


async def test_a_cancel_that_arrives_after_part_of_a_stock_order_shipped_is_refused(warehouse: ServiceRuntime) -> None:
    """Stock arrives on its own topic, so the warehouse may ship a waiting order's part between the distributor's
    check and the cancel reaching the warehouse: the shipment stands (a return is another flow), the cancel is
    dead-lettered with the reason, and the order is not booked as cancelled (found by the fuzz test, seed 133059)."""
    url = warehouse.settings.database_url
    order = stock_order("SO-C", 5)
    partial = order.model_copy(update={"processing": order.processing.model_copy(update={"partial_deliveries": True})})
    await apply(warehouse, [stocked("R-1", "L-1", 2), partial])
    assert [e["quantity"] for e in await emitted(url, "backflush.completion.goods-shipped")] == ["2"]
    await apply(warehouse, [OrderCancelled(order_id="SO-C", reason="changed mind", stage="waiting-for-stock")],
                dead_letters=1)
    assert await rows(url, "SELECT order_id FROM cancelled_orders") == []
    await clean(warehouse)


async def test_a_stock_order_cancelled_before_it_reached_the_warehouse_is_never_served(
        warehouse: ServiceRuntime) -> None:
    """The warehouse remembers a cancel of an order it has not seen yet (as it does for put-aways): the stock order
    arriving after it takes nothing, so no cancelled order's goods go out (found by the fuzz test, seed 133059)."""
    url = warehouse.settings.database_url
    await apply(warehouse, [stocked("R-1", "L-1", 5),
                            OrderCancelled(order_id="SO-X", reason="changed mind", stage="waiting-for-stock")])
    await apply(warehouse, [stock_order("SO-X", 3), stock_order("SO-Y", 4)])
    assert await outbox(warehouse, "backflush.completion.goods-shipped") == ["SO-Y"]  # SO-X's place goes to SO-Y
    await clean(warehouse)


def cancel_request(order_id: str) -> StockOrderCancellationRequested:
    return StockOrderCancellationRequested(order_id=order_id, reason="found it cheaper", requested_by="ACME")


async def test_a_cancel_request_after_the_stock_order_shipped_is_refused_with_what_shipped(
        warehouse: ServiceRuntime) -> None:
    """The run that served the order reached the warehouse before the cancel: the shipment stands and the answer
    says so, so that the distributor does not cancel an order whose goods left."""
    url = warehouse.settings.database_url
    await apply(warehouse, [stock_order("SO-1", 5), stocked("R-1", "L-1", 5), cancel_request("SO-1")])
    assert await outbox(warehouse, "backflush.completion.goods-shipped") == ["SO-1"]
    assert await outbox(warehouse, "backflush.completion.stock-order-cancellation-accepted") == []
    [refused] = await emitted(url, "backflush.completion.stock-order-cancellation-refused")
    assert (refused["order_id"], refused["reason"]) == ("SO-1", "5 of 5 units shipped")
    assert await rows(url, "SELECT order_id FROM cancelled_orders") == []
    await clean(warehouse)


async def test_a_cancel_request_after_part_of_a_stock_order_shipped_is_refused_naming_the_part_deliveries(
        warehouse: ServiceRuntime) -> None:
    url = warehouse.settings.database_url
    order = stock_order("SO-P", 5)
    partial = order.model_copy(update={"processing": order.processing.model_copy(update={"partial_deliveries": True})})
    await apply(warehouse, [stocked("R-1", "L-1", 2), partial, cancel_request("SO-P")])
    [refused] = await emitted(url, "backflush.completion.stock-order-cancellation-refused")
    assert refused["reason"] == "2 of 5 units shipped in part deliveries"
    await clean(warehouse)


async def test_a_cancel_request_while_the_stock_order_waits_is_accepted_and_the_next_order_in_line_is_served(
        warehouse: ServiceRuntime) -> None:
    url = warehouse.settings.database_url
    await apply(warehouse, [stock_order("SO-1", 30), stock_order("SO-2", 5), stocked("R-1", "L-1", 10)])
    assert await outbox(warehouse, "backflush.completion.goods-shipped") == []  # SO-2 waits behind SO-1
    await apply(warehouse, [cancel_request("SO-1")])
    assert await outbox(warehouse, "backflush.completion.stock-order-cancellation-accepted") == ["SO-1"]
    assert await outbox(warehouse, "backflush.completion.goods-shipped") == ["SO-2"]
    # the distributor's OrderCancelled that follows the acceptance changes nothing more here
    await apply(warehouse, [OrderCancelled(order_id="SO-1", reason="found it cheaper", stage="waiting-for-stock")])
    assert await rows(url, "SELECT order_id, status FROM stock_orders ORDER BY order_id") == [
        ("SO-1", "cancelled"), ("SO-2", "shipped")]
    await clean(warehouse)


async def test_every_cancel_request_is_answered_also_when_asked_again(warehouse: ServiceRuntime) -> None:
    await apply(warehouse, [stock_order("SO-1", 5), cancel_request("SO-1"), cancel_request("SO-1")])
    assert await outbox(warehouse, "backflush.completion.stock-order-cancellation-accepted") == ["SO-1", "SO-1"]
    await apply(warehouse, [stocked("R-1", "L-1", 5)])
    assert await outbox(warehouse, "backflush.completion.goods-shipped") == []  # a cancelled order is never served
    await clean(warehouse)


async def test_a_cancel_request_for_an_order_that_is_not_a_stock_order_is_refused_and_its_goods_stay(
        warehouse: ServiceRuntime) -> None:
    """Only a stock order's cancel is the warehouse's to decide. A request naming a pre-product order whose goods
    are racked (a forged or misrouted one) must not mark that order cancelled with its units still stored: it is
    dead-lettered with the reason, and the order's goods stay as they were."""
    from backflush_shared.contracts.inventory_details import GoodsDirectedToRacks

    pre = OrderForwarded(order_id="PRE-1", flow=Flow.PRE, item="CHAIR-ERGO", quantity=Decimal(2),
                         processing=OrderProcessingInfo(order_holder="ACME", ship_to="ACME dock 1",
                                                        due_date=date(2026, 12, 24)))
    racked = GoodsDirectedToRacks(order_id="PRE-1", item="CHAIR-ERGO", lot="PRE-1-L1", quantity=Decimal(2),
                                  certificate_id="QC-PRE-1")
    await apply(warehouse, [pre, racked])
    await apply(warehouse, [cancel_request("PRE-1")], dead_letters=1)
    url = warehouse.settings.database_url
    assert await rows(url, "SELECT order_id FROM cancelled_orders") == []
    assert await rows(url, "SELECT order_id, status FROM stock_units WHERE order_id = 'PRE-1'") == [("PRE-1", "stored")]
    assert await outbox(warehouse, "backflush.completion.stock-order-cancellation-accepted") == []
    await clean(warehouse)


async def test_a_cancel_request_for_a_stock_order_id_that_also_holds_racked_goods_is_refused(
        warehouse: ServiceRuntime) -> None:
    """Forged records can give one order id a waiting stock order and racked pre-product goods. A stock cancel then
    must not mark it cancelled with its racked units left in place (a later call-off would ship the goods of a
    cancelled order): it is dead-lettered with the reason."""
    from backflush_shared.contracts.inventory_details import GoodsDirectedToRacks

    racked = GoodsDirectedToRacks(order_id="SO-9", item="SEAT-ASSY", lot="SO-9-L1", quantity=Decimal(2),
                                  certificate_id="QC-SO-9")
    await apply(warehouse, [stock_order("SO-9", 5), racked])
    await apply(warehouse, [cancel_request("SO-9")], dead_letters=1)
    url = warehouse.settings.database_url
    assert await rows(url, "SELECT order_id FROM cancelled_orders") == []
    assert await outbox(warehouse, "backflush.completion.stock-order-cancellation-accepted") == []


async def test_a_stock_order_under_an_id_whose_consignment_goods_are_stored_is_refused_and_they_stay(
        warehouse: ServiceRuntime) -> None:
    """Forged records can name a stock order with the id of a post-product order whose goods sit in consignment
    storage. Serving it would pick and ship every stored unit of that id, the consignment goods too: the stock
    order is dead-lettered with the reason, and the consignment goods stay stored."""
    from backflush_shared.contracts.inventory_details import GoodsTurnedOver

    turned_over = GoodsTurnedOver(order_id="SO-8", item="SEAT-ASSY", lot="SO-8-C1", quantity=Decimal(3),
                                  owner="manufacturer")
    await apply(warehouse, [stocked("R-1", "L-1", 5), turned_over])
    await apply(warehouse, [stock_order("SO-8", 2)], dead_letters=1)
    url = warehouse.settings.database_url
    assert await outbox(warehouse, "backflush.completion.goods-shipped") == []
    assert await rows(url, "SELECT kind, status FROM stock_units WHERE order_id = 'SO-8'") == [
        ("consignment", "stored")]
    await clean(warehouse)
