"""The distributor's handlers: decode is done, so each one loads the order, moves its milestones, emits."""

from __future__ import annotations

import base64
import hashlib
import json
from decimal import Decimal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.common import OrderProcessingInfo
from backflush_shared.contracts.registry import events_on
from backflush_shared.contracts.topics import Topic, TopicNames
from backflush_shared.messaging.codec import ConsumedEvent, RecordOrigin
from backflush_shared.messaging.dead_letter import dead_letter_id, dead_letter_record
from backflush_shared.messaging.processor import Handler
from backflush_shared.unit_of_work import UnitOfWork

from backflush_distributor.adapters import repository
from backflush_distributor.domain.lifecycle import (
    DuplicateOrderError,
    Order,
    OrderState,
    UnknownOrderError,
    await_cancel_answer,
    cancel_accepted,
    cancel_goes_to_warehouse,
    cancel_answer_awaited,
    cancel_pending,
    cancel_refused,
    check_call_off,
    check_cancellable,
    final_order_due,
    may_cancel_for_capacity,
    never_fits,
    refused_by_warehouse,
    should_close_on_allocation,
    should_close_on_stock_signature,
    should_direct_to_racks,
    shipment_applies,
    signature_applies,
)

SERVICE = "distributor"

# What each event does to an order's milestones (beyond being recorded in its history).
Step = Callable[[UnitOfWork, Order, Any], Awaitable[Order]]


def _fingerprint(event: o.OrderPlaced) -> str:
    """What makes two placements of one order id the same order (the event id may differ on a retry)."""
    return hashlib.sha256(event.model_dump_json().encode()).hexdigest()


async def _on_order_placed(uow: UnitOfWork, event: o.OrderPlaced) -> None:
    at = repository.now()
    existing = await repository.load_current(uow, event.order_id)
    if existing is not None:
        if existing.fingerprint == _fingerprint(event):
            uow.log.info("order placed again with the same content: nothing to do")
            return
        if existing.status.state is not OrderState.REJECTED:
            raise DuplicateOrderError(event.order_id)
        # a refused order left nothing behind (nothing made, nothing stored): the corrected one takes its id
        uow.log.info("rejected order placed again with corrected content", reason=existing.order.milestones.rejected_reason)
        await repository.forget_rejected(uow, event.order_id)
    order = Order(event.order_id, event.flow.value, event.item, event.quantity)
    too_big = never_fits(order.flow, order.quantity, await repository.capacities(uow))
    if too_big is not None:
        # refused before anything is flushed or produced: waiting for space that can never exist is no wait
        order = order.with_milestones(rejected_reason=f"{too_big} (distributor)")
    await repository.add(uow, order, fingerprint=_fingerprint(event), order_holder=event.order_holder,
                         ship_to=event.ship_to, due_date=event.due_date, priority=event.priority.value, at=at)
    await _record(uow, event.order_id)
    await repository.record_transition(uow, event.order_id, order.status, at=at,
                                       cause_event_type=event.event_type,
                                       cause_event_id=uow.consumed.event_id)
    if too_big is not None:
        await uow.emit(o.OrderRejected(order_id=event.order_id, code="exceeds-storage-capacity", reason=too_big,
                                       rejected_by=SERVICE))
        uow.log.info("order rejected: it can never be stored", reason=too_big)
        return
    await uow.emit(
        o.OrderForwarded(
            order_id=event.order_id,
            flow=event.flow,
            item=event.item,
            quantity=event.quantity,
            processing=OrderProcessingInfo(order_holder=event.order_holder, ship_to=event.ship_to,
                                           due_date=event.due_date, priority=event.priority,
                                           partial_deliveries=event.partial_deliveries),
            # contract manufacturing: the holder's own consigned lots (and, if it allows, ours) go into the product
            components_owner=event.order_holder if event.contract_manufacturing else None,
            own_components_allowed=event.own_components_allowed,
        )
    )
    uow.log.info("order accepted and forwarded", flow=event.flow.value, item=event.item, quantity=str(event.quantity))


