"""Events on the `inventory-details` topics: what stock exists, where, in which lot, with which certificate.
`inventory-details` is the manufacturer's; `.warehouse` and `.distributor` those of the other two services."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import Field, PlainSerializer

from backflush_shared.contracts.base import Event, Identifier, Quantity
from backflush_shared.contracts.common import OrderProcessingInfo, QualityCertificate, RackPlacement
from backflush_shared.contracts.topics import Topic


class PreSaleInventoryDetailsForwarded(Event):
    """Pre-product flow: the manufacturer produced a lot that passed its quality check and tells the distributor."""

    event_type: ClassVar[str] = "backflush.inventory.pre-sale-details-forwarded"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS

    order_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    certificate: QualityCertificate
    processing: OrderProcessingInfo


class GoodsDirectedToRacks(Event):
    """Pre-product flow: the distributor, holding the certificate, directs the goods into distribution racks."""

    event_type: ClassVar[str] = "backflush.inventory.directed-to-racks"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS_DISTRIBUTOR

    order_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    certificate_id: Identifier


class GoodsRacked(Event):
    """The warehouse put the goods away into distribution-center racks and confirms where."""

    event_type: ClassVar[str] = "backflush.inventory.racked"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS_WAREHOUSE

    order_id: Identifier
    item: Identifier
    lot: Identifier
    placements: list[RackPlacement] = Field(min_length=1)


class PutAwayWaiting(Event):
    """The warehouse cannot put the goods away yet (racks full); the order waits visibly until space frees up."""

    event_type: ClassVar[str] = "backflush.inventory.put-away-waiting"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS_WAREHOUSE

    order_id: Identifier
    item: Identifier
    quantity: Quantity
    reason: str
    # Added in the same version (optional, so records written before still read): the free space of that kind
    # when the put-away started to wait, so that the order can say "30 units needed, 12 free".
    free: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=6),
                    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json")] | None = None


class GoodsTurnedOver(Event):
    """Post-product flow: the manufacturer turns finished goods over to the warehouse, still owning them."""

    event_type: ClassVar[str] = "backflush.inventory.turned-over"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS

    order_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    owner: str = Field(min_length=1, max_length=120)


class ConsignmentStockReceived(Event):
    """The warehouse stored turned-over goods as consignment stock, owned by `owner` until an order holder signs."""

    event_type: ClassVar[str] = "backflush.inventory.consignment-received"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS_WAREHOUSE

    order_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    owner: str
    location: Identifier


class GoodsReleasedFromStorage(Event):
    """The warehouse took an order's goods out of racks or storage after a cancellation."""

    event_type: ClassVar[str] = "backflush.inventory.released"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS_WAREHOUSE

    order_id: Identifier
    item: Identifier
    quantity: Quantity
    locations: list[Identifier]


#: The record key of the warehouse's layout announcements: one key, so they stay in order on one partition.
STORAGE_LAYOUT_KEY = "warehouse-layout"

#: A capacity in units: a decimal string, zero when the warehouse has no location of that kind.
Capacity = Annotated[
    Decimal,
    Field(ge=0, max_digits=18, decimal_places=6, examples=["120"]),
    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
]


class StorageCapacityAnnounced(Event):
    """The warehouse's storage layout, announced at every start: how many units all its distribution-center racks
    and all its consignment storage hold together. The distributor refuses orders that could never fit."""

    event_type: ClassVar[str] = "backflush.inventory.storage-capacity-announced"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS_WAREHOUSE

    rack_capacity: Capacity
    consignment_capacity: Capacity

    def record_key(self) -> str:
        return STORAGE_LAYOUT_KEY

    def correlation_key(self) -> str:
        return STORAGE_LAYOUT_KEY


class FinishedGoodsStocked(Event):
    """Repetitive production: the manufacturer hands a run's finished lot to the warehouse as finished-goods stock
    for sale, still its own; the warehouse racks it unallocated, and stock orders are served from it."""

    event_type: ClassVar[str] = "backflush.inventory.finished-goods-stocked"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS

    run_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    owner: str = Field("manufacturer", min_length=1, max_length=120)

    def record_key(self) -> str:
        return self.run_id


class FinishedStockWithdrawalRequested(Event):
    """The manufacturer asks the warehouse to take a run's finished lot out of stock for sale, to reverse the run."""

    event_type: ClassVar[str] = "backflush.inventory.finished-stock-withdrawal-requested"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS

    run_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity

    def record_key(self) -> str:
        return self.run_id
