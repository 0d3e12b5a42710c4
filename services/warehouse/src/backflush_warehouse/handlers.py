"""The warehouse's handlers: put-away into racks or consignment storage, shipping, signatures, releases."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.common import RackPlacement
from backflush_shared.messaging.processor import Handler, HandlerContext
from backflush_shared.persistence.locks import lock_for_transaction

from backflush_warehouse import stock_sales
from backflush_warehouse.adapters.tables import (
    cancelled_lots,
    cancelled_orders,
    locations,
    ownership_transfers,
    shipments,
    stock_units,
    waiting_put_aways,
)
from backflush_warehouse.domain.storage import (
    CancellationAfterShipmentError,
    Location,
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


async def _locations(session: AsyncSession) -> list[Location]:
    rows = (await session.execute(select(locations).order_by(locations.c.position))).mappings().all()
    return [Location(r["code"], LocationKind(r["kind"]), r["capacity"]) for r in rows]


async def _occupied(session: AsyncSession) -> dict[str, Decimal]:
    rows = (await session.execute(select(locations.c.code, locations.c.used))).all()
    return {code: used for code, used in rows}


async def _occupy(session: AsyncSession, changes: dict[str, Decimal]) -> None:
    """Keep each location's `used` equal to the units stored there (the audit checks it).

    `used` is decimal text, so the sum is made here, not in SQL: the rows are read locked (in code order) and
    every handler already holds the storage lock (see `build_handlers`), so no other transaction writes between."""
    occupied = {code: used for code, used in (await session.execute(
        select(locations.c.code, locations.c.used).where(locations.c.code.in_(sorted(changes)))
        .order_by(locations.c.code).with_for_update()
    )).all()}
    for code, change in sorted(changes.items()):
        await session.execute(
            update(locations).where(locations.c.code == code).values(used=occupied.get(code, Decimal(0)) + change)
        )


def _by_location(units: Sequence[Any], sign: int) -> dict[str, Decimal]:
    changes: dict[str, Decimal] = defaultdict(Decimal)
    for unit in units:
        changes[unit["location"]] += sign * unit["quantity"]
    return changes


async def _is_cancelled(session: AsyncSession, order_id: str) -> bool:
    found = await session.execute(select(cancelled_orders.c.order_id).where(cancelled_orders.c.order_id == order_id))
    return found.scalar_one_or_none() is not None


async def _place(ctx: HandlerContext, *, order_id: str, item: str, lot: str, kind: LocationKind, owner: str,
                 plan: list[Placement]) -> None:
    at = _now()
    for placement in plan:
        await ctx.session.execute(
            insert(stock_units).values(order_id=order_id, item=item, lot=lot, location=placement.location,
                                       kind=kind.value, quantity=placement.quantity, owner=owner, status="stored",
                                       placed_at=at, updated_at=at)
        )
    await _occupy(ctx.session, {p.location: p.quantity for p in plan})
    total = sum((p.quantity for p in plan), Decimal(0))
    if kind is LocationKind.RACK and await stock_sales.is_stocked_run(ctx.session, order_id):
        # a run's lot, stock for sale: no order to confirm it to; orders waiting for the item may go now
        await stock_sales.stock_racked(ctx, order_id, item)
    elif kind is LocationKind.RACK:
        await ctx.emit(
            inv.GoodsRacked(order_id=order_id, item=item, lot=lot,
                            placements=[RackPlacement(location=p.location, quantity=p.quantity) for p in plan]),
            correlation_id=order_id,
        )
        await ctx.emit(
            c.InventoryCheckReturned(order_id=order_id, item=item, lot=lot, quantity=total,
                                     locations=[p.location for p in plan]),
            correlation_id=order_id,
        )
    else:
        for placement in plan:
            await ctx.emit(
                inv.ConsignmentStockReceived(order_id=order_id, item=item, lot=lot, quantity=placement.quantity,
                                             owner=owner, location=placement.location),
                correlation_id=order_id,
            )
    ctx.log.info("goods put away", kind=kind.value, quantity=str(total), locations=[p.location for p in plan])


async def _put_away(ctx: HandlerContext, *, order_id: str, item: str, lot: str, quantity: Decimal,
                    kind: LocationKind, owner: str) -> None:
    if await _is_cancelled(ctx.session, order_id):
        ctx.log.info("goods for a cancelled order are not put away")
        return
    cancelled_lot = await ctx.session.execute(
        select(cancelled_lots.c.lot).where(cancelled_lots.c.order_id == order_id, cancelled_lots.c.lot == lot))
    if cancelled_lot.scalar_one_or_none() is not None:
        # the completion was cancelled before its goods arrived here (another topic): they are not stored
        ctx.log.info("goods of a cancelled completion are not put away", lot=lot)
        return
    of_kind = [loc for loc in await _locations(ctx.session) if loc.kind is kind]
    plan = plan_put_away(of_kind, await _occupied(ctx.session), quantity)
    if plan is not None:
        await _place(ctx, order_id=order_id, item=item, lot=lot, kind=kind, owner=owner, plan=plan)
        return
    capacity = sum((loc.capacity for loc in of_kind), Decimal(0))
    occupied = await _occupied(ctx.session)
    free = sum((max(loc.capacity - occupied.get(loc.code, Decimal(0)), Decimal(0)) for loc in of_kind), Decimal(0))
    reason = (
        f"no {kind.value} space for {quantity} units of {item}"
        + (f" (all {kind.value} locations together hold {capacity})" if capacity < quantity else "")
    )
    await ctx.session.execute(
        insert(waiting_put_aways).values(order_id=order_id, item=item, lot=lot, quantity=quantity, kind=kind.value,
                                         owner=owner, cause_event_id=str(ctx.consumed.envelope.event_id),
                                         since=_now())
    )
    await ctx.emit(inv.PutAwayWaiting(order_id=order_id, item=item, quantity=quantity, reason=reason, free=free))
    ctx.log.info("put-away waits for space", reason=reason)


async def _retry_waiting_put_aways(ctx: HandlerContext) -> None:
    rows = (await ctx.session.execute(select(waiting_put_aways).order_by(waiting_put_aways.c.id))).mappings().all()
    if not rows:
        return
    by_id = {r["id"]: r for r in rows}
    waiting = [WaitingPutAway(r["id"], r["quantity"], LocationKind(r["kind"])) for r in rows]
    for entry, plan in put_aways_that_fit(waiting, await _locations(ctx.session), await _occupied(ctx.session)):
        row = by_id[entry.id]
        await ctx.session.execute(delete(waiting_put_aways).where(waiting_put_aways.c.id == entry.id))
        await _place(ctx, order_id=row["order_id"], item=row["item"], lot=row["lot"], kind=entry.kind,
                     owner=row["owner"], plan=plan)


async def on_directed_to_racks(ctx: HandlerContext) -> None:
    event = ctx.event
    assert isinstance(event, inv.GoodsDirectedToRacks)
    await _put_away(ctx, order_id=event.order_id, item=event.item, lot=event.lot, quantity=event.quantity,
                    kind=LocationKind.RACK, owner="manufacturer")


async def on_turned_over(ctx: HandlerContext) -> None:
    event = ctx.event
    assert isinstance(event, inv.GoodsTurnedOver)
    await _put_away(ctx, order_id=event.order_id, item=event.item, lot=event.lot, quantity=event.quantity,
                    kind=LocationKind.CONSIGNMENT, owner=event.owner)


async def on_final_order(ctx: HandlerContext) -> None:
    event = ctx.event
    assert isinstance(event, o.FinalOrderPlaced)
    if await _shipped(ctx.session, event.order_id):
        ctx.log.info("final order already shipped")
        return
    units = await _stored_units(ctx.session, event.order_id, LocationKind.CONSIGNMENT)
    if not units:
        raise UnknownShipmentOrderError(event.order_id, "final order")
    stored = sum((u["quantity"] for u in units), Decimal(0))
    if stored != event.quantity:
        raise ShipmentQuantityMismatchError(event.order_id, event.quantity, stored)
    await _ship(ctx, order_id=event.order_id, item=event.item, quantity=event.quantity, ship_to=event.ship_to,
                order_holder=event.order_holder, units=units)


async def _shipped(session: AsyncSession, order_id: str) -> bool:
    found = await session.execute(select(shipments.c.order_id).where(shipments.c.order_id == order_id))
    return found.scalar_one_or_none() is not None


async def _stored_units(session: AsyncSession, order_id: str, kind: LocationKind) -> Sequence[Any]:
    """The order's units still stored in locations of `kind`, in the order they were placed."""
    return (
        await session.execute(
            select(stock_units).where(stock_units.c.order_id == order_id, stock_units.c.status == "stored",
                                      stock_units.c.kind == kind.value)
            .order_by(stock_units.c.id)
        )
    ).mappings().all()


