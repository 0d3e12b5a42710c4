"""The stock ledger: balances, lots and allocations are all derived from append-only movements."""

from decimal import Decimal as D

import pytest

from backflush_manufacturer.domain import (
    NEGATIVE_LOT,
    LedgerMovement,
    LotBalance,
    MovementReason,
    StockLedger,
)

RECEIPT, BACKFLUSH, ALLOCATION = MovementReason.RECEIPT, MovementReason.BACKFLUSH, MovementReason.ALLOCATION


def movement(item, lot, quantity, reason=RECEIPT, event="e", location="MAIN", **kwargs):
    return LedgerMovement(item, location, lot, D(quantity), reason, event, **kwargs)


def test_an_empty_ledger_has_nothing_of_anything():
    ledger = StockLedger()
    assert ledger.on_hand("CASTOR") == 0
    assert ledger.lots("CASTOR") == ()
    assert ledger.balances() == {}


def test_on_hand_is_the_sum_of_movements_per_item_location_and_lot():
    ledger = StockLedger.from_movements(
        [
            movement("CASTOR", "C1", 300),
            movement("CASTOR", "C2", 200),
            movement("CASTOR", "C1", -120, BACKFLUSH),
            movement("CASTOR", "C9", 50, location="LINE-2"),
        ]
    )
    assert ledger.on_hand("CASTOR") == 430
    assert ledger.on_hand("CASTOR", "MAIN") == 380
    assert ledger.on_hand("CASTOR", "MAIN", "C1") == 180
    assert ledger.balances() == {
        ("CASTOR", "MAIN", "C1"): 180,
        ("CASTOR", "MAIN", "C2"): 200,
        ("CASTOR", "LINE-2", "C9"): 50,
    }


def test_lots_are_listed_first_in_first_out_by_receipt_order_with_the_negative_lot_last():
    ledger = StockLedger.from_movements(
        [
            movement("CASTOR", "C-LATER-NAME", 10),
            movement("CASTOR", NEGATIVE_LOT, -3, BACKFLUSH, flush_id="f"),
            movement("CASTOR", "A-EARLIER-NAME", 20),
        ]
    )
    assert [lot.lot for lot in ledger.lots("CASTOR")] == ["C-LATER-NAME", "A-EARLIER-NAME", NEGATIVE_LOT]


def test_allocation_is_a_movement_that_changes_available_but_not_on_hand():
    ledger = StockLedger.from_movements(
        [
            movement("CHAIR", "FG-1", 10),
            movement("CHAIR", "FG-1", 4, ALLOCATION, production_order="PO-1"),
        ]
    )
    assert ledger.on_hand("CHAIR") == 10
    assert ledger.allocated("CHAIR") == 4
    assert ledger.allocated("CHAIR", production_order="PO-1") == 4
    assert ledger.available("CHAIR") == 6
    assert ledger.lots("CHAIR") == (LotBalance("CHAIR", "MAIN", "FG-1", D(10), D(4)),)
    assert ledger.lots("CHAIR")[0].available == 6


def test_appending_returns_a_new_ledger_and_leaves_the_old_one_as_it_was():
    before = StockLedger.from_movements([movement("CASTOR", "C1", 300)])
    after = before.appended([movement("CASTOR", "C1", -100, BACKFLUSH, flush_id="f")])
    assert before.on_hand("CASTOR") == 300 and len(before) == 1
    assert after.on_hand("CASTOR") == 200 and len(after) == 2


def test_a_ledger_built_at_once_equals_one_built_by_appends():
    movements = [movement("CASTOR", "C1", 300), movement("SCREW", "S1", 5), movement("CASTOR", "C1", -7)]
    stepwise = StockLedger()
    for m in movements:
        stepwise = stepwise.appended([m])
    at_once = StockLedger.from_movements(movements)
    assert stepwise.balances() == at_once.balances()
    assert stepwise.movements == at_once.movements


def test_consumption_charged_to_an_order_is_net_of_reversals():
    ledger = StockLedger.from_movements(
        [
            movement("CASTOR", "C1", 300),
            movement("CASTOR", "C1", -26, BACKFLUSH, production_order="PO-1", flush_id="f1"),
            movement("CASTOR", "C1", -10, BACKFLUSH, production_order="PO-1", flush_id="f2"),
            movement("CASTOR", "C1", 10, MovementReason.REVERSAL, production_order="PO-1", flush_id="f2"),
            movement("CASTOR", "C1", -5, BACKFLUSH, production_order="PO-2", flush_id="f3"),
        ]
    )
    assert ledger.consumed_by_order("PO-1") == {"CASTOR": 26}
    assert ledger.flush_ids_of_order("PO-1") == ("f1", "f2")


def test_a_movement_refuses_a_float_quantity():
    with pytest.raises(TypeError):
        LedgerMovement("CASTOR", "MAIN", "C1", 1.5, RECEIPT, "e")  # type: ignore[arg-type]


def test_a_movement_needs_its_causing_event():
    with pytest.raises(ValueError, match="event_id"):
        LedgerMovement("CASTOR", "MAIN", "C1", D(1), RECEIPT, "")
