"""An order's lifecycle as the distributor sees it: milestones reached, and the state derived from them.

Events about one order reach the distributor on several topics, and Kafka orders records only within one
partition of one topic: a `GoodsAllocated` on `completions` may arrive before the `GoodsRacked` on
`inventory-details.warehouse` that preceded it. So the lifecycle is not a chain of allowed transitions but a set of
milestones, each recorded once, and the state is the furthest point they prove. Any arrival order of the same
events gives the same state; a transition is recorded whenever the derived state or what it waits for changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from backflush_shared.errors import BackflushError


class OrderState(StrEnum):
    FORWARDED = "forwarded"
    WAITING_FOR_COMPONENTS = "waiting-for-components"
    WAITING_FOR_STOCK = "waiting-for-stock"  # a stock order: free finished-goods stock does not cover it yet
    QUALITY_CHECKED = "quality-checked"
    IN_PRODUCTION = "in-production"
    DIRECTED_TO_RACKS = "directed-to-racks"
    RACKED = "racked"
    IN_CONSIGNMENT = "in-consignment"
    FINAL_ORDER_PLACED = "final-order-placed"
    SHIPPED = "shipped"
    CLOSED = "closed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (OrderState.CLOSED, OrderState.REJECTED, OrderState.CANCELLED)


class OrderLifecycleError(BackflushError):
    """Base of the distributor's refusals."""


class DuplicateOrderError(OrderLifecycleError):
    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id} was already placed with different content; the first one stands")
        self.order_id = order_id


class UnknownOrderError(OrderLifecycleError):
    def __init__(self, order_id: str, event_type: str) -> None:
        super().__init__(f"{event_type} for order {order_id}, which was never placed here")
        self.order_id = order_id
        self.event_type = event_type


class OrderAlreadyFinishedError(OrderLifecycleError):
    def __init__(self, order_id: str, state: OrderState, action: str) -> None:
        super().__init__(f"cannot {action} order {order_id}: it is already {state.value}")
        self.order_id = order_id
        self.state = state


class CancellationAfterShipmentError(OrderLifecycleError):
    """A cancel once the goods are on their way: the manufacturer would reverse the consumption of goods that left
    (and the warehouse release nothing), so the order would be cancelled everywhere while delivered."""

    def __init__(self, order_id: str, state: OrderState, stage: str) -> None:
        super().__init__(f"cannot cancel order {order_id}: {stage} ({state.value}); a return is another flow")
        self.order_id = order_id
        self.state = state


class CallOffRefusedError(OrderLifecycleError):
    """Base of the refusals of a call-off of racked goods (`DeliveryRequested`): nothing ships."""

    def __init__(self, order_id: str, why: str) -> None:
        super().__init__(f"cannot call off the goods of order {order_id}: {why}")
        self.order_id = order_id


class CallOffByAnotherHolderError(CallOffRefusedError):
    """Only the order's holder may call its goods off (and name where they go)."""

    def __init__(self, order_id: str, requested_by: str, holder: str) -> None:
        super().__init__(order_id, f"requested by {requested_by!r}, but the order is held by {holder!r}")


class CallOffNotPreOrderError(CallOffRefusedError):
    """Post-product goods ship on the final order; there is nothing racked to call off."""

    def __init__(self, order_id: str, flow: str) -> None:
        super().__init__(order_id, f"it is a {flow}-product order; only pre-product orders are racked")


class CallOffNotRackedError(CallOffRefusedError):
    """Nothing to pick yet: the holder asks again once the order is racked."""

    def __init__(self, order_id: str, state: OrderState) -> None:
        super().__init__(order_id, f"its goods are not racked yet ({state.value}); request it again once racked")


class CallOffOfFinishedOrderError(CallOffRefusedError):
    def __init__(self, order_id: str, state: OrderState) -> None:
        super().__init__(order_id, f"the order is {state.value}")


class QuantityMismatchError(OrderLifecycleError):
    def __init__(self, order_id: str, what: str, quantity: Decimal, ordered: Decimal) -> None:
        super().__init__(f"{what} of {quantity} for order {order_id} exceeds the ordered quantity {ordered}")
        self.order_id = order_id