async def _cancellation_requested(uow: UnitOfWork, order: Order, event: o.OrderCancellationRequested) -> Order:
    check_cancellable(order)
    if cancel_goes_to_warehouse(order):
        # the warehouse may have shipped it already (its stock comes on another topic): it decides, we follow
        if cancel_pending(order):
            uow.log.info("cancel of a stock order already asked of the warehouse: waiting for its answer")
            return order
        await uow.emit(o.StockOrderCancellationRequested(order_id=order.order_id, reason=event.reason,
                                                         requested_by=event.requested_by))
        uow.log.info("cancel of a stock order passed on to the warehouse")
        return await_cancel_answer(order, event.reason, _record_of(uow.consumed.origin))
    status = order.status
    await uow.emit(o.OrderCancelled(order_id=order.order_id, reason=event.reason, stage=status.state.value))
    return order.with_milestones(cancelled_reason=event.reason)


async def _stock_cancel_accepted(uow: UnitOfWork, order: Order,
                                 event: c.StockOrderCancellationAccepted) -> Order:
    """The warehouse cancelled the stock order (nothing of it shipped): cancelled here, as any cancel."""
    if not cancel_pending(order):
        uow.log.warning("cancel accepted for an order with no cancel pending: recorded, not applied",
                        state=order.status.state.value)
        return order
    cancelled = cancel_accepted(order)
    await uow.emit(o.OrderCancelled(order_id=order.order_id, reason=order.milestones.cancel_requested or "",
                                    stage=order.status.state.value))
    return cancelled


async def _stock_cancel_refused(uow: UnitOfWork, order: Order, event: c.StockOrderCancellationRefused) -> Order:
    """The warehouse shipped (part of) the stock order before it read the cancel: the order goes on, and the
    holder's request is dead-lettered with the reason, as every refused cancel is (README "No cancel after
    shipment"), also when the order closed before the refusal came."""
    if not cancel_answer_awaited(order):
        uow.log.warning("cancel refused for an order with no cancel pending: recorded, not applied",
                        state=order.status.state.value)
        return order
    refusal = refused_by_warehouse(order, event.reason)
    request = order.milestones.cancel_request_record
    if request is not None:
        origin = _origin_of(request)
        assert uow.outgoing is not None
        await uow.outgoing.add(dead_letter_record(TopicNames(), origin, error_type=type(refusal).__name__,
                                                  reason=str(refusal), failed_by=SERVICE),
                               dedupe_id=dead_letter_id(SERVICE, origin))
    uow.log.info("cancel of a stock order refused by the warehouse", reason=str(refusal))
    return cancel_refused(order)


def _record_of(origin: RecordOrigin) -> str:
    """The cancel request as read, kept with the order until the warehouse answers (a refusal dead-letters it)."""
    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode()
    return json.dumps({"topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
                       "key": b64(origin.key), "value": b64(origin.value),
                       "headers": [[name, b64(value)] for name, value in origin.headers]}, separators=(",", ":"))


def _origin_of(record: str) -> RecordOrigin:
    raw = json.loads(record)

    def raw_bytes(text: str | None) -> bytes | None:
        return None if text is None else base64.b64decode(text)
    return RecordOrigin(topic=raw["topic"], partition=raw["partition"], offset=raw["offset"],
                        key=raw_bytes(raw["key"]), value=raw_bytes(raw["value"]),
                        headers=tuple((name, raw_bytes(value) or b"") for name, value in raw["headers"]))


async def _delivery_requested(uow: UnitOfWork, order: Order, event: o.DeliveryRequested) -> Order:
    """The holder calls off racked goods: checked here, where cancels are checked too, so that a call-off and a
    cancel of one order are decided in the order they were made (same partition of `orders.intake`)."""
    row = await repository.load_current(uow, order.order_id)
    assert row is not None
    if not check_call_off(order, order_holder=row.details["order_holder"], requested_by=event.order_holder):
        uow.log.info("racked goods already called off: nothing to do")
        return order
    await uow.emit(o.RackedGoodsCalledOff(order_id=order.order_id, order_holder=event.order_holder,
                                          ship_to=event.ship_to))
    uow.log.info("racked goods called off", ship_to=event.ship_to)
    return order.with_milestones(delivery_requested=True)


