"""Finished-goods stock for sale (issue 17): runs' lots racked unallocated, stock orders served from them.

A `FinishedGoodsStocked` is racked like any put-away (waiting for rack space if the racks are full), but its units
belong to no order: they are stock for sale, owned by the manufacturer until a holder signs. A stock order
(`OrderForwarded` with flow `stock`) takes units first in, first out by lot and ships them; when the free stock
does not cover it, it waits, in arrival order, told with `FinishedStockAwaited`, and is served when stock arrives
(a run racked, a waiting order cancelled). Every handler runs under the storage lock (`handlers.build_handlers`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.common import LotQuantity
from backflush_shared.unit_of_work import UnitOfWork

from backflush_warehouse.adapters import repository
from backflush_warehouse.domain.stock import FreeUnit, WaitingStockOrder, serve_in_arrival_order
from backflush_warehouse.domain.storage import LocationKind, NotAStockOrderError, StockOrderIdInUseError

STOCK_FLOW = "stock"
ZERO = Decimal(0)


async def on_finished_goods_stocked(uow: UnitOfWork, event: inv.FinishedGoodsStocked) -> None:
    from backflush_warehouse import handlers  # the put-away is the one every flow uses

    if await repository.is_stocked_run(uow, event.run_id):
        uow.log.info("run already stocked", run_id=event.run_id)
        return
    await repository.add_finished_stock(uow, run_id=event.run_id, item=event.item, lot=event.lot,
                                        quantity=event.quantity, owner=event.owner, at=handlers._now())
    await handlers._put_away(uow, order_id=event.run_id, item=event.item, lot=event.lot, quantity=event.quantity,
                             kind=LocationKind.RACK, owner=event.owner)


async def stock_racked(uow: UnitOfWork, run_id: str, item: str) -> None:
    """A run's units were placed in the racks (at once or after waiting for space): waiting orders may go."""
    uow.log.info("finished-goods stock racked for sale", run_id=run_id, item=item)
    await serve_waiting(uow, item)


async def on_stock_order(uow: UnitOfWork, event: o.OrderForwarded) -> None:
    if event.flow.value != STOCK_FLOW:
        return
    if await repository.is_stock_order(uow, event.order_id):
        uow.log.info("stock order already known")
        return
    if await repository.holds_goods_of(uow, event.order_id):
        raise StockOrderIdInUseError(event.order_id)  # dead-lettered with the reason; those goods stay as they are
    if await repository.is_cancelled(uow, event.order_id):
        # its cancel came first (as put-aways of a cancelled order are never stored): serving it now would send out
        # the goods of a cancelled order
        uow.log.info("stock order cancelled before it arrived: not served")
        return
    from backflush_warehouse import handlers

    await repository.add_stock_order(
        uow, order_id=event.order_id, item=event.item, quantity=event.quantity,
        order_holder=event.processing.order_holder, ship_to=event.processing.ship_to,
        partial=event.processing.partial_deliveries, since=handlers._now())
    await serve_waiting(uow, event.item)


async def _free_units(session: AsyncSession, item: str) -> list[FreeUnit]:
    """Racked units of the item's stocked runs, first in, first out: the run stocked first, then placement."""
    return [FreeUnit(*row) for row in await repository.free_units(session, item)]


async def serve_waiting(uow: UnitOfWork, item: str) -> None:
    """Serve the item's waiting stock orders in arrival order from its free units; tell the rest why they wait."""
    from backflush_warehouse import handlers

    waiting = await repository.waiting_stock_orders(uow.session, item)
    if not waiting:
        return
    by_id = {row["order_id"]: row for row in waiting}
    serving = serve_in_arrival_order(
        [WaitingStockOrder(r["order_id"], r["quantity"] - r["shipped"], r["partial"]) for r in waiting],
        await _free_units(uow.session, item))
    at = handlers._now()
    for served in serving.served:
        row = by_id[served.order_id]
        emptied = []
        for take in served.takes:
            unit = take.unit
            if take.quantity == unit.quantity:
                emptied.append(unit.unit_id)
            # the taken part becomes the order's own row (split off the run's), so that shipping and signing work
            # on the order's units as in every flow; the run keeps what is left
            await repository.set_unit_quantity(uow, unit.unit_id, unit.quantity - take.quantity, at)
            await repository.add_stored_units(uow, order_id=served.order_id, item=item, lot=unit.lot,
                                              kind=LocationKind.RACK, owner="manufacturer",
                                              placements=[(unit.location, take.quantity)], at=at)
            await repository.add_stock_allocation(uow.session, order_id=served.order_id, run_id=unit.run_id,
                                                  item=item, lot=unit.lot, location=unit.location,
                                                  quantity=take.quantity, at=at)
        if emptied:  # a row emptied by the split holds nothing: gone, so the racks never list zero-unit rows
            await repository.delete_units(uow, emptied)
        shipped = row["shipped"] + served.quantity
        await repository.update_stock_order(uow, served.order_id, shipped=shipped,
                                            status="shipped" if shipped >= row["quantity"] else "waiting")
        await _ship_part(uow, row, served.quantity)
        uow.log.info("stock order served from finished-goods stock", order_id=served.order_id,
                     quantity=str(served.quantity), of=str(row["quantity"]),
                     lots=sorted({t.unit.lot for t in served.takes}))
    for still in serving.waiting:
        row = by_id[still.order_id]
        told = f"{still.needed}/{still.free}"
        if row["told"] == told:
            continue  # told already with these figures
        await repository.update_stock_order(uow, still.order_id, told=told)
        await uow.emit(c.FinishedStockAwaited(order_id=still.order_id, item=item, needed=still.needed,
                                              free=still.free), correlation_id=still.order_id)


