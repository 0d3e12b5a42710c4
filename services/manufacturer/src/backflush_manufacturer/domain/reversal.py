"""Reversal: cancelling a flush (a completion, or a whole production order) with compensating movements.

Nothing is deleted. A reversal nets every on-hand movement of the flush (its consumption, and the settlements of
whatever it took from the negative lot) per item, location, lot and finished lot, and posts the opposite, so
every balance and every lot returns to what it would be had the flush never posted; genealogy links net to zero
with it. Reversing a flush that is already reversed, or that never posted, yields no movements.
"""

from __future__ import annotations

from decimal import Decimal

from backflush_manufacturer.domain.errors import CompletionNotReversibleError
from backflush_manufacturer.domain.ledger import LedgerMovement, MovementReason, StockLedger


def reverse_flush(ledger: StockLedger, flush_id: str, event_id: str) -> tuple[LedgerMovement, ...]:
    """The compensating movements that undo the flush `flush_id`, caused by the cancellation `event_id`."""
    net: dict[tuple[str, str, str, str | None, str | None, str | None, str | None], Decimal] = {}
    for m in ledger.flush_movements(flush_id):
        # the owner too: a consigned lot's units go back to the owner's lot, as the owner's
        key = (m.item, m.location, m.lot, m.production_order, m.into_item, m.into_lot, m.owner)
        net[key] = net.get(key, Decimal(0)) + m.quantity
    return tuple(
        LedgerMovement(
            item,
            location,
            lot,
            -quantity,
            MovementReason.REVERSAL,
            event_id,
            production_order=order,
            flush_id=flush_id,
            into_item=into_item,
            into_lot=into_lot,
            owner=owner,
        )
        for (item, location, lot, order, into_item, into_lot, owner), quantity in net.items()
        if quantity
    )


def reverse_order(ledger: StockLedger, production_order: str, event_id: str) -> tuple[LedgerMovement, ...]:
    """Undo every flush and issue of a cancelled production order, oldest first.

    Allocations are not flushes: release them with `release_allocations`. Produced goods received into stock are
    not undone here either.
    """
    return tuple(
        movement
        for flush_id in ledger.flush_ids_of_order(production_order)
        for movement in reverse_flush(ledger, flush_id, event_id)
    )


def reverse_completion(
    ledger: StockLedger,
    *,
    production_order: str,
    flush_id: str | None,
    item: str,
    lot: str,
    quantity: Decimal,
    event_id: str,
) -> tuple[LedgerMovement, ...]:
    """Undo one completion: its flush (every component back to the lot it came from, genealogy netting to zero)
    and its finished lot, which must still be whole and unpromised wherever it was received."""
    places = ledger.lot_locations(item, lot)
    if any(ledger.allocated(item, location, lot) for location in places):
        raise CompletionNotReversibleError(item, lot, "the lot is allocated to an order")
    on_hand = sum(places.values(), Decimal(0))
    if on_hand != quantity:
        raise CompletionNotReversibleError(
            item, lot, f"{on_hand} of the {quantity} produced are still on hand (consumed or delivered)")
    movements = list(reverse_flush(ledger, flush_id, event_id)) if flush_id else []
    movements += [
        LedgerMovement(item, location, lot, -held, MovementReason.REVERSAL, event_id, production_order=production_order)
        for location, held in places.items()
    ]
    return tuple(movements)
