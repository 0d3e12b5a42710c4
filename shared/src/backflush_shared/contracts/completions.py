"""Events on the `completions` topics: a step is done. `completions` is the manufacturer's; the warehouse, the
distributor and the shop floor each write a `completions.<writer>` topic of their own (see contracts/topics.py)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from backflush_shared.contracts.base import added_later, DECIMAL_STRING, Event, Identifier, Quantity
from backflush_shared.contracts.common import ConsumedComponent, LotQuantity, QualityCertificate
from backflush_shared.contracts.topics import Topic


class QualityInspectionReported(Event):
    """An outside inspector reports the quality check of an order whose item's inspection plan is `external`
    (through the shop floor's intake). The manufacturer decides on it and records `QualityInspectionRecorded`."""

    event_type: ClassVar[str] = "backflush.completion.quality-inspection-reported"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_SHOP_FLOOR

    order_id: Identifier
    item: Identifier
    passed: bool
    inspected_by: str = Field(min_length=1, max_length=120)
    remark: str = ""


class QualityInspectionRecorded(Event):
    """The manufacturer recorded the quality check of an order's goods: by its inspection plan, or an outside
    inspector's `QualityInspectionReported`."""

    event_type: ClassVar[str] = "backflush.completion.quality-inspected"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    item: Identifier
    passed: bool
    inspected_by: str = Field(min_length=1, max_length=120)
    remark: str = ""


class ProductionOrderRejected(Event):
    """The manufacturer refused a forwarded order (unknown item, failed quality check, order id in use, ...);
    `reason` says why in words a person can act on, `code` for machines. The distributor rejects the order."""

    event_type: ClassVar[str] = "backflush.completion.production-order-rejected"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    code: str = Field(min_length=1, max_length=64, examples=["quality-check-failed", "unknown-item"])
    reason: str = Field(min_length=1, max_length=1000)


class ComponentsBackflushed(Event):
    """The manufacturer consumed an order's components from stock at a flush point."""

    event_type: ClassVar[str] = "backflush.completion.components-backflushed"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    flush_point: Literal["pre", "post", "manual"]
    produced_quantity: Quantity
    components: list[ConsumedComponent]
    make_to_stock: bool = added_later(
        default=False, description="The order is a make-to-stock production order (no customer order behind it): "
                                   "the distributor and the warehouse ignore the event.")


class BackflushParked(Event):
    """A backflush could not post for lack of component stock and waits whole in the exception queue."""

    event_type: ClassVar[str] = "backflush.completion.backflush-parked"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    reason: str
    missing: list[ConsumedComponent]
    make_to_stock: bool = added_later(
        default=False, description="The order is a make-to-stock production order (no customer order behind it): "
                                   "the distributor and the warehouse ignore the event.")


class NegativeStockPosted(Event):
    """Under the `allow` policy a backflush drove a component negative: an alert for the planner."""

    event_type: ClassVar[str] = "backflush.completion.negative-stock-posted"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    item: Identifier
    lot: Identifier
    balance: str = Field(description="The lot's balance after the posting, a negative decimal string.")
    make_to_stock: bool = added_later(
        default=False, description="The order is a make-to-stock production order (no customer order behind it): "
                                   "the distributor and the warehouse ignore the event.")


class ProductionCompleted(Event):
    """The manufacturer completed (part of) an order's quantity."""

    event_type: ClassVar[str] = "backflush.completion.production-completed"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    cumulative_quantity: Quantity
    order_quantity: Quantity
    certificate: QualityCertificate | None = None
    make_to_stock: bool = added_later(
        default=False, description="The order is a make-to-stock production order (no customer order behind it): "
                                   "the distributor and the warehouse ignore the event.")


class CompletionRefused(Event):
    """A reported completion the manufacturer refused (under `reject`, stock cannot cover its flush): nothing was
    posted or produced for it, and the order stays open for the next completion."""

    event_type: ClassVar[str] = "backflush.completion.refused"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    quantity: Quantity
    code: str = Field(min_length=1, max_length=80)
    reason: str
    waits_for_components: bool = added_later(
        default=False, description="Whether another flush of the order still waits for component stock.")
    make_to_stock: bool = added_later(
        default=False, description="The order is a make-to-stock production order (no customer order behind it): "
                                   "the distributor and the warehouse ignore the event.")


class CompletionCancellationRequested(Event):
    """Someone asks the manufacturer to reverse one completion reported by mistake (`backflush complete cancel`)."""

    event_type: ClassVar[str] = "backflush.completion.cancellation-requested"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_SHOP_FLOOR

    order_id: Identifier
    completion_id: str = Field(min_length=1, max_length=120,
                               description="The completion's finished lot, or the id of the event that reported it.")
    reason: str = ""
    requested_by: str = Field("shop-floor", min_length=1, max_length=120)
    make_to_stock: bool = added_later(
        default=False, description="The order is a make-to-stock production order (no customer order behind it): "
                                   "the distributor and the warehouse ignore the event.")


class CompletionCancelled(Event):
    """The manufacturer reversed one completion: its flush (back to the original lots), its finished lot and the
    completed quantity. The order stays open for the next completion."""

    event_type: ClassVar[str] = "backflush.completion.cancelled"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    completion_id: str = Field(min_length=1, max_length=120, description="The id of the event that reported it.")
    item: Identifier
    lot: Identifier
    quantity: Quantity
    cumulative_quantity: Annotated[
        Decimal, Field(ge=0, max_digits=18, decimal_places=6, description="What the order has produced once this is "
                                                                          "reversed."),
        DECIMAL_STRING, PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
    ]
    order_quantity: Quantity
    reason: str = ""
    make_to_stock: bool = added_later(
        default=False, description="The order is a make-to-stock production order (no customer order behind it): "
                                   "the distributor and the warehouse ignore the event.")


class CompletionReported(Event):
    """Someone on the shop floor reports a (partial) completion of a post-product order."""

    event_type: ClassVar[str] = "backflush.completion.reported"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_SHOP_FLOOR

    order_id: Identifier
    quantity: Quantity
    reported_by: str = "shop-floor"
    make_to_stock: bool = added_later(
        default=False, description="The order is a make-to-stock production order (no customer order behind it): "
                                   "the distributor and the warehouse ignore the event.")


class ComponentIssueReported(Event):
    """The shop floor issued a component to an order by hand: a `manual` BOM line, or `scrap` beyond the standard."""

    event_type: ClassVar[str] = "backflush.completion.component-issue-reported"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_SHOP_FLOOR

    order_id: Identifier
    component: Identifier
    quantity: Quantity
    kind: Literal["manual", "scrap"]
    reported_by: str = "shop-floor"
    make_to_stock: bool = added_later(
        default=False, description="The order is a make-to-stock production order (no customer order behind it): "
                                   "the distributor and the warehouse ignore the event.")


class InventoryCheckReturned(Event):
    """Pre-product flow: the warehouse confirms the racked stock back to manufacturing."""

    event_type: ClassVar[str] = "backflush.completion.inventory-check-returned"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_WAREHOUSE

    order_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    locations: list[Identifier]


class GoodsAllocated(Event):
    """Pre-product flow: the goods are promised to the order ("out of stock" for new orders). The order is done."""

    event_type: ClassVar[str] = "backflush.completion.goods-allocated"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity


class GoodsShipped(Event):
    """Post-product flow: the warehouse picked and shipped consignment stock on the final order."""

    event_type: ClassVar[str] = "backflush.completion.goods-shipped"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_WAREHOUSE

    order_id: Identifier
    item: Identifier
    quantity: Quantity
    ship_to: str
    lots: list[Identifier]


class DeliverySigned(Event):
    """The order holder signed for the delivery (published by `backflush sign`, a driver's app, ...)."""

    event_type: ClassVar[str] = "backflush.completion.delivery-signed"
    topic: ClassVar[Topic] = Topic.ORDERS_INTAKE

    order_id: Identifier
    signed_by: str = Field(min_length=1, max_length=120)
    signed_at: datetime


class GoodsSignedFor(Event):
    """The warehouse recorded the signature and moved ownership of the goods to the order holder."""

    event_type: ClassVar[str] = "backflush.completion.goods-signed-for"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_WAREHOUSE

    order_id: Identifier
    item: Identifier
    quantity: Quantity
    signed_by: str
    signed_at: datetime
    previous_owner: str
    new_owner: str
    from_stock: bool = added_later(
        default=False, description="A stock order served from finished-goods stock: no production order behind it; "
                                   "the lots signed for leave the manufacturer's books.")
    lots: tuple[LotQuantity, ...] = added_later(
        default=(), description="Stock orders: the finished-goods lots signed for, with their quantities.")


class OrderClosed(Event):
    """The order is finished: allocated (pre) or signed for (post)."""

    event_type: ClassVar[str] = "backflush.completion.order-closed"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_DISTRIBUTOR

    order_id: Identifier
    closed_by: str


# -- repetitive production (issue 17): runs reported by a line, without a production order -------------------------


class RunQuantityReported(Event):
    """A production line reports a quantity of an item produced in a period, without a production order.

    The manufacturer backflushes every pre and post line of the item's BOM for that quantity at once and hands the
    finished lot to the warehouse as finished-goods stock for sale. `run_id` names the report (a reversal names it);
    the same report sent again is recognised by it."""

    event_type: ClassVar[str] = "backflush.completion.run-quantity-reported"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_SHOP_FLOOR

    run_id: Identifier
    line: Identifier
    item: Identifier
    quantity: Quantity
    period: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
                        examples=["2026-W49", "2026-12-07"])
    lot: Identifier
    reported_by: str = Field("shop-floor", min_length=1, max_length=120)

    def record_key(self) -> str:
        return self.run_id