@dataclass(frozen=True)
class Milestones:
    """What has happened to an order so far. Quantities accumulate; flags are set once."""

    parked_since: datetime | None = None
    quality_passed: bool = False
    certificate_id: str | None = None
    directed_to_racks: bool = False
    put_away_waiting_since: datetime | None = None
    put_away_needed: Decimal | None = None  # what the waiting put-away needs, and the space free when it began
    put_away_free: Decimal | None = None
    racked: bool = False
    delivery_requested: bool = False  # pre-product: the holder called the racked goods off; the warehouse ships
    allocated: bool = False
    produced: Decimal = Decimal(0)
    consigned: Decimal = Decimal(0)
    final_order_placed: bool = False
    shipped: bool = False
    signed_by: str | None = None
    closed: bool = False
    rejected_reason: str | None = None
    cancelled_reason: str | None = None
    refused_completion: str | None = None  # the last completion the manufacturer refused, and why (order stays open)
    stock_waiting_since: datetime | None = None  # stock flow: waiting for finished-goods stock since, and the figures
    stock_needed: Decimal | None = None
    stock_free: Decimal | None = None
    stock_shipped: Decimal = Decimal(0)  # stock flow: units shipped and signed for so far (in parts if partial)
    stock_signed: Decimal = Decimal(0)
    # stock flow: a cancel the warehouse decides (it alone knows whether it shipped first): the holder's reason
    # while its answer is awaited, and the request as read (opaque to the domain: the handler tells a refusal by it)
    cancel_requested: str | None = None
    cancel_request_record: str | None = None

    def but(self, changes: dict[str, object]) -> Milestones:
        """These milestones with `changes` (field names; another name is a TypeError, as with `replace`)."""
        if not _MILESTONE_NAMES.issuperset(changes):
            raise TypeError(f"not milestones: {', '.join(sorted(set(changes) - _MILESTONE_NAMES))}")
        # the frozen instance's attributes copied, then changed, as `replace` would leave them: `replace` checks
        # and passes every one of the 26 fields through `__init__`, six times the cost, on every event applied
        changed = object.__new__(Milestones)
        changed.__dict__.update(self.__dict__)
        changed.__dict__.update(changes)
        return changed


_MILESTONE_NAMES = frozenset(f.name for f in fields(Milestones))


@dataclass(frozen=True)
class OrderStatus:
    state: OrderState
    waiting_for: str | None  # None once finished


@dataclass(frozen=True)
class Order:
    order_id: str
    flow: str  # "pre" | "post"
    item: str
    quantity: Decimal
    milestones: Milestones = field(default_factory=Milestones)

    def with_milestones(self, **changes: object) -> Order:
        # built directly: a second `replace` (of the order) cost as much as the milestones' own
        return Order(self.order_id, self.flow, self.item, self.quantity, self.milestones.but(changes))

    @property
    def status(self) -> OrderStatus:
        return derive_status(self)


def _quantity(value: Decimal) -> str:
    return format(value.normalize(), "f") if value == value.to_integral() else format(value, "f")


def derive_status(order: Order) -> OrderStatus:
    """The state an order's milestones prove, and what it waits for next."""
    m = order.milestones
    if m.cancelled_reason is not None:
        return OrderStatus(OrderState.CANCELLED, None)
    if m.rejected_reason is not None:
        return OrderStatus(OrderState.REJECTED, None)
    if order.flow == "stock":
        return _stock_status(order)
    if m.closed or m.signed_by is not None:
        return OrderStatus(OrderState.CLOSED, None)
    if order.flow == "pre":
        if m.allocated:
            return OrderStatus(OrderState.RACKED, "closing")  # the distributor closes it in the same step
        if m.racked:
            return OrderStatus(OrderState.RACKED, "inventory check to return to manufacturing (allocation)")
        if m.directed_to_racks:
            if m.put_away_waiting_since is not None:
                return OrderStatus(OrderState.DIRECTED_TO_RACKS, _rack_space(m))
            return OrderStatus(OrderState.DIRECTED_TO_RACKS, "put-away into racks")
        if m.parked_since is not None:
            return OrderStatus(OrderState.WAITING_FOR_COMPONENTS, "component stock")
        if m.quality_passed:
            return OrderStatus(OrderState.QUALITY_CHECKED, "pre-sale inventory details")
        return OrderStatus(OrderState.FORWARDED, "quality check")
    if m.shipped:
        return OrderStatus(OrderState.SHIPPED, "signature")
    if m.final_order_placed:
        return OrderStatus(OrderState.FINAL_ORDER_PLACED, "shipment")
    if m.consigned >= order.quantity:
        return OrderStatus(OrderState.IN_CONSIGNMENT, "final order")
    if m.parked_since is not None:
        return OrderStatus(OrderState.WAITING_FOR_COMPONENTS, "component stock")
    if m.produced > 0:
        if m.produced >= order.quantity:
            remaining = order.quantity - m.consigned
            return OrderStatus(OrderState.IN_PRODUCTION, f"consignment storage of {_quantity(remaining)}")
        return OrderStatus(OrderState.IN_PRODUCTION, _refused(m, f"completion of the remaining {_quantity(order.quantity - m.produced)}"))
    return OrderStatus(OrderState.FORWARDED, _refused(m, "production"))