async def _ship(ctx: HandlerContext, *, order_id: str, item: str, quantity: Decimal, ship_to: str,
                order_holder: str, units: Sequence[Any]) -> None:
    """Pick `units` out of their locations, record the shipment, and give the space to waiting put-aways."""
    at = _now()
    await ctx.session.execute(
        update(stock_units).where(stock_units.c.id.in_([u["id"] for u in units])).values(status="shipped",
                                                                                           updated_at=at)
    )
    await _occupy(ctx.session, _by_location(units, -1))
    lots = sorted({u["lot"] for u in units})
    await ctx.session.execute(
        insert(shipments).values(order_id=order_id, item=item, quantity=quantity, ship_to=ship_to,
                                 order_holder=order_holder, lots=json.dumps(lots), shipped_at=at)
    )
    await ctx.emit(c.GoodsShipped(order_id=order_id, item=item, quantity=quantity, ship_to=ship_to, lots=lots))
    ctx.log.info("goods picked and shipped", quantity=str(quantity), lots=lots,
                 locations=sorted({u["location"] for u in units}))
    await _retry_waiting_put_aways(ctx)


async def on_racked_goods_called_off(ctx: HandlerContext) -> None:
    """Pre-product: the distributor accepted the holder's call-off (it checked the holder, and refuses cancels
    from now on); the goods leave the racks, so rack space comes back."""
    event = ctx.event
    assert isinstance(event, o.RackedGoodsCalledOff)
    if await _shipped(ctx.session, event.order_id):
        ctx.log.info("delivery already shipped")
        return
    units = await _stored_units(ctx.session, event.order_id, LocationKind.RACK)
    if not units:
        waiting = await ctx.session.execute(
            select(waiting_put_aways.c.id).where(waiting_put_aways.c.order_id == event.order_id))
        if waiting.first() is not None:
            state = "still waiting for rack space; request it again once racked"
        elif await _is_cancelled(ctx.session, event.order_id):
            state = "the order was cancelled"
        else:
            state = "nothing racked for it"
        raise NothingRackedError(event.order_id, state)
    await _ship(ctx, order_id=event.order_id, item=units[0]["item"],
                quantity=sum((u["quantity"] for u in units), Decimal(0)), ship_to=event.ship_to,
                order_holder=event.order_holder, units=units)