async def _ship_part(uow: UnitOfWork, order: Any, quantity: Decimal) -> None:
    """Pick the order's stored units and ship them: the whole order, or one part of an order that allows partial
    deliveries. The order's shipment adds up its parts; a part shipped after a signature waits for its own."""
    from backflush_warehouse import handlers

    order_id = order["order_id"]
    units = await repository.units_with_status(uow, order_id, "stored")
    at = handlers._now()
    # a split moved no unit: the location's used space changes only now, as the units are picked
    await repository.set_units_status(uow, units, "shipped", at)
    await repository.occupy(uow, handlers._by_location(units, -1))
    lots = sorted({u["lot"] for u in units})
    shipment = await repository.shipment(uow, order_id)
    if shipment is None:
        await repository.add_shipment(uow, order_id=order_id, item=order["item"], quantity=quantity,
                                      ship_to=order["ship_to"], order_holder=order["order_holder"], lots=lots, at=at)
    else:
        await repository.add_to_shipment(uow, shipment, quantity=quantity, lots=lots, at=at)
    await uow.emit(c.GoodsShipped(order_id=order_id, item=order["item"], quantity=quantity, ship_to=order["ship_to"],
                                  lots=lots), correlation_id=order_id)
    await handlers._retry_waiting_put_aways(uow)


async def sign(uow: UnitOfWork, event: c.DeliverySigned) -> None:
    """The holder signed for what was shipped to a stock order: ownership of those units moves; the order closes
    once every unit of it is signed for (a partial delivery is signed for on its own)."""
    from backflush_warehouse import handlers

    order = await repository.stock_order(uow, event.order_id)
    assert order is not None, "called for stock orders only"
    units = await repository.units_with_status(uow, event.order_id, "shipped")
    if not units:
        uow.log.info("nothing shipped waits for a signature", order_id=event.order_id)
        return
    at = handlers._now()
    for unit in units:
        await repository.record_ownership_transfer(
            uow, order_id=event.order_id, item=unit["item"], lot=unit["lot"], quantity=unit["quantity"],
            from_owner=unit["owner"], to_owner=order["order_holder"], at=at)
    await repository.set_units_status(uow, units, "delivered", at, owner=order["order_holder"])
    await repository.sign_shipment(uow, event.order_id, signed_by=event.signed_by, signed_at=event.signed_at)
    quantity = sum((u["quantity"] for u in units), ZERO)
    by_lot: dict[str, Decimal] = {}
    for unit in units:
        by_lot[unit["lot"]] = by_lot.get(unit["lot"], ZERO) + unit["quantity"]
    await uow.emit(c.GoodsSignedFor(order_id=event.order_id, item=order["item"], quantity=quantity,
                                    signed_by=event.signed_by, signed_at=event.signed_at,
                                    previous_owner=units[0]["owner"], new_owner=order["order_holder"],
                                    from_stock=True, lots=tuple(LotQuantity(lot=lot, quantity=units_of_lot)
                                                                for lot, units_of_lot in sorted(by_lot.items()))),
                   correlation_id=event.order_id)
    delivered = sum((u["quantity"] for u in await repository.units_with_status(uow, event.order_id,
                                                                               "delivered")), ZERO)
    # closing the order is the distributor's word, once GoodsSignedFor covers all of it
    uow.log.info("stock delivery signed for; ownership moved", quantity=str(quantity),
                 delivered=str(delivered), of=str(order["quantity"]))


async def stock_order_cancelled(uow: UnitOfWork, order_id: str) -> None:
    """A waiting stock order cancelled: it holds nothing; the orders behind it may go now."""
    row = await repository.stock_order(uow, order_id)
    if row is None or row["status"] != "waiting" or row["shipped"] > 0:
        return  # a partly delivered order is refused a cancel before this (its goods shipped)
    await repository.update_stock_order(uow, order_id, status="cancelled")
    await serve_waiting(uow, row["item"])


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