class RunReportRefused(Event):
    """The manufacturer refused a run report (or its reversal): nothing was posted for it; `reason` says why."""

    event_type: ClassVar[str] = "backflush.completion.run-report-refused"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    run_id: Identifier
    code: str = Field(min_length=1, max_length=80)
    reason: str = Field(min_length=1, max_length=1000)

    def record_key(self) -> str:
        return self.run_id


class RunCancellationRequested(Event):
    """The shop floor asks to reverse one run report made by mistake (`backflush run cancel`)."""

    event_type: ClassVar[str] = "backflush.completion.run-cancellation-requested"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_SHOP_FLOOR

    run_id: Identifier
    reason: str = ""
    requested_by: str = Field("shop-floor", min_length=1, max_length=120)

    def record_key(self) -> str:
        return self.run_id


class FinishedStockWithdrawn(Event):
    """The warehouse took a run's whole, unallocated finished lot out of stock for sale, as the manufacturer asked:
    the manufacturer may now reverse the run."""

    event_type: ClassVar[str] = "backflush.completion.finished-stock-withdrawn"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_WAREHOUSE

    run_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity

    def record_key(self) -> str:
        return self.run_id


class FinishedStockWithdrawalRefused(Event):
    """The warehouse cannot withdraw a run's finished lot (part of it is allocated or shipped, or it was never
    stocked): the run stands, and the manufacturer refuses the reversal with this reason."""

    event_type: ClassVar[str] = "backflush.completion.finished-stock-withdrawal-refused"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_WAREHOUSE

    run_id: Identifier
    reason: str = Field(min_length=1, max_length=1000)

    def record_key(self) -> str:
        return self.run_id