async def _rejected(uow: UnitOfWork, order: Order, event: o.OrderRejected | c.ProductionOrderRejected) -> Order:
    if order.status.state.finished:
        return order
    # the topic says who refused: our own OrderRejected, or the manufacturer's on its `completions`
    by = event.rejected_by if isinstance(event, o.OrderRejected) else "manufacturer"
    return order.with_milestones(rejected_reason=f"{event.reason} ({by})")


async def _parked(uow: UnitOfWork, order: Order, event: c.BackflushParked) -> Order:
    if order.milestones.parked_since is not None:
        return order
    return order.with_milestones(parked_since=uow.consumed.envelope.occurred_at)


async def _backflushed(uow: UnitOfWork, order: Order, event: c.ComponentsBackflushed) -> Order:
    return order.with_milestones(parked_since=None)


async def _inspected(uow: UnitOfWork, order: Order, event: c.QualityInspectionRecorded) -> Order:
    return order.with_milestones(quality_passed=True) if event.passed else order


async def _pre_sale_details(uow: UnitOfWork, order: Order, event: inv.PreSaleInventoryDetailsForwarded) -> Order:
    order = order.with_milestones(certificate_id=event.certificate.certificate_id, quality_passed=True,
                                  parked_since=None)
    if not should_direct_to_racks(order):
        return order
    await uow.emit(
        inv.GoodsDirectedToRacks(order_id=order.order_id, item=event.item, lot=event.lot, quantity=event.quantity,
                                 certificate_id=event.certificate.certificate_id)
    )
    return order.with_milestones(directed_to_racks=True)


async def _put_away_waiting(uow: UnitOfWork, order: Order, event: inv.PutAwayWaiting) -> Order:
    if order.milestones.racked or order.milestones.put_away_waiting_since is not None:
        return order
    return order.with_milestones(put_away_waiting_since=uow.consumed.envelope.occurred_at,
                                 put_away_needed=event.quantity, put_away_free=event.free)


async def _stock_awaited(uow: UnitOfWork, order: Order, event: c.FinishedStockAwaited) -> Order:
    """A stock order waits for finished-goods stock: since when (the first time), and the figures now."""
    since = order.milestones.stock_waiting_since or uow.consumed.envelope.occurred_at
    return order.with_milestones(stock_waiting_since=since, stock_needed=event.needed, stock_free=event.free)


async def _racked(uow: UnitOfWork, order: Order, event: inv.GoodsRacked) -> Order:
    return order.with_milestones(racked=True, put_away_waiting_since=None, put_away_needed=None, put_away_free=None)


async def _allocated(uow: UnitOfWork, order: Order, event: c.GoodsAllocated) -> Order:
    order = order.with_milestones(allocated=True)
    if should_close_on_allocation(order):
        await uow.emit(c.OrderClosed(order_id=order.order_id, closed_by=SERVICE))
        order = order.with_milestones(closed=True)
    return order


async def _completion_refused(uow: UnitOfWork, order: Order, event: c.CompletionRefused) -> Order:
    parked = order.milestones.parked_since if event.waits_for_components else None
    return order.with_milestones(refused_completion=f"{_plain(event.quantity)}, {event.code}", parked_since=parked)


def _plain(value: object) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


async def _completion_cancelled(uow: UnitOfWork, order: Order, event: c.CompletionCancelled) -> Order:
    return order.with_milestones(produced=event.cumulative_quantity, refused_completion=None)


async def _released_from_storage(uow: UnitOfWork, order: Order, event: inv.GoodsReleasedFromStorage) -> Order:
    if order.status.state.finished:
        return order  # a cancelled order's goods: nothing more to count
    # a cancelled completion's lot left consignment storage: the final order waits for its replacement
    return order.with_milestones(consigned=max(order.milestones.consigned - event.quantity, Decimal(0)))


async def _produced(uow: UnitOfWork, order: Order, event: c.ProductionCompleted) -> Order:
    return order.with_milestones(produced=max(order.milestones.produced, event.cumulative_quantity), parked_since=None,
                                 refused_completion=None)


