"""Events on the `orders` topics: the distributor's `orders` (forwarded, cancelled, rejected, the final order, a
call-off) and the order holders' `orders.intake` (placed, cancellation and delivery requested)."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import Field, model_validator

from backflush_shared.contracts.base import added_later, Event, Identifier, Quantity
from backflush_shared.contracts.common import Flow, OrderProcessingInfo, Priority
from backflush_shared.contracts.topics import Topic


class OrderPlaced(Event):
    """An order holder placed an order (`backflush order place`, a web shop, ...), on the holders' intake."""

    event_type: ClassVar[str] = "backflush.order.placed"
    topic: ClassVar[Topic] = Topic.ORDERS_INTAKE

    order_id: Identifier
    order_holder: str = Field(min_length=1, max_length=120)
    flow: Flow
    item: Identifier
    quantity: Quantity
    ship_to: str = Field(min_length=1, max_length=200)
    due_date: date
    priority: Priority = Priority.NORMAL
    partial_deliveries: bool = added_later(
        default=False, description="Stock flow: the holder accepts the order served in parts as stock arrives "
                                   "(each part shipped and signed for on its own).")
    contract_manufacturing: bool = added_later(
        default=False, description="The product is built from components the order holder consigned "
                                   "(`ComponentsConsigned` with owner = order_holder): the order consumes the holder's "
                                   "lots, never another owner's. Pre and post flows only.")
    own_components_allowed: bool = added_later(
        default=False, description="With contract_manufacturing: what the holder's lots cannot cover may come from the "
                                   "manufacturer's own stock (sold to the holder) instead of waiting.")

    @model_validator(mode="after")
    def _contract_manufacturing_is_built(self) -> OrderPlaced:
        if self.contract_manufacturing and self.flow is Flow.STOCK:
            raise ValueError("contract_manufacturing: an order served from finished-goods stock builds nothing")
        if self.own_components_allowed and not self.contract_manufacturing:
            raise ValueError("own_components_allowed applies to contract_manufacturing orders only")
        return self


class OrderForwarded(Event):
    """The distributor accepted an order and forwards it to the manufacturer with its processing information."""

    event_type: ClassVar[str] = "backflush.order.forwarded"
    topic: ClassVar[Topic] = Topic.ORDERS

    order_id: Identifier
    flow: Flow
    item: Identifier
    quantity: Quantity
    processing: OrderProcessingInfo
    components_owner: str | None = added_later(
        default=None, min_length=1, max_length=120,
        description="Contract manufacturing: the brand owner whose consigned lots the order consumes first (the "
                    "order holder); none: the manufacturer's own stock only.")
    own_components_allowed: bool = added_later(
        default=False, description="With components_owner: the manufacturer's own stock may cover what the owner's "
                                   "lots cannot.")


class OrderRejected(Event):
    """The distributor refused an order; `reason` says why in words a person can act on, `code` for machines."""

    event_type: ClassVar[str] = "backflush.order.rejected"
    topic: ClassVar[Topic] = Topic.ORDERS

    order_id: Identifier
    code: str = Field(min_length=1, max_length=64, examples=["quality-check-failed", "unknown-item"])
    reason: str = Field(min_length=1, max_length=1000)
    rejected_by: str


class OrderCancellationRequested(Event):
    """The order holder (or an operator) asks to cancel an order, at whatever stage it is."""

    event_type: ClassVar[str] = "backflush.order.cancellation-requested"
    topic: ClassVar[Topic] = Topic.ORDERS_INTAKE

    order_id: Identifier
    reason: str = Field(min_length=1, max_length=1000)
    requested_by: str = Field(min_length=1, max_length=120)


class OrderCancelled(Event):
    """The distributor cancelled an order; every service undoes its part (reverses flushes, releases racks)."""

    event_type: ClassVar[str] = "backflush.order.cancelled"
    topic: ClassVar[Topic] = Topic.ORDERS

    order_id: Identifier
    reason: str
    stage: str = Field(description="The state the order was in when it was cancelled.")


class StockOrderCancellationRequested(Event):
    """The distributor passes a holder's cancel of a stock order on to the warehouse, which decides it: only the
    warehouse knows whether it shipped the order (stock arrives on its own topic) before it reads this. It answers
    `StockOrderCancellationAccepted` (nothing shipped: the order is out of the line) or
    `StockOrderCancellationRefused` with the reason; the distributor cancels the order only on the first."""

    event_type: ClassVar[str] = "backflush.order.stock-cancellation-requested"
    topic: ClassVar[Topic] = Topic.ORDERS

    order_id: Identifier
    reason: str = Field(min_length=1, max_length=1000)
    requested_by: str = Field(min_length=1, max_length=120)


class FinalOrderPlaced(Event):
    """Post-product flow: the distributor places the final order on consignment stock; the warehouse ships."""

    event_type: ClassVar[str] = "backflush.order.final-placed"
    topic: ClassVar[Topic] = Topic.ORDERS

    order_id: Identifier
    item: Identifier
    quantity: Quantity
    ship_to: str
    order_holder: str = Field(min_length=1, max_length=120)


class DeliveryRequested(Event):
    """Pre-product flow: the order holder calls off its racked goods. Published by `backflush order deliver`; the
    distributor checks it (the holder's own racked pre-product order, not cancelled) and, if so, publishes
    `RackedGoodsCalledOff`, which the warehouse ships on. A refused request is dead-lettered with the reason."""

    event_type: ClassVar[str] = "backflush.order.delivery-requested"
    topic: ClassVar[Topic] = Topic.ORDERS_INTAKE

    order_id: Identifier
    order_holder: str = Field(min_length=1, max_length=120)
    ship_to: str = Field(min_length=1, max_length=200)


class RackedGoodsCalledOff(Event):
    """Pre-product flow: the distributor accepted the holder's `DeliveryRequested`; the warehouse picks the goods
    from the racks and ships them to `ship_to` (then the holder signs, as for any shipment). From here on the
    order cannot be cancelled."""

    event_type: ClassVar[str] = "backflush.order.racked-goods-called-off"
    topic: ClassVar[Topic] = Topic.ORDERS

    order_id: Identifier
    order_holder: str = Field(min_length=1, max_length=120)
    ship_to: str = Field(min_length=1, max_length=200)
