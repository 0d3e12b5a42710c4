"""Receipts: stock coming in (from a supplier, initial stock, or production), settling the negative lot first.

A receipt is posted into its own lot. If the item's negative lot at that location owes anything (flushes posted
under `allow`), the receipt then settles it, oldest debt first: a pair of `SETTLEMENT` movements moves the
quantity from the received lot to the negative lot. The item's total on hand is unchanged by the settlement,
the negative lot goes back towards zero, and genealogy now names the received lot as what went into the
finished goods.

A brand owner's consignment (`Receipt.owner`) is received the same way into a lot of the owner's, and settles
nothing: the negative lot is the manufacturer's own debt, and an owner's stock never pays it. A lot keeps one
owner: receiving into a lot that is someone else's is refused (`LotOwnerMismatchError`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from backflush_manufacturer.domain.bom import BomCatalogue
from backflush_manufacturer.domain.errors import LotOwnerMismatchError, PhantomWithStockError, ReservedLotError
from backflush_manufacturer.domain.ledger import (
    DEFAULT_LOCATION,
    NEGATIVE_LOT,
    LedgerMovement,
    MovementReason,
    StockLedger,
)
from backflush_manufacturer.domain.units import as_decimal, require_quantity

RECEIPT_REASONS = frozenset({MovementReason.RECEIPT, MovementReason.PRODUCTION_RECEIPT})


@dataclass(frozen=True, slots=True)
class Receipt:
    """`quantity` of `item` received into `lot` at `location`, caused by the event `receipt_id`."""

    receipt_id: str
    item: str
    lot: str
    quantity: Decimal
    location: str = DEFAULT_LOCATION
    reason: MovementReason = MovementReason.RECEIPT
    production_order: str | None = None
    #: A brand owner's consignment: the lot stays the owner's property. None: the manufacturer's own stock.
    owner: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity", as_decimal(self.quantity))
        object.__setattr__(self, "reason", MovementReason(self.reason))
        if self.reason not in RECEIPT_REASONS:
            raise ValueError(f"a receipt is a receipt or a production receipt, not {self.reason}")


def receive(catalogue: BomCatalogue, ledger: StockLedger, receipt: Receipt) -> tuple[LedgerMovement, ...]:
    """The movements of one receipt: the receipt itself, then the settlements of the negative lot it covers."""
    item = catalogue.item(receipt.item)
    if item.phantom:
        raise PhantomWithStockError(item.code, receipt.quantity)
    quantity = require_quantity(item.code, item.unit, receipt.quantity, what="received quantity")
    if receipt.lot == NEGATIVE_LOT:
        raise ReservedLotError(item.code, receipt.lot)
    owner = ledger.lot_owner(item.code, receipt.lot)
    if owner != receipt.owner and ledger.has_lot(item.code, receipt.lot):
        raise LotOwnerMismatchError(item.code, receipt.lot, owner=owner, received_for=receipt.owner)
    movements = [
        LedgerMovement(
            item.code,
            receipt.location,
            receipt.lot,
            quantity,
            receipt.reason,
            receipt.receipt_id,
            production_order=receipt.production_order,
            owner=receipt.owner,
        )
    ]
    if receipt.owner is not None:
        return tuple(movements)  # an owner's stock never settles the manufacturer's negative lot
    remaining = quantity
    for debt in ledger.negative_debts(item.code, receipt.location):
        if remaining <= 0:
            break
        settled = min(debt.outstanding, remaining)
        for lot, signed in ((receipt.lot, -settled), (NEGATIVE_LOT, settled)):
            movements.append(
                LedgerMovement(
                    item.code,
                    receipt.location,
                    lot,
                    signed,
                    MovementReason.SETTLEMENT,
                    receipt.receipt_id,
                    production_order=debt.production_order,
                    flush_id=debt.flush_id,
                    into_item=debt.into_item,
                    into_lot=debt.into_lot,
                )
            )
        remaining -= settled
    return tuple(movements)


def receive_all(
    catalogue: BomCatalogue, ledger: StockLedger, receipts: Iterable[Receipt]
) -> tuple[LedgerMovement, ...]:
    """The movements of a batch of receipts, each seeing the ones before it (a batch of one is one receipt)."""
    movements: list[LedgerMovement] = []
    for receipt in receipts:
        new = receive(catalogue, ledger, receipt)
        ledger = ledger.appended(new)
        movements.extend(new)
    return tuple(movements)