def _refused(m: Milestones, waiting_for: str) -> str:
    """What an open order waits for, with the completion last refused (its reason is in the order's history)."""
    if m.refused_completion is None:
        return waiting_for
    return f"{waiting_for} (last completion refused: {m.refused_completion})"[:200]


def _stock_status(order: Order) -> OrderStatus:
    """A stock order closes once every unit of it is signed for (a partial delivery is signed for on its own)."""
    m = order.milestones
    if m.closed or m.stock_signed >= order.quantity:
        return OrderStatus(OrderState.CLOSED, None)
    if m.cancel_requested is not None:
        # the state stays what the order proves; what it waits for first is the warehouse's word on the cancel
        return OrderStatus(_stock_progress(order).state, CANCEL_ANSWER)
    return _stock_progress(order)


#: What a stock order waits for while the warehouse decides its cancel.
CANCEL_ANSWER = "cancellation: the warehouse's answer"


def _stock_progress(order: Order) -> OrderStatus:
    m = order.milestones
    delivered = (f" ({_quantity(m.stock_shipped)} of {_quantity(order.quantity)} shipped)"
                 if 0 < m.stock_shipped < order.quantity else "")
    if m.stock_shipped > m.stock_signed:
        return OrderStatus(OrderState.SHIPPED, "signature" + delivered)
    if m.stock_waiting_since is not None:
        return OrderStatus(OrderState.WAITING_FOR_STOCK, _finished_stock(m) + delivered)
    return OrderStatus(OrderState.FORWARDED, "finished-goods stock allocation")


def _finished_stock(m: Milestones) -> str:
    if m.stock_needed is None:
        return "finished-goods stock"
    free = f", {_quantity(m.stock_free)} free" if m.stock_free is not None else ""
    return f"finished-goods stock: {_quantity(m.stock_needed)} units needed{free}"


def _rack_space(m: Milestones) -> str:
    if m.put_away_needed is None:
        return "rack space"  # told by a warehouse that did not say the figures
    free = f", {_quantity(m.put_away_free)} free" if m.put_away_free is not None else ""
    return f"rack space: {_quantity(m.put_away_needed)} units needed{free}"


def check_cancellable(order: Order) -> None:
    """Raise when a cancel must be refused. From the final order on, the goods are the warehouse's to ship: the
    warehouse ships as soon as it reads the final order, which comes before any cancel on the same partition of
    `orders`, so a cancel the distributor let through then could undo the consumption of goods that left."""
    status = order.status
    m = order.milestones
    if status.state.finished:
        raise OrderAlreadyFinishedError(order.order_id, status.state, "cancel")
    if m.signed_by is not None:
        raise CancellationAfterShipmentError(order.order_id, status.state, "its goods were delivered and signed for")
    if m.shipped:
        raise CancellationAfterShipmentError(order.order_id, status.state, "its goods have shipped")
    if m.delivery_requested:
        # the warehouse ships on the call-off, which comes before this cancel on the same partition of `orders`
        raise CancellationAfterShipmentError(order.order_id, status.state,
                                             "its racked goods were called off and the warehouse ships them")
    if m.final_order_placed:
        raise CancellationAfterShipmentError(order.order_id, status.state,
                                             "its final order is placed and the warehouse ships on it")


def cancel_goes_to_warehouse(order: Order) -> bool:
    """Whether a cancel that `check_cancellable` let through is the warehouse's to decide: a stock order's. Its
    stock reaches the warehouse on another topic than the cancel, so the warehouse may ship the order before it
    reads a cancel the distributor let through; only the warehouse, which ships under its storage lock, knows
    which came first. Other flows ship on an event of ours (final order, call-off), so the distributor decides."""
    return order.flow == "stock"


def cancel_pending(order: Order) -> bool:
    """A stock order's cancel was passed on to the warehouse and its answer has not come yet."""
    return order.milestones.cancel_requested is not None and not order.status.state.finished


def await_cancel_answer(order: Order, reason: str, request_record: str) -> Order:
    """A stock order's cancel passed on to the warehouse: not cancelled yet, it waits for the answer. A second
    request while the first is pending changes nothing (the first one's reason stands)."""
    if cancel_pending(order):
        return order
    return order.with_milestones(cancel_requested=reason, cancel_request_record=request_record)


