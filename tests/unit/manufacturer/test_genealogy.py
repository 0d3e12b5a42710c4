"""Genealogy: which component lots went into which finished lot, asked from either end."""

from decimal import Decimal as D

from backflush_manufacturer.domain import (
    FlushPoint,
    FlushRequest,
    Genealogy,
    GenealogyLink,
    NegativeStockPolicy,
    Receipt,
    StockPolicies,
    backflush,
    receive,
)

PARK = StockPolicies(NegativeStockPolicy.PARK)


def completion(flush_id, quantity, before, lot):
    return FlushRequest(flush_id, "PO-1", "CHAIR", FlushPoint.POST, D(quantity), D(before), finished_lot=lot)


def test_genealogy_answers_down_from_a_finished_lot_and_up_from_a_component_lot(catalogue, ledger):
    """FG-1 (40 chairs) takes 211 castors from C1; FG-2 (35 more) takes C1's last 89 and 94 from C2."""
    first = backflush(catalogue, ledger, completion("done-1", 40, 0, "FG-1"), PARK)
    ledger = ledger.appended(first.movements)
    second = backflush(catalogue, ledger, completion("done-2", 35, 40, "FG-2"), PARK)
    genealogy = Genealogy.from_movements(ledger.appended(second.movements).movements)

    castors_in_fg2 = [g for g in genealogy.components_of("CHAIR", "FG-2") if g.component == "CASTOR"]
    assert castors_in_fg2 == [
        GenealogyLink("CHAIR", "FG-2", "CASTOR", "C1", D(89), "PO-1"),
        GenealogyLink("CHAIR", "FG-2", "CASTOR", "C2", D(94), "PO-1"),
    ]
    assert [(g.finished_lot, g.quantity) for g in genealogy.used_in("CASTOR", "C1")] == [("FG-1", 211), ("FG-2", 89)]


def test_a_settled_negative_lot_hands_its_genealogy_to_the_lot_that_covered_it(catalogue, make_ledger):
    ledger = make_ledger(
        [("CASTOR", "C1", D(200)), ("SCREW", "S1", D(1000)), ("FABRIC", "F1", D(50)), ("SEAT", "SE1", D(100))]
    )
    outcome = backflush(catalogue, ledger, completion("done-1", 40, 0, "FG-1"), StockPolicies("allow"))
    ledger = ledger.appended(outcome.movements)
    assert ("NEGATIVE", D(11)) in [(g.component_lot, g.quantity) for g in outcome.genealogy]
    ledger = ledger.appended(receive(catalogue, ledger, Receipt("r-2", "CASTOR", "C2", D(50))))
    genealogy = Genealogy.from_movements(ledger.movements)
    castors = [g for g in genealogy.components_of("CHAIR", "FG-1") if g.component == "CASTOR"]
    assert [(g.component_lot, g.quantity) for g in castors] == [("C1", 200), ("C2", 11)]
