"""Events on the `inventory-details` topic: what stock exists, where, in which lot, with which certificate."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

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
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS

    order_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    certificate_id: Identifier


class GoodsRacked(Event):
    """The warehouse put the goods away into distribution-center racks and confirms where."""

    event_type: ClassVar[str] = "backflush.inventory.racked"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS

    order_id: Identifier
    item: Identifier
    lot: Identifier
    placements: list[RackPlacement] = Field(min_length=1)


class PutAwayWaiting(Event):
    """The warehouse cannot put the goods away yet (racks full); the order waits visibly until space frees up."""

    event_type: ClassVar[str] = "backflush.inventory.put-away-waiting"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS

    order_id: Identifier
    item: Identifier
    quantity: Quantity
    reason: str


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
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS

    order_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    owner: str
    location: Identifier


class GoodsReleasedFromStorage(Event):
    """The warehouse took an order's goods out of racks or storage after a cancellation."""

    event_type: ClassVar[str] = "backflush.inventory.released"
    topic: ClassVar[Topic] = Topic.INVENTORY_DETAILS

    order_id: Identifier
    item: Identifier
    quantity: Quantity
    locations: list[Identifier]