async def _consigned(uow: UnitOfWork, order: Order, event: inv.ConsignmentStockReceived) -> Order:
    order = order.with_milestones(consigned=order.milestones.consigned + event.quantity)
    if final_order_due(order):
        row = await repository.load_current(uow, order.order_id)
        assert row is not None
        await uow.emit(
            o.FinalOrderPlaced(order_id=order.order_id, item=order.item, quantity=order.quantity,
                               ship_to=row.details["ship_to"], order_holder=row.details["order_holder"])
        )
        order = order.with_milestones(final_order_placed=True)
    return order


async def _shipped(uow: UnitOfWork, order: Order, event: c.GoodsShipped) -> Order:
    if not shipment_applies(order):
        uow.log.warning("goods shipped on an order that is not open: recorded, not applied",
                        state=order.status.state.value)
        return order
    if order.flow == "stock":  # shipped whole, or in parts when the holder allows partial deliveries
        return order.with_milestones(shipped=True, stock_shipped=order.milestones.stock_shipped + event.quantity)
    return order.with_milestones(shipped=True)


async def _signed_for(uow: UnitOfWork, order: Order, event: c.GoodsSignedFor) -> Order:
    if not signature_applies(order):
        uow.log.warning("goods signed for on an order that is not open: not applied", state=order.status.state.value)
        return order
    if order.flow == "stock":
        # a stock order may be delivered in parts, each signed for on its own: it closes once all of it is
        order = order.with_milestones(signed_by=event.signed_by,
                                      stock_signed=order.milestones.stock_signed + event.quantity)
        if not should_close_on_stock_signature(order):
            return order
    # Only the distributor says an order is closed (DESIGN "Who may say what"): the warehouse says it was signed for.
    if not order.milestones.closed:
        await uow.emit(c.OrderClosed(order_id=order.order_id, closed_by=SERVICE))
    return order.with_milestones(signed_by=event.signed_by, closed=True)


async def _closed(uow: UnitOfWork, order: Order, event: c.OrderClosed) -> Order:
    return order.with_milestones(closed=True)


async def _history_only(uow: UnitOfWork, order: Order, event: Event) -> Order:
    return order


STEPS: Mapping[type[Event], Step] = {
    o.OrderCancellationRequested: _cancellation_requested,
    o.OrderRejected: _rejected,
    c.ProductionOrderRejected: _rejected,
    o.DeliveryRequested: _delivery_requested,
    c.BackflushParked: _parked,
    c.ComponentsBackflushed: _backflushed,
    c.QualityInspectionRecorded: _inspected,
    inv.PreSaleInventoryDetailsForwarded: _pre_sale_details,
    inv.PutAwayWaiting: _put_away_waiting,
    inv.GoodsRacked: _racked,
    c.GoodsAllocated: _allocated,
    c.ProductionCompleted: _produced,
    c.CompletionRefused: _completion_refused,
    c.CompletionCancelled: _completion_cancelled,
    inv.GoodsReleasedFromStorage: _released_from_storage,
    inv.ConsignmentStockReceived: _consigned,
    c.GoodsShipped: _shipped,
    c.FinishedStockAwaited: _stock_awaited,
    c.GoodsSignedFor: _signed_for,
    c.OrderClosed: _closed,
    c.StockOrderCancellationAccepted: _stock_cancel_accepted,
    c.StockOrderCancellationRefused: _stock_cancel_refused,
}


async def _record(uow: UnitOfWork, order_id: str) -> None:
    envelope = uow.consumed.envelope
    # the event as validated, serialised once by pydantic itself: the JSON `json.dumps(model_dump(mode="json"))`
    # gave (non-ASCII text now kept as is, not \u-escaped) in a quarter of the time. Not the record's own value:
    # that may differ from what was applied (text is stripped on validation, later fields left out at their default)
    summary = uow.event.model_dump_json()
    await repository.record_event(
        uow, order_id=order_id, event_id=uow.consumed.event_id, event_type=envelope.event_type,
        source=envelope.source, topic=uow.consumed.origin.topic, occurred_at=envelope.occurred_at,
        summary=summary[:2000],
    )