async def on_delivery_signed(ctx: HandlerContext) -> None:
    event = ctx.event
    assert isinstance(event, c.DeliverySigned)
    if await stock_sales.is_stock_order(ctx.session, event.order_id) and await _shipped(ctx.session, event.order_id):
        await stock_sales.sign(ctx, event)  # a stock order may be delivered, and signed for, in parts
        return
    shipment = (
        await ctx.session.execute(select(shipments).where(shipments.c.order_id == event.order_id))
    ).mappings().one_or_none()
    if shipment is None:
        held = await ctx.session.execute(select(stock_units.c.id).where(stock_units.c.order_id == event.order_id))
        state = "still in storage" if held.first() is not None else "nothing received for it"
        raise NotShippedError(event.order_id, state)
    if shipment["signed_by"] is not None:
        ctx.log.info("delivery already signed for", signed_by=shipment["signed_by"])
        return
    units = (
        await ctx.session.execute(
            select(stock_units).where(stock_units.c.order_id == event.order_id, stock_units.c.status == "shipped")
        )
    ).mappings().all()
    at = _now()
    previous_owner = units[0]["owner"] if units else "manufacturer"
    for unit in units:
        await ctx.session.execute(
            insert(ownership_transfers).values(order_id=event.order_id, item=unit["item"], lot=unit["lot"],
                                               quantity=unit["quantity"], from_owner=unit["owner"],
                                               to_owner=shipment["order_holder"], at=at)
        )
    await ctx.session.execute(
        update(stock_units).where(stock_units.c.order_id == event.order_id, stock_units.c.status == "shipped")
        .values(status="delivered", owner=shipment["order_holder"], updated_at=at)
    )
    await ctx.session.execute(
        update(shipments).where(shipments.c.order_id == event.order_id).values(signed_by=event.signed_by,
                                                                              signed_at=event.signed_at)
    )
    await ctx.emit(c.GoodsSignedFor(order_id=event.order_id, item=shipment["item"], quantity=shipment["quantity"],
                                    signed_by=event.signed_by, signed_at=event.signed_at,
                                    previous_owner=previous_owner, new_owner=shipment["order_holder"]))
    # closing the order is the distributor's word, on GoodsSignedFor
    ctx.log.info("goods signed for; ownership moved", signed_by=event.signed_by)


