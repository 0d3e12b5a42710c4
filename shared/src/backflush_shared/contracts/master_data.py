"""Events on the `master-data` topic: items, bills of materials, inspection plans and component receipts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from backflush_shared.contracts.base import DECIMAL_STRING, Event, Identifier, Quantity
from backflush_shared.contracts.topics import Topic

NegativeStockPolicyName = Literal["reject", "allow", "park"]

#: Every master-data event shares one record key, so one partition keeps them in order: a BOM never arrives
#: before the items it names, nor a receipt before its item.
MASTER_DATA_KEY = "master-data"


class ItemDefined(Event):
    """An item (component, subassembly, phantom or finished good) and its unit of measure."""

    event_type: ClassVar[str] = "backflush.master.item-defined"
    topic: ClassVar[Topic] = Topic.MASTER_DATA

    item: Identifier
    description: str = ""
    unit: Identifier = Field(description="Unit of measure, e.g. pcs, kg, m, l.")
    decimals: int = Field(ge=0, le=12, description="How many decimals a quantity in this unit may carry (pcs: 0).")
    phantom: bool = False
    negative_stock_policy: NegativeStockPolicyName | None = None
    supply_location: Identifier | None = Field(
        default=None, description="Where flushes take the item from, and where a subassembly made here is received "
                                  "(default MAIN).")

    def record_key(self) -> str:
        return MASTER_DATA_KEY

    def correlation_key(self) -> str:
        return self.item


class BomLineDefinition(BaseModel):
    """One component line of a bill of materials (not an event by itself)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    component: Identifier
    quantity_per: Quantity
    scrap_factor: Annotated[Decimal, Field(ge=0, lt=10, decimal_places=6), DECIMAL_STRING] = Decimal(0)
    flush: Literal["pre", "post", "manual"]


class BomDefined(Event):
    """The bill of materials of a parent item; it replaces any earlier one."""

    event_type: ClassVar[str] = "backflush.master.bom-defined"
    topic: ClassVar[Topic] = Topic.MASTER_DATA

    parent: Identifier
    lines: list[BomLineDefinition] = Field(min_length=1)

    def record_key(self) -> str:
        return MASTER_DATA_KEY

    def correlation_key(self) -> str:
        return self.parent


class InspectionPlanDefined(Event):
    """How the quality check of an item is decided: `pass`, `fail`, or `external` (an inspector's event decides)."""

    event_type: ClassVar[str] = "backflush.master.inspection-plan-defined"
    topic: ClassVar[Topic] = Topic.MASTER_DATA

    item: Identifier
    rule: Literal["pass", "fail", "external"]
    remark: str = ""

    def record_key(self) -> str:
        return MASTER_DATA_KEY

    def correlation_key(self) -> str:
        return self.item


class ComponentsReceived(Event):
    """A supplier's delivery of a component lot was received into stock (this releases parked backflushes)."""

    event_type: ClassVar[str] = "backflush.master.components-received"
    topic: ClassVar[Topic] = Topic.MASTER_DATA

    receipt_id: Identifier
    item: Identifier
    lot: Identifier
    quantity: Quantity
    # none: the item's supply location (where its flushes take it from), MAIN for an item that names none
    location: Identifier | None = None

    def record_key(self) -> str:
        return MASTER_DATA_KEY

    def correlation_key(self) -> str:
        return self.item


class ComponentsConsigned(Event):
    """Contract manufacturing: a brand owner's component lot was received at our dock and stays the owner's
    property. Only the owner's orders (`OrderPlaced.contract_manufacturing`) consume it; like a receipt, it releases
    parked backflushes (those waiting for the owner's stock)."""

    event_type: ClassVar[str] = "backflush.master.components-consigned"
    topic: ClassVar[Topic] = Topic.MASTER_DATA

    receipt_id: Identifier
    owner: str = Field(min_length=1, max_length=120, description="The brand owner who consigned the lot.")
    item: Identifier
    lot: Identifier
    quantity: Quantity
    # none: the item's supply location (where its flushes take it from), MAIN for an item that names none
    location: Identifier | None = None

    def record_key(self) -> str:
        return MASTER_DATA_KEY

    def correlation_key(self) -> str:
        return self.item


class ParkedBackflushRetryRequested(Event):
    """An operator asks the manufacturer to try one parked backflush again now (`backflush exceptions retry`)."""

    event_type: ClassVar[str] = "backflush.master.parked-backflush-retry-requested"
    topic: ClassVar[Topic] = Topic.MASTER_DATA

    entry_id: int = Field(ge=1, description="The exception queue entry, as `backflush exceptions` lists it.")
    requested_by: str = Field("operator", min_length=1, max_length=120)

    def record_key(self) -> str:
        return MASTER_DATA_KEY

    def correlation_key(self) -> str:
        return f"exception-{self.entry_id}"


class StockProductionOrderPlaced(Event):
    """A planner orders an item made for the manufacturer's own stock (make-to-stock): no customer order behind it.

    Its finished lots are received into component stock at the item's supply location, where the flushes of the
    orders that consume it take it from (a subassembly made here); nothing is turned over or shipped."""

    event_type: ClassVar[str] = "backflush.master.stock-production-order-placed"
    topic: ClassVar[Topic] = Topic.MASTER_DATA

    order_id: Identifier
    item: Identifier
    quantity: Quantity
    due_date: date | None = None
    placed_by: str = Field("planner", min_length=1, max_length=120)

    def record_key(self) -> str:
        return MASTER_DATA_KEY

    def correlation_key(self) -> str:
        return self.order_id