async def _on_order_event(uow: UnitOfWork, event: Event) -> None:
    """Every other event about an order: record it in the order's history, then move its milestones."""
    order_id = event.record_key()
    if getattr(event, "make_to_stock", False):
        # a make-to-stock production order is the manufacturer's own, with no customer order here to file it under:
        # ignored on purpose, not dead-lettered as an unknown order
        uow.log.info("event of a make-to-stock production order: not a customer order, ignored", order_id=order_id)
        return
    row = await repository.load_for_update(uow, order_id)
    if row is None:
        raise UnknownOrderError(order_id, type(event).__name__)
    await _record(uow, order_id)
    step = STEPS.get(type(event), _history_only)
    updated = await step(uow, row.order, event)
    if updated == row.order:
        return
    await _save(uow, row, updated)


async def _save(uow: UnitOfWork, row: repository.OrderRow, updated: Order) -> None:
    at = repository.now()
    changed = await repository.save(uow, updated, previous=row.status, waiting_since=row.waiting_since, at=at)
    if changed:
        status = updated.status
        await repository.record_transition(uow, updated.order_id, status, at=at,
                                           cause_event_type=uow.event.event_type,
                                           cause_event_id=uow.consumed.event_id)
        uow.log.info("order moved", order_id=updated.order_id, state=status.state.value,
                     waiting_for=status.waiting_for)


async def _on_capacity_announced(uow: UnitOfWork, event: inv.StorageCapacityAnnounced) -> None:
    """Record the warehouse's capacity; orders accepted before it was known that can never fit are cancelled."""
    at = repository.now()
    cause = uow.consumed.event_id
    capacities = {"rack": event.rack_capacity, "consignment": event.consignment_capacity}
    for kind, capacity in capacities.items():
        await repository.set_capacity(uow, kind, capacity, at=at, cause_event_id=cause)
    uow.log.info("storage capacity announced", **{kind: str(value) for kind, value in capacities.items()})
    for row in await repository.open_orders(uow, for_update=True):
        reason = never_fits(row.order.flow, row.order.quantity, capacities)
        if reason is None or not may_cancel_for_capacity(row.order):
            continue
        # Already forwarded (maybe flushed): only a cancel undoes that everywhere; a rejection here would not.
        await uow.emit(o.OrderCancelled(order_id=row.order.order_id, reason=reason, stage=row.status.state.value),
                       correlation_id=row.order.order_id)
        await _save(uow, row, row.order.with_milestones(cancelled_reason=reason))


#: Events on the order topics that are about no customer order: runs of repetitive production and the stock
#: they hand to the warehouse (keyed by the run id).
NOT_ABOUT_ORDERS: frozenset[type[Event]] = frozenset({
    c.RunQuantityReported, c.RunReportRefused, c.RunCancellationRequested, c.RunReversed,
    c.FinishedStockWithdrawn, c.FinishedStockWithdrawalRefused,
    inv.FinishedGoodsStocked, inv.FinishedStockWithdrawalRequested,
})


async def load_batch(uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
    """Before a batch is applied: lock and load every order its events move, in one statement (see `STEPS`); an
    order placed is looked for too, so that its placement knows without a query of its own whether it is new."""
    await repository.lock_orders(uow, [
        consumed.event.record_key() for consumed in events
        if type(consumed.event) is not inv.StorageCapacityAnnounced
        and not getattr(consumed.event, "make_to_stock", False)
    ])


def build_handlers(_runtime: Any) -> dict[type[Event], Handler]:
    handlers: dict[type[Event], Handler] = {}
    # every topic about orders (its own included: they go into each order's history); not the planners' master data
    for topic in Topic:
        if topic is Topic.MASTER_DATA:
            continue
        for model in events_on(topic):
            if model in NOT_ABOUT_ORDERS:
                continue  # another service's business on a shared topic: ignored, not dead-lettered
            handlers[model] = _on_order_event
    handlers[o.OrderPlaced] = _on_order_placed
    handlers[inv.StorageCapacityAnnounced] = _on_capacity_announced
    return handlers


PUBLISHES: tuple[type[Event], ...] = (
    o.OrderForwarded,
    o.OrderCancelled,
    o.StockOrderCancellationRequested,
    o.OrderRejected,
    o.FinalOrderPlaced,
    o.RackedGoodsCalledOff,
    inv.GoodsDirectedToRacks,
    c.OrderClosed,
)
