"""The warehouse's handlers: put-away into racks or consignment storage, shipping, signatures, releases."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from collections.abc import Sequence
from typing import Any

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.common import RackPlacement
from backflush_shared.messaging.codec import ConsumedEvent
from backflush_shared.messaging.processor import Handler
from backflush_shared.unit_of_work import UnitOfWork
from backflush_shared.persistence.locks import lock_for_transaction

from backflush_warehouse import stock_sales
from backflush_warehouse.adapters import repository
from backflush_warehouse.domain.storage import (
    CancellationAfterShipmentError,
    LocationKind,
    NothingRackedError,
    NotShippedError,
    Placement,
    ShipmentQuantityMismatchError,
    UnknownShipmentOrderError,
    WaitingPutAway,
    plan_put_away,
    put_aways_that_fit,
)

SERVICE = "warehouse"


def _now() -> datetime:
    return datetime.now(UTC)


def _by_location(units: Sequence[Any], sign: int) -> dict[str, Decimal]:
    changes: dict[str, Decimal] = defaultdict(Decimal)
    for unit in units:
        changes[unit["location"]] += sign * unit["quantity"]
    return changes


async def _place(uow: UnitOfWork, *, order_id: str, item: str, lot: str, kind: LocationKind, owner: str,
                 plan: list[Placement]) -> None:
    await repository.add_stored_units(uow, order_id=order_id, item=item, lot=lot, kind=kind, owner=owner,
                                      placements=[(p.location, p.quantity) for p in plan], at=_now())
    await repository.occupy(uow, {p.location: p.quantity for p in plan})
    total = sum((p.quantity for p in plan), Decimal(0))
    if kind is LocationKind.RACK and await repository.is_stocked_run(uow, order_id):
        # a run's lot, stock for sale: no order to confirm it to; orders waiting for the item may go now
        await stock_sales.stock_racked(uow, order_id, item)
    elif kind is LocationKind.RACK:
        await uow.emit(
            inv.GoodsRacked(order_id=order_id, item=item, lot=lot,
                            placements=[RackPlacement(location=p.location, quantity=p.quantity) for p in plan]),
            correlation_id=order_id,
        )
        await uow.emit(
            c.InventoryCheckReturned(order_id=order_id, item=item, lot=lot, quantity=total,
                                     locations=[p.location for p in plan]),
            correlation_id=order_id,
        )
    else:
        for placement in plan:
            await uow.emit(
                inv.ConsignmentStockReceived(order_id=order_id, item=item, lot=lot, quantity=placement.quantity,
                                             owner=owner, location=placement.location),
                correlation_id=order_id,
            )
    uow.log.info("goods put away", kind=kind.value, quantity=str(total), locations=[p.location for p in plan])


async def _put_away(uow: UnitOfWork, *, order_id: str, item: str, lot: str, quantity: Decimal,
                    kind: LocationKind, owner: str) -> None:
    if await repository.is_cancelled(uow, order_id):
        uow.log.info("goods for a cancelled order are not put away")
        return
    if await repository.is_lot_cancelled(uow, order_id, lot):
        # the completion was cancelled before its goods arrived here (another topic): they are not stored
        uow.log.info("goods of a cancelled completion are not put away", lot=lot)
        return
    of_kind = [loc for loc in await repository.locations_in_order(uow) if loc.kind is kind]
    occupied = await repository.occupied(uow)
    plan = plan_put_away(of_kind, occupied, quantity)
    if plan is not None:
        await _place(uow, order_id=order_id, item=item, lot=lot, kind=kind, owner=owner, plan=plan)
        return
    capacity = sum((loc.capacity for loc in of_kind), Decimal(0))
    free = sum((max(loc.capacity - occupied.get(loc.code, Decimal(0)), Decimal(0)) for loc in of_kind), Decimal(0))
    reason = (
        f"no {kind.value} space for {quantity} units of {item}"
        + (f" (all {kind.value} locations together hold {capacity})" if capacity < quantity else "")
    )
    await repository.add_waiting_put_away(uow, order_id=order_id, item=item, lot=lot, quantity=quantity,
                                          kind=kind, owner=owner, cause_event_id=str(uow.consumed.envelope.event_id),
                                          since=_now())
    await uow.emit(inv.PutAwayWaiting(order_id=order_id, item=item, quantity=quantity, reason=reason, free=free))
    uow.log.info("put-away waits for space", reason=reason)


async def _retry_waiting_put_aways(uow: UnitOfWork) -> None:
    rows = await repository.waiting_put_aways_now(uow)
    if not rows:
        return
    by_id = {r["id"]: r for r in rows}
    waiting = [WaitingPutAway(r["id"], r["quantity"], LocationKind(r["kind"])) for r in rows]
    for entry, plan in put_aways_that_fit(waiting, await repository.locations_in_order(uow),
                                          await repository.occupied(uow)):
        row = by_id[entry.id]
        await repository.delete_waiting_put_away(uow.session, entry.id)
        await _place(uow, order_id=row["order_id"], item=row["item"], lot=row["lot"], kind=entry.kind,
                     owner=row["owner"], plan=plan)


async def _release(uow: UnitOfWork, units: Sequence[Any], at: datetime) -> None:
    """The units leave storage without being shipped: their space comes back."""
    await repository.set_units_status(uow, units, "released", at)
    await repository.occupy(uow, _by_location(units, -1))


async def on_directed_to_racks(uow: UnitOfWork, event: inv.GoodsDirectedToRacks) -> None:
    await _put_away(uow, order_id=event.order_id, item=event.item, lot=event.lot, quantity=event.quantity,
                    kind=LocationKind.RACK, owner="manufacturer")


async def on_turned_over(uow: UnitOfWork, event: inv.GoodsTurnedOver) -> None:
    await _put_away(uow, order_id=event.order_id, item=event.item, lot=event.lot, quantity=event.quantity,
                    kind=LocationKind.CONSIGNMENT, owner=event.owner)


async def on_final_order(uow: UnitOfWork, event: o.FinalOrderPlaced) -> None:
    if await repository.is_shipped(uow, event.order_id):
        uow.log.info("final order already shipped")
        return
    units = await repository.stored_units(uow, event.order_id, LocationKind.CONSIGNMENT)
    if not units:
        raise UnknownShipmentOrderError(event.order_id, "final order")
    stored = sum((u["quantity"] for u in units), Decimal(0))
    if stored != event.quantity:
        raise ShipmentQuantityMismatchError(event.order_id, event.quantity, stored)
    await _ship(uow, order_id=event.order_id, item=event.item, quantity=event.quantity, ship_to=event.ship_to,
                order_holder=event.order_holder, units=units)


async def _ship(uow: UnitOfWork, *, order_id: str, item: str, quantity: Decimal, ship_to: str,
                order_holder: str, units: Sequence[Any]) -> None:
    """Pick `units` out of their locations, record the shipment, and give the space to waiting put-aways."""
    at = _now()
    await repository.set_units_status(uow, units, "shipped", at)
    await repository.occupy(uow, _by_location(units, -1))
    lots = sorted({u["lot"] for u in units})
    await repository.add_shipment(uow, order_id=order_id, item=item, quantity=quantity, ship_to=ship_to,
                                  order_holder=order_holder, lots=lots, at=at)
    await uow.emit(c.GoodsShipped(order_id=order_id, item=item, quantity=quantity, ship_to=ship_to, lots=lots))
    uow.log.info("goods picked and shipped", quantity=str(quantity), lots=lots,
                 locations=sorted({u["location"] for u in units}))
    await _retry_waiting_put_aways(uow)


async def on_racked_goods_called_off(uow: UnitOfWork, event: o.RackedGoodsCalledOff) -> None:
    """Pre-product: the distributor accepted the holder's call-off (it checked the holder, and refuses cancels
    from now on); the goods leave the racks, so rack space comes back."""
    if await repository.is_shipped(uow, event.order_id):
        uow.log.info("delivery already shipped")
        return
    units = await repository.stored_units(uow, event.order_id, LocationKind.RACK)
    if not units:
        if await repository.has_waiting_put_away(uow.session, event.order_id):
            state = "still waiting for rack space; request it again once racked"
        elif await repository.is_cancelled(uow, event.order_id):
            state = "the order was cancelled"
        else:
            state = "nothing racked for it"
        raise NothingRackedError(event.order_id, state)
    await _ship(uow, order_id=event.order_id, item=units[0]["item"],
                quantity=sum((u["quantity"] for u in units), Decimal(0)), ship_to=event.ship_to,
                order_holder=event.order_holder, units=units)


async def on_delivery_signed(uow: UnitOfWork, event: c.DeliverySigned) -> None:
    shipment = await repository.shipment(uow, event.order_id)
    if shipment is not None and await repository.is_stock_order(uow, event.order_id):
        await stock_sales.sign(uow, event)  # a stock order may be delivered, and signed for, in parts
        return
    if shipment is None:
        state = "still in storage" if await repository.holds_any_unit(uow, event.order_id) \
            else "nothing received for it"
        raise NotShippedError(event.order_id, state)
    if shipment["signed_by"] is not None:
        uow.log.info("delivery already signed for", signed_by=shipment["signed_by"])
        return
    units = await repository.units_with_status(uow, event.order_id, "shipped")
    at = _now()
    previous_owner = units[0]["owner"] if units else "manufacturer"
    for unit in units:
        await repository.record_ownership_transfer(
            uow, order_id=event.order_id, item=unit["item"], lot=unit["lot"], quantity=unit["quantity"],
            from_owner=unit["owner"], to_owner=shipment["order_holder"], at=at)
    await repository.set_units_status(uow, units, "delivered", at, owner=shipment["order_holder"])
    await repository.sign_shipment(uow, event.order_id, signed_by=event.signed_by, signed_at=event.signed_at)
    await uow.emit(c.GoodsSignedFor(order_id=event.order_id, item=shipment["item"], quantity=shipment["quantity"],
                                    signed_by=event.signed_by, signed_at=event.signed_at,
                                    previous_owner=previous_owner, new_owner=shipment["order_holder"]))
    # closing the order is the distributor's word, on GoodsSignedFor
    uow.log.info("goods signed for; ownership moved", signed_by=event.signed_by)


async def on_order_cancelled(uow: UnitOfWork, event: o.OrderCancelled) -> None:
    at = _now()
    if await repository.is_cancelled(uow, event.order_id):
        return
    shipment = await repository.shipment(uow, event.order_id)
    if shipment is not None:
        raise CancellationAfterShipmentError(event.order_id, signed=shipment["signed_by"] is not None)
    await repository.add_cancelled_order(uow, event.order_id, at)
    await stock_sales.stock_order_cancelled(uow, event.order_id)  # a waiting stock order: the next one may go
    await repository.delete_waiting_put_aways(uow.session, event.order_id)
    units = await repository.units_with_status(uow, event.order_id, "stored")
    if not units:
        return
    await _release(uow, units, at)
    await uow.emit(
        inv.GoodsReleasedFromStorage(order_id=event.order_id, item=units[0]["item"],
                                     quantity=sum((u["quantity"] for u in units), Decimal(0)),
                                     locations=sorted({u["location"] for u in units}))
    )
    uow.log.info("goods of a cancelled order released", locations=sorted({u["location"] for u in units}))
    await _retry_waiting_put_aways(uow)


async def on_completion_cancelled(uow: UnitOfWork, event: c.CompletionCancelled) -> None:
    """One completion reversed by the manufacturer: its lot leaves consignment storage (or stops waiting for
    space), and the space goes to waiting put-aways."""
    if event.make_to_stock:
        # its lot was received into the manufacturer's component stock, never turned over to us: nothing to release
        uow.log.info("cancelled completion of a make-to-stock order: not ours, ignored", lot=event.lot)
        return
    shipment = await repository.shipment(uow, event.order_id)
    if shipment is not None:
        raise CancellationAfterShipmentError(event.order_id, signed=shipment["signed_by"] is not None)
    # remembered: the lot's GoodsTurnedOver may still be on its way (another topic) and must not be put away then
    if not await repository.is_lot_cancelled(uow, event.order_id, event.lot):
        await repository.add_cancelled_lot(uow, event.order_id, event.lot, _now())
    await repository.delete_waiting_put_aways(uow.session, event.order_id, lot=event.lot)
    units = await repository.stored_units_of_lot(uow, event.order_id, event.lot)
    if not units:
        uow.log.info("cancelled completion's lot was not in storage", lot=event.lot)
        return
    await _release(uow, units, _now())
    await uow.emit(
        inv.GoodsReleasedFromStorage(order_id=event.order_id, item=event.item,
                                     quantity=sum((u["quantity"] for u in units), Decimal(0)),
                                     locations=sorted({u["location"] for u in units}))
    )
    uow.log.info("lot of a cancelled completion released", lot=event.lot)
    await _retry_waiting_put_aways(uow)


#: The advisory lock of the warehouse's storage: every location's space, the put-aways waiting for it, and the
#: units of every order. A put-away plans from the free space of all locations of its kind, a shipment or a
#: cancellation hands freed space to any waiting order, and a put-away must see a cancellation of its order that
#: committed first: so every handler takes this one lock before it reads anything (PostgreSQL with several
#: instances; SQLite has one writer anyway).
STORAGE_LOCK = "warehouse:storage"


def _under_storage_lock(handler: Handler) -> Handler:
    async def locked(uow: UnitOfWork, event: Any) -> None:
        await lock_for_transaction(uow.session, STORAGE_LOCK)
        await handler(uow, event)

    locked.__name__ = locked.__qualname__ = handler.__name__
    locked.__doc__ = handler.__doc__
    return locked


def _order_of(event: Event) -> str | None:
    """The order (or run) whose rows the event's handler reads; None when it reads none."""
    if isinstance(event, o.OrderForwarded) and event.flow.value != stock_sales.STOCK_FLOW:
        return None  # not a stock order: ignored by its handler
    if isinstance(event, c.CompletionCancelled) and event.make_to_stock:
        return None  # never ours: ignored by its handler
    for name in ("order_id", "run_id"):
        value = getattr(event, name, None)
        if value is not None:
            return str(value)
    return None


