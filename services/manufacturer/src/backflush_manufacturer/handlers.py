"""The manufacturer's handlers: each event type to its use case in `production.py`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.messaging.codec import ConsumedEvent
from backflush_shared.messaging.processor import Handler
from backflush_shared.unit_of_work import UnitOfWork

from backflush_manufacturer.adapters import repository as repo

from backflush_manufacturer.production import Production, handler_table
from backflush_manufacturer.settings import ManufacturerSettings


def build_handlers(runtime: Any) -> dict[type[Event], Handler]:
    settings = runtime.settings
    assert isinstance(settings, ManufacturerSettings)
    production = Production(settings)
    runtime.extras["production"] = production
    return handler_table(production)


#: The events whose use case starts from the production order (or run) they name.
_ABOUT_AN_ORDER: tuple[type[Event], ...] = (
    o.OrderForwarded, o.OrderCancelled, md.StockProductionOrderPlaced, c.QualityInspectionReported,
    c.CompletionReported, c.CompletionCancellationRequested, c.ComponentIssueReported, c.InventoryCheckReturned,
    c.GoodsSignedFor, c.RunQuantityReported, c.RunCancellationRequested,
)


async def load_batch(uow: UnitOfWork, events: Sequence[ConsumedEvent]) -> None:
    """The orders a batch is about and their finished lots, read with one statement each instead of per event."""
    order_ids = [str(getattr(item.event, "order_id", None) or getattr(item.event, "run_id", None))
                 for item in events if isinstance(item.event, _ABOUT_AN_ORDER)]
    await repo.load_orders(uow, order_ids)
    await repo.load_finished_lots(uow, order_ids)


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
