"""The manufacturer's handlers: each event type to its use case in `production.py`."""

from __future__ import annotations

from typing import Any

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts.base import Event
from backflush_shared.messaging.processor import Handler

from backflush_manufacturer.production import Production, handler_table
from backflush_manufacturer.settings import ManufacturerSettings


def build_handlers(runtime: Any) -> dict[type[Event], Handler]:
    settings = runtime.settings
    assert isinstance(settings, ManufacturerSettings)
    production = Production(settings)
    runtime.extras["production"] = production
    return handler_table(production)


PUBLISHES: tuple[type[Event], ...] = (
    c.ProductionOrderRejected,
    c.QualityInspectionRecorded,
    c.ComponentsBackflushed,
    c.BackflushParked,
    c.NegativeStockPosted,
    c.ProductionCompleted,
    c.CompletionRefused,
    c.CompletionCancelled,
    c.GoodsAllocated,
    inv.PreSaleInventoryDetailsForwarded,
    inv.GoodsTurnedOver,
    c.RunReportRefused,
    c.RunReversed,
    inv.FinishedGoodsStocked,
    inv.FinishedStockWithdrawalRequested,
    c.ConsignedComponentsConsumed,
    c.ConsignedComponentsReturned,
)