def cancel_accepted(order: Order) -> Order:
    """The warehouse cancelled the stock order (nothing of it shipped): cancelled here too, for the holder's
    reason. An answer to no pending request (a duplicate, an order already finished) changes nothing."""
    if not cancel_pending(order):
        return order
    return order.with_milestones(cancelled_reason=order.milestones.cancel_requested, cancel_requested=None,
                                 cancel_request_record=None)


def cancel_answer_awaited(order: Order) -> bool:
    """A cancel passed on to the warehouse has no answer yet. Unlike `cancel_pending`, also once the order closed:
    the warehouse may ship, and the holder sign, before it reads the cancel, and its refusal then comes after the
    close; the holder's request is still answered (dead-lettered with the refusal)."""
    return order.milestones.cancel_requested is not None


def cancel_refused(order: Order) -> Order:
    """The warehouse refused the cancel (it shipped first): the order goes on where its milestones are."""
    if not cancel_answer_awaited(order):
        return order
    return order.with_milestones(cancel_requested=None, cancel_request_record=None)


def refused_by_warehouse(order: Order, reason: str) -> CancellationAfterShipmentError:
    """The warehouse's refusal of a stock order's cancel, told as the distributor tells its own refusals."""
    return CancellationAfterShipmentError(order.order_id, _stock_progress(order).state,
                                          f"the warehouse shipped it before it read the cancel: {reason}")


def check_call_off(order: Order, *, order_holder: str, requested_by: str) -> bool:
    """Whether the holder's call-off of racked goods goes to the warehouse (False: already called off, nothing
    to do); raises when it must be refused. Cancelled or rejected orders have nothing to ship; a closed
    pre-product order (allocated) still holds its goods in the racks until called off."""
    status = order.status
    if requested_by != order_holder:
        raise CallOffByAnotherHolderError(order.order_id, requested_by, order_holder)
    if order.flow != "pre":
        raise CallOffNotPreOrderError(order.order_id, order.flow)
    if status.state in (OrderState.CANCELLED, OrderState.REJECTED):
        raise CallOffOfFinishedOrderError(order.order_id, status.state)
    if order.milestones.delivery_requested:
        return False
    if not order.milestones.racked:
        raise CallOffNotRackedError(order.order_id, status.state)
    return True


#: Which storage an order's goods need: pre-product goods go into racks, post-product goods into consignment.
STORAGE_OF_FLOW = {"pre": "rack", "post": "consignment"}


def never_fits(flow: str, quantity: Decimal, capacities: dict[str, Decimal]) -> str | None:
    """Why an order can never be stored whole (its quantity exceeds all locations of its kind together), or None
    when it can, or when the warehouse has not announced that capacity yet."""
    kind = STORAGE_OF_FLOW.get(flow)
    capacity = capacities.get(kind) if kind else None
    if capacity is None or quantity <= capacity:
        return None
    where = "distribution-center racks" if kind == "rack" else "consignment storage locations"
    return f"{_quantity(quantity)} units can never be stored: all {where} together hold {_quantity(capacity)}"


def may_cancel_for_capacity(order: Order) -> bool:
    """An order placed before the capacity was known, that can still be cancelled and is not stored yet."""
    m = order.milestones
    return not order.status.state.finished and not m.final_order_placed and not m.shipped and not m.racked


def final_order_due(order: Order) -> bool:
    """Post-product: the final order goes out once the whole quantity sits in consignment storage."""
    m = order.milestones
    return (
        order.flow == "post"
        and not order.status.state.finished
        and m.consigned >= order.quantity
        and not m.final_order_placed
    )


def should_direct_to_racks(order: Order) -> bool:
    return order.flow == "pre" and not order.status.state.finished and not order.milestones.directed_to_racks


def should_close_on_allocation(order: Order) -> bool:
    return order.flow == "pre" and order.milestones.allocated and not order.status.state.finished


def should_close_on_stock_signature(order: Order) -> bool:
    """A stock order closes once every unit of it is signed for (a partial delivery is signed for on its own)."""
    return order.flow == "stock" and order.milestones.stock_signed >= order.quantity


def shipment_applies(order: Order) -> bool:
    """Whether the warehouse's GoodsShipped moves this order: not when it was cancelled or rejected. A late or
    forged shipment stays in the order's history but never marks a cancelled order shipped (the warehouse refuses
    a cancel once it shipped, so its dead letter says which came first)."""
    return order.status.state not in (OrderState.CANCELLED, OrderState.REJECTED)


def signature_applies(order: Order) -> bool:
    """Whether the warehouse's GoodsSignedFor moves this order: not when it was cancelled or rejected (nothing of
    it left for a holder), so that a late or forged signature neither marks it signed nor closes it."""
    return order.status.state not in (OrderState.CANCELLED, OrderState.REJECTED)
