"""Allocation: promising stock of a lot to an order, as ledger movements.

An allocation is a movement with reason `ALLOCATION` (positive to promise, negative to release): it never changes
on hand, only what is available. Allocated stock is never backflushed. This is how the manufacturer marks
finished goods "out of stock" for new orders once they are promised to one.
"""

from __future__ import annotations

from decimal import Decimal

from backflush_manufacturer.domain.bom import BomCatalogue
from backflush_manufacturer.domain.errors import InsufficientStockError
from backflush_manufacturer.domain.ledger import DEFAULT_LOCATION, LedgerMovement, MovementReason, StockLedger
from backflush_manufacturer.domain.units import require_quantity


def allocate(
    catalogue: BomCatalogue,
    ledger: StockLedger,
    *,
    item: str,
    lot: str,
    quantity: Decimal,
    production_order: str,
    event_id: str,
    location: str = DEFAULT_LOCATION,
) -> LedgerMovement:
    """Promise `quantity` of a lot to an order; refused with `InsufficientStockError` beyond what is available."""
    known = catalogue.item(item)
    quantity = require_quantity(known.code, known.unit, quantity, what="allocated quantity")
    available = ledger.available(item, location, lot)
    if quantity > available:
        raise InsufficientStockError(
            item, needed=quantity, available=available, location=location, production_order=production_order
        )
    return LedgerMovement(
        item, location, lot, quantity, MovementReason.ALLOCATION, event_id, production_order=production_order
    )


def release_allocations(
    ledger: StockLedger, *, production_order: str, event_id: str, item: str | None = None
) -> tuple[LedgerMovement, ...]:
    """Release everything still promised to an order (optionally of one item only)."""
    return tuple(
        LedgerMovement(i, location, lot, -quantity, MovementReason.ALLOCATION, event_id, production_order=order)
        for (i, location, lot, order), quantity in ledger.allocations_of_order(production_order).items()
        if item in (None, i)
    )
