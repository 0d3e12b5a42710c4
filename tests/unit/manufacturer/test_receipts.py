"""Receipts: stock comes into its own lot; a phantom never takes stock; the negative lot is settled first."""

from decimal import Decimal as D

import pytest

from backflush_manufacturer.domain import (
    NEGATIVE_LOT,
    LedgerMovement,
    MovementReason,
    NonPositiveQuantityError,
    PhantomWithStockError,
    Receipt,
    ReservedLotError,
    StockLedger,
    TooManyDecimalsError,
    UnknownItemError,
    receive,
)


def test_a_receipt_is_one_movement_into_its_own_lot(catalogue):
    (movement,) = receive(catalogue, StockLedger(), Receipt("r-1", "FABRIC", "F7", D("12.5")))
    assert (movement.item, movement.location, movement.lot, movement.quantity) == ("FABRIC", "MAIN", "F7", D("12.5"))
    assert movement.reason is MovementReason.RECEIPT and movement.event_id == "r-1"


def test_a_phantom_receiving_stock_is_refused_naming_it(catalogue):
    with pytest.raises(PhantomWithStockError) as caught:
        receive(catalogue, StockLedger(), Receipt("r-1", "BASE", "B1", D(5)))
    assert caught.value.item == "BASE"
    assert "BASE is a phantom assembly" in str(caught.value) and "BOM path BASE" in str(caught.value)


def test_a_receipt_with_more_decimals_than_the_unit_is_refused(catalogue):
    with pytest.raises(TooManyDecimalsError, match="GREASE"):
        receive(catalogue, StockLedger(), Receipt("r-1", "GREASE", "G9", D("0.0005")))


def test_a_receipt_of_nothing_is_refused(catalogue):
    with pytest.raises(NonPositiveQuantityError, match="received quantity of CASTOR"):
        receive(catalogue, StockLedger(), Receipt("r-1", "CASTOR", "C9", D(0)))


def test_a_receipt_of_an_unknown_item_is_refused(catalogue):
    with pytest.raises(UnknownItemError, match="WHEEL"):
        receive(catalogue, StockLedger(), Receipt("r-1", "WHEEL", "W1", D(1)))


def test_nothing_can_be_received_into_the_negative_lot(catalogue):
    with pytest.raises(ReservedLotError, match="CASTOR"):
        receive(catalogue, StockLedger(), Receipt("r-1", "CASTOR", NEGATIVE_LOT, D(1)))


def test_a_receipt_settles_the_negative_lot_oldest_flush_first(catalogue):
    """The negative lot owes 20 for flush f1 (older) and 15 for f2. A receipt of 30 into C5 settles f1 in full
    and 10 of f2: C5 ends at 30 - 20 - 10 = 0, NEGATIVE at -35 + 30 = -5, still owed to f2."""
    ledger = StockLedger.from_movements(
        [
            *_negative("f1", 20, "PO-1", "FG-1"),
            *_negative("f2", 15, "PO-2", "FG-2"),
        ]
    )
    movements = receive(catalogue, ledger, Receipt("r-9", "CASTOR", "C5", D(30)))
    after = ledger.appended(movements)
    assert after.on_hand("CASTOR", "MAIN", "C5") == 0
    assert after.on_hand("CASTOR", "MAIN", NEGATIVE_LOT) == -5
    assert after.on_hand("CASTOR") == -5
    assert [(d.flush_id, d.outstanding) for d in after.negative_debts("CASTOR")] == [("f2", 5)]
    settlements = [m for m in movements if m.reason is MovementReason.SETTLEMENT]
    assert [(m.lot, m.quantity, m.flush_id) for m in settlements] == [
        ("C5", -20, "f1"),
        (NEGATIVE_LOT, 20, "f1"),
        ("C5", -10, "f2"),
        (NEGATIVE_LOT, 10, "f2"),
    ]


def test_a_receipt_at_another_location_does_not_settle_this_one(catalogue):
    ledger = StockLedger.from_movements(_negative("f1", 20, "PO-1", "FG-1"))
    movements = receive(catalogue, ledger, Receipt("r-9", "CASTOR", "C5", D(30), location="LINE-2"))
    assert len(movements) == 1


def _negative(flush_id, quantity, order, finished_lot):
    return [
        LedgerMovement(
            "CASTOR",
            "MAIN",
            NEGATIVE_LOT,
            D(-quantity),
            MovementReason.BACKFLUSH,
            flush_id,
            production_order=order,
            flush_id=flush_id,
            into_item="CHAIR",
            into_lot=finished_lot,
        )
    ]
