"""Value types several events share."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from backflush_shared.contracts.base import added_later, Identifier, Quantity


class Flow(StrEnum):
    """Which backflush flow an order follows."""

    PRE = "pre"  # quality check before sale, flush at release, goods racked at the distribution center
    POST = "post"  # flush at completion, goods stored as consignment stock, shipped on the final order
    STOCK = "stock"  # sold from finished-goods stock racked at the warehouse (first in, first out by lot)


class Priority(StrEnum):
    NORMAL = "normal"
    RUSH = "rush"


class OrderProcessingInfo(BaseModel):
    """What the distributor forwards with an order so that every party can process it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_holder: str = Field(min_length=1, max_length=120, description="The customer who placed the order.")
    ship_to: str = Field(min_length=1, max_length=200)
    due_date: date
    priority: Priority = Priority.NORMAL
    partial_deliveries: bool = added_later(
        default=False, description="Stock flow: the holder accepts the order served in parts as stock arrives.")


class LotQuantity(BaseModel):
    """A quantity of one lot."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lot: Identifier
    quantity: Quantity


class QualityCertificate(BaseModel):
    """Proof that the goods of a lot passed their quality check."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    certificate_id: Identifier
    item: Identifier
    lot: Identifier
    inspected_by: str = Field(min_length=1, max_length=120)
    inspected_at: datetime
    plan: str = Field(description="The inspection plan (rule) that decided the result.")


class RackPlacement(BaseModel):
    """A quantity put away into one rack or storage location."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    location: Identifier
    quantity: Quantity


class ConsumedComponent(BaseModel):
    """One component line of a backflush, as posted to the ledger."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item: Identifier
    quantity: Quantity
    unit: str
    lots: list[Identifier] = Field(default_factory=list)