async def load_batch(uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
    """Before a batch is applied: take the storage lock, then read the rows of every order its events are about,
    a few statements for the batch instead of a few per event (see `repository.load_orders`)."""
    order_ids = {order_id for consumed in events if (order_id := _order_of(consumed.event)) is not None}
    if not order_ids:
        return
    await lock_for_transaction(uow.session, STORAGE_LOCK)  # before anything is read, as every handler does
    await repository.load_orders(uow, order_ids)


def build_handlers(_runtime: Any) -> dict[type[Event], Handler]:
    handlers: dict[type[Event], Handler] = {
        c.CompletionCancelled: on_completion_cancelled,
        inv.GoodsDirectedToRacks: on_directed_to_racks,
        inv.GoodsTurnedOver: on_turned_over,
        o.FinalOrderPlaced: on_final_order,
        c.DeliverySigned: on_delivery_signed,
        o.OrderCancelled: on_order_cancelled,
        o.RackedGoodsCalledOff: on_racked_goods_called_off,
        o.OrderForwarded: stock_sales.on_stock_order,
        o.StockOrderCancellationRequested: stock_sales.on_cancellation_requested,
        inv.FinishedGoodsStocked: stock_sales.on_finished_goods_stocked,
        inv.FinishedStockWithdrawalRequested: stock_sales.on_withdrawal_requested,
    }
    return {model: _under_storage_lock(handler) for model, handler in handlers.items()}


PUBLISHES: tuple[type[Event], ...] = (
    inv.StorageCapacityAnnounced,
    inv.GoodsRacked,
    inv.PutAwayWaiting,
    inv.ConsignmentStockReceived,
    inv.GoodsReleasedFromStorage,
    c.InventoryCheckReturned,
    c.GoodsShipped,
    c.GoodsSignedFor,
    c.FinishedStockAwaited,
    c.FinishedStockWithdrawn,
    c.FinishedStockWithdrawalRefused,
    c.StockOrderCancellationAccepted,
    c.StockOrderCancellationRefused,
)