async def on_order_cancelled(ctx: HandlerContext) -> None:
    event = ctx.event
    assert isinstance(event, o.OrderCancelled)
    at = _now()
    if await _is_cancelled(ctx.session, event.order_id):
        return
    shipment = (
        await ctx.session.execute(select(shipments.c.signed_by).where(shipments.c.order_id == event.order_id))
    ).one_or_none()
    if shipment is not None:
        raise CancellationAfterShipmentError(event.order_id, signed=shipment.signed_by is not None)
    await ctx.session.execute(insert(cancelled_orders).values(order_id=event.order_id, at=at))
    await stock_sales.stock_order_cancelled(ctx, event.order_id)  # a waiting stock order: the next one may go
    await ctx.session.execute(delete(waiting_put_aways).where(waiting_put_aways.c.order_id == event.order_id))
    units = (
        await ctx.session.execute(
            select(stock_units).where(stock_units.c.order_id == event.order_id, stock_units.c.status == "stored")
        )
    ).mappings().all()
    if not units:
        return
    await ctx.session.execute(
        update(stock_units).where(stock_units.c.id.in_([u["id"] for u in units])).values(status="released",
                                                                                           updated_at=at)
    )
    await _occupy(ctx.session, _by_location(units, -1))
    await ctx.emit(
        inv.GoodsReleasedFromStorage(order_id=event.order_id, item=units[0]["item"],
                                     quantity=sum((u["quantity"] for u in units), Decimal(0)),
                                     locations=sorted({u["location"] for u in units}))
    )
    ctx.log.info("goods of a cancelled order released", locations=sorted({u["location"] for u in units}))
    await _retry_waiting_put_aways(ctx)


async def on_completion_cancelled(ctx: HandlerContext) -> None:
    """One completion reversed by the manufacturer: its lot leaves consignment storage (or stops waiting for
    space), and the space goes to waiting put-aways."""
    event = ctx.event
    assert isinstance(event, c.CompletionCancelled)
    if event.make_to_stock:
        # its lot was received into the manufacturer's component stock, never turned over to us: nothing to release
        ctx.log.info("cancelled completion of a make-to-stock order: not ours, ignored", lot=event.lot)
        return
    shipment = (
        await ctx.session.execute(select(shipments.c.signed_by).where(shipments.c.order_id == event.order_id))
    ).one_or_none()
    if shipment is not None:
        raise CancellationAfterShipmentError(event.order_id, signed=shipment.signed_by is not None)
    # remembered: the lot's GoodsTurnedOver may still be on its way (another topic) and must not be put away then
    known = await ctx.session.execute(select(cancelled_lots.c.lot).where(cancelled_lots.c.order_id == event.order_id,
                                                                        cancelled_lots.c.lot == event.lot))
    if known.scalar_one_or_none() is None:
        await ctx.session.execute(insert(cancelled_lots).values(order_id=event.order_id, lot=event.lot, at=_now()))
    await ctx.session.execute(delete(waiting_put_aways).where(waiting_put_aways.c.order_id == event.order_id,
                                                              waiting_put_aways.c.lot == event.lot))
    units = (
        await ctx.session.execute(
            select(stock_units).where(stock_units.c.order_id == event.order_id, stock_units.c.lot == event.lot,
                                      stock_units.c.status == "stored")
        )
    ).mappings().all()
    if not units:
        ctx.log.info("cancelled completion's lot was not in storage", lot=event.lot)
        return
    await ctx.session.execute(
        update(stock_units).where(stock_units.c.id.in_([u["id"] for u in units])).values(status="released",
                                                                                           updated_at=_now())
    )
    await _occupy(ctx.session, _by_location(units, -1))
    await ctx.emit(
        inv.GoodsReleasedFromStorage(order_id=event.order_id, item=event.item,
                                     quantity=sum((u["quantity"] for u in units), Decimal(0)),
                                     locations=sorted({u["location"] for u in units}))
    )
    ctx.log.info("lot of a cancelled completion released", lot=event.lot)
    await _retry_waiting_put_aways(ctx)


#: The advisory lock of the warehouse's storage: every location's space, the put-aways waiting for it, and the
#: units of every order. A put-away plans from the free space of all locations of its kind, a shipment or a
#: cancellation hands freed space to any waiting order, and a put-away must see a cancellation of its order that
#: committed first: so every handler takes this one lock before it reads anything (PostgreSQL with several
#: instances; SQLite has one writer anyway).
STORAGE_LOCK = "warehouse:storage"


def _under_storage_lock(handler: Handler) -> Handler:
    async def locked(ctx: HandlerContext) -> None:
        await lock_for_transaction(ctx.session, STORAGE_LOCK)
        await handler(ctx)

    locked.__name__ = locked.__qualname__ = handler.__name__
    locked.__doc__ = handler.__doc__
    return locked


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
)