class StockOrderCancellationAccepted(Event):
    """The warehouse cancelled a stock order the distributor asked it to (`StockOrderCancellationRequested`):
    nothing of it had shipped; its place in the line is free and the orders behind it may go. The distributor
    cancels the order on this (`OrderCancelled`)."""

    event_type: ClassVar[str] = "backflush.completion.stock-order-cancellation-accepted"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_WAREHOUSE

    order_id: Identifier


class StockOrderCancellationRefused(Event):
    """The warehouse refused to cancel a stock order: it had shipped (some of) it before it read the request, so
    the order goes on (signed for, closed); `reason` says what shipped, e.g. `5 of 5 units shipped`."""

    event_type: ClassVar[str] = "backflush.completion.stock-order-cancellation-refused"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_WAREHOUSE

    order_id: Identifier
    reason: str = Field(min_length=1, max_length=1000)


class RunReversed(Event):
    """The manufacturer reversed a run report: its flush back to the original lots, its finished lot out."""

    event_type: ClassVar[str] = "backflush.completion.run-reversed"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    run_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    reason: str = ""

    def record_key(self) -> str:
        return self.run_id


# -- selling from stock (issue 17) --------------------------------------------------------------------------------


class FinishedStockAwaited(Event):
    """A stock order cannot be served whole from free finished-goods stock now: it waits, in arrival order, and is
    served when stock arrives (a run, a released allocation). Said again whenever the figures change."""

    event_type: ClassVar[str] = "backflush.completion.finished-stock-awaited"
    topic: ClassVar[Topic] = Topic.COMPLETIONS_WAREHOUSE

    order_id: Identifier
    item: Identifier
    needed: Quantity
    free: Annotated[
        Decimal, Field(ge=0, max_digits=18, decimal_places=6, description="Free (racked, unallocated) units of the "
                                                                          "item for this order now."),
        DECIMAL_STRING, PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
    ]


# -- contract manufacturing (issue 17): a brand owner's consigned components ---------------------------------------


class ConsignedLot(BaseModel):
    """A quantity of one component lot a flush took (or gave back), in the component's unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item: Identifier
    lot: Identifier
    quantity: Quantity


class ConsignedComponentsConsumed(Event):
    """Contract manufacturing: one posted flush (or hand issue, or scrap) of a brand owner's order, reported to the
    owner. `consigned` lists the owner's lots it consumed; `own` the manufacturer's own units the order was allowed
    to use, sold to the owner. Quantities only: the system keeps no prices, so pricing the own units is left to
    invoicing. `backflush consignment-statement OWNER --period` adds these up per owner and period."""

    event_type: ClassVar[str] = "backflush.completion.consigned-components-consumed"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    owner: str = Field(min_length=1, max_length=120)
    flush_id: str = Field(min_length=1, max_length=120, description="The flush (or issue) that consumed them.")
    flush_point: Literal["pre", "post", "manual", "scrap"]
    consigned: list[ConsignedLot] = Field(default_factory=list)
    own: list[ConsignedLot] = Field(default_factory=list, description="The manufacturer's own units, sold to the "
                                                                      "owner (quantities; no prices).")


class ConsignedComponentsReturned(Event):
    """Contract manufacturing: a reversal (the order cancelled or rejected, a completion cancelled) gave a flush's
    units back, the owner's to the same lots of the owner's; the reverse of `ConsignedComponentsConsumed`."""

    event_type: ClassVar[str] = "backflush.completion.consigned-components-returned"
    topic: ClassVar[Topic] = Topic.COMPLETIONS

    order_id: Identifier
    owner: str = Field(min_length=1, max_length=120)
    flush_id: str = Field(min_length=1, max_length=120, description="The flush whose units came back.")
    consigned: list[ConsignedLot] = Field(default_factory=list)
    own: list[ConsignedLot] = Field(default_factory=list)