async def on_cancellation_requested(uow: UnitOfWork, event: o.StockOrderCancellationRequested) -> None:
    """The distributor passes on a holder's cancel of a stock order: decided here, under the storage lock that
    every shipment takes, so the answer says truly whether the order shipped first. Nothing shipped: the order is
    cancelled (out of the line: the orders behind it may go) and the answer is `StockOrderCancellationAccepted`;
    something shipped: `StockOrderCancellationRefused` with what shipped. Every request is answered."""
    from backflush_warehouse import handlers

    order_id = event.order_id
    row = await repository.stock_order(uow, order_id)
    if row is not None and row["shipped"] > 0:
        parts = " in part deliveries" if row["shipped"] < row["quantity"] else ""
        reason = f"{_plain(row['shipped'])} of {_plain(row['quantity'])} units shipped{parts}"
        await uow.emit(c.StockOrderCancellationRefused(order_id=order_id, reason=reason), correlation_id=order_id)
        uow.log.info("cancel of a stock order refused: it shipped first", reason=reason)
        return
    if await repository.holds_goods_of(uow, order_id):
        # a stock order holds units only once something of it shipped (refused above): these are goods of another
        # flow under the same id, which a stock cancel would leave stored for a cancelled order
        raise NotAStockOrderError(order_id)  # dead-lettered with the reason; its goods stay as they are
    if not await repository.is_cancelled(uow, order_id):
        # an order not seen yet is remembered cancelled too, so that it is never served (see on_stock_order)
        await repository.add_cancelled_order(uow, order_id, handlers._now())
        await stock_order_cancelled(uow, order_id)
    await uow.emit(c.StockOrderCancellationAccepted(order_id=order_id), correlation_id=order_id)
    uow.log.info("stock order cancelled: nothing of it had shipped")


async def on_withdrawal_requested(uow: UnitOfWork, event: inv.FinishedStockWithdrawalRequested) -> None:
    """The manufacturer reverses a run: its lot leaves stock for sale if it is still whole and unallocated."""
    from backflush_warehouse import handlers

    stock = await repository.finished_stock_of(uow, event.run_id)
    if stock is None:
        await uow.emit(c.FinishedStockWithdrawalRefused(run_id=event.run_id, reason="its lot was never stocked here"),
                       correlation_id=event.run_id)
        return
    if stock["status"] == "withdrawn":
        await uow.emit(c.FinishedStockWithdrawn(run_id=event.run_id, item=stock["item"], lot=stock["lot"],
                                                quantity=stock["quantity"]), correlation_id=event.run_id)
        return
    allocated = await repository.allocations_of_run(uow.session, event.run_id)
    taken = sum((quantity for _order, quantity in allocated), ZERO)
    if taken:
        orders = sorted({order_id for order_id, _quantity in allocated})
        await uow.emit(c.FinishedStockWithdrawalRefused(
            run_id=event.run_id, reason=f"{taken} of its {stock['quantity']} units of lot {stock['lot']} were "
                                        f"allocated and shipped to {', '.join(orders)}"), correlation_id=event.run_id)
        return
    at = handlers._now()
    await repository.delete_waiting_put_aways(uow.session, event.run_id)
    units = await repository.units_with_status(uow, event.run_id, "stored")
    if units:
        await handlers._release(uow, units, at)
    await repository.set_finished_stock_status(uow, event.run_id, "withdrawn")
    await uow.emit(c.FinishedStockWithdrawn(run_id=event.run_id, item=stock["item"], lot=stock["lot"],
                                            quantity=stock["quantity"]), correlation_id=event.run_id)
    uow.log.info("run's lot withdrawn from stock for sale", run_id=event.run_id)
    if units:
        await handlers._retry_waiting_put_aways(uow)


async def free_stock(session: AsyncSession) -> dict[str, Decimal]:
    """Free finished-goods units per item (for the CLI)."""
    return {item: sum((u.quantity for u in await _free_units(session, item)), ZERO)
            for item in await repository.stocked_items(session)}


async def for_sale(session: AsyncSession) -> tuple[list[tuple[str, str, str, Decimal, Decimal, str]],
                                                   list[tuple[str, str, Decimal, str, str]]]:
    """Lots stocked for sale (run, item, lot, stocked, still free, status) in FIFO order, and the stock orders
    (order, item, quantity, status, since) in arrival order."""
    lots = []
    for row in await repository.finished_stock_in_order(session):
        free = sum((u.quantity for u in await _free_units(session, row["item"]) if u.run_id == row["run_id"]), ZERO)
        lots.append((row["run_id"], row["item"], row["lot"], row["quantity"], free, row["status"]))
    orders = [(r["order_id"], r["item"], r["quantity"], r["status"], str(r["since"])[:19])
              for r in await repository.stock_orders_in_order(session)]
    return lots, orders
