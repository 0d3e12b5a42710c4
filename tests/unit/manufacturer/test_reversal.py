"""Reversal: cancelling a completion or a production order posts compensating movements; nothing is deleted."""

from decimal import Decimal as D

import pytest

from backflush_manufacturer.domain import (
    NEGATIVE_LOT,
    FlushPoint,
    FlushRequest,
    Genealogy,
    LedgerMovement,
    MovementReason,
    NegativeStockPolicy,
    Receipt,
    StockPolicies,
    backflush,
    receive,
    reverse_completion,
    reverse_flush,
    reverse_order,
)
from backflush_manufacturer.domain.errors import CompletionNotReversibleError

PARK = StockPolicies(NegativeStockPolicy.PARK)
ALLOW = StockPolicies(NegativeStockPolicy.ALLOW)


def post(catalogue, ledger, request, policies=PARK):
    return ledger.appended(backflush(catalogue, ledger, request, policies).movements)


def completion(flush_id, quantity, before=0, order="PO-1", lot="FG-1"):
    return FlushRequest(flush_id, order, "CHAIR", FlushPoint.POST, D(quantity), D(before), finished_lot=lot)


def test_reversal_restores_every_balance_and_lot(catalogue, ledger):
    """A completion of 100 chairs took CASTOR C1 300 + C2 226, FABRIC F1 50 + F2 41.630, SCREW S1 1000 +
    S2 248, SEAT SE1 100. Its reversal gives each of them back to the very lot it came from."""
    flushed = post(catalogue, ledger, completion("done-1", 100))
    reversal = reverse_flush(flushed, "done-1", "cancel-1")
    restored = flushed.appended(reversal)
    assert restored.balances() == ledger.balances()
    assert {(m.item, m.lot): m.quantity for m in reversal} == {
        ("CASTOR", "C1"): 300,
        ("CASTOR", "C2"): 226,
        ("FABRIC", "F1"): D("50.000"),
        ("FABRIC", "F2"): D("41.630"),
        ("SCREW", "S1"): 1000,
        ("SCREW", "S2"): 248,
        ("SEAT", "SE1"): 100,
    }
    assert {(m.reason, m.event_id, m.flush_id) for m in reversal} == {(MovementReason.REVERSAL, "cancel-1", "done-1")}


def test_nothing_is_deleted_by_a_reversal(catalogue, ledger):
    flushed = post(catalogue, ledger, completion("done-1", 100))
    restored = flushed.appended(reverse_flush(flushed, "done-1", "cancel-1"))
    assert restored.movements[: len(flushed)] == flushed.movements


def test_reversing_one_completion_leaves_the_others_posted(catalogue, ledger):
    """Completions 40 (C1 211) and 35 (C1 89, C2 94). Cancelling the first puts 211 back on C1 only."""
    ledger = post(catalogue, ledger, completion("done-1", 40))
    ledger = post(catalogue, ledger, completion("done-2", 35, before=40))
    after = ledger.appended(reverse_flush(ledger, "done-1", "cancel-1"))
    assert after.on_hand("CASTOR", "MAIN", "C1") == 211
    assert after.on_hand("CASTOR", "MAIN", "C2") == 300 - 94


def test_reversing_twice_posts_nothing_the_second_time(catalogue, ledger):
    flushed = post(catalogue, ledger, completion("done-1", 100))
    once = flushed.appended(reverse_flush(flushed, "done-1", "cancel-1"))
    assert reverse_flush(once, "done-1", "cancel-1-redelivered") == ()


def test_reversing_a_flush_that_never_posted_posts_nothing(ledger):
    assert reverse_flush(ledger, "never-posted", "cancel-1") == ()


def test_cancelling_a_production_order_reverses_all_its_flushes_and_no_other_order(catalogue, ledger):
    start = ledger
    ledger = post(catalogue, ledger, FlushRequest("rel-1", "PO-1", "CHAIR", FlushPoint.PRE, D(50)))
    ledger = post(catalogue, ledger, completion("done-1", 20))
    ledger = post(catalogue, ledger, completion("done-other", 10, order="PO-2", lot="FG-2"))
    other_only = post(catalogue, start, completion("done-other", 10, order="PO-2", lot="FG-2"))
    after = ledger.appended(reverse_order(ledger, "PO-1", "cancel-po-1"))
    assert after.consumed_by_order("PO-1") == {}
    assert after.consumed_by_order("PO-2") == other_only.consumed_by_order("PO-2")
    assert after.on_hand("GREASE") == start.on_hand("GREASE")


def test_reversal_after_a_receipt_settled_the_negative_lot_restores_the_received_lot_too(catalogue, make_ledger):
    """Under allow, 40 chairs take CASTOR C1 200 and 11 from NEGATIVE. A receipt of 50 into C2 settles the 11
    (C2 39, NEGATIVE 0). Cancelling the completion then gives 200 back to C1 and 11 back to C2: C2 holds its full
    50, NEGATIVE stays at 0, exactly as if the completion had never happened."""
    ledger = make_ledger(
        [("CASTOR", "C1", D(200)), ("SCREW", "S1", D(1000)), ("FABRIC", "F1", D(50)), ("SEAT", "SE1", D(100))]
    )
    before_flush = ledger
    ledger = post(catalogue, ledger, completion("done-1", 40), ALLOW)
    receipt = Receipt("r-2", "CASTOR", "C2", D(50))
    ledger = ledger.appended(receive(catalogue, ledger, receipt))
    assert (ledger.on_hand("CASTOR", "MAIN", "C2"), ledger.on_hand("CASTOR", "MAIN", NEGATIVE_LOT)) == (39, 0)
    restored = ledger.appended(reverse_flush(ledger, "done-1", "cancel-1"))
    as_if_never = before_flush.appended(receive(catalogue, before_flush, receipt))
    assert restored.balances() == as_if_never.balances()
    assert Genealogy.from_movements(restored.movements).components_of("CHAIR", "FG-1") == ()


# -- one completion reversed (issue 15, capability 7) -----------------------------------------------------------------


def produce(catalogue, ledger, lot, quantity, event="made-1"):
    return ledger.appended(receive(catalogue, ledger, Receipt(event, "CHAIR", lot, D(quantity), "FG",
                                                              MovementReason.PRODUCTION_RECEIPT, "PO-1")))


def test_reversing_one_completion_gives_back_its_components_and_takes_its_lot_and_genealogy_away(catalogue, ledger):
    """Completions of 40 and 35 chairs; the 35 are reversed: every component lot is where it was after the 40,
    the lot FG-75 is gone, and genealogy knows only FG-40."""
    first = produce(catalogue, post(catalogue, ledger, completion("c-40", 40, lot="FG-40")), "FG-40", 40)
    second = produce(catalogue, post(catalogue, first, completion("c-35", 35, before=40, lot="FG-75")), "FG-75", 35,
                     event="made-2")
    reversal = reverse_completion(second, production_order="PO-1", flush_id="c-35", item="CHAIR", lot="FG-75",
                                  quantity=D(35), event_id="cancel-35")
    after = second.appended(reversal)
    assert after.balances() == first.balances()
    assert {m.reason for m in reversal} == {MovementReason.REVERSAL}
    links = Genealogy.from_movements(after.movements)
    assert links.components_of("CHAIR", "FG-75") == ()
    assert links.components_of("CHAIR", "FG-40") == Genealogy.from_movements(first.movements).components_of(
        "CHAIR", "FG-40")


def test_a_completion_whose_lot_was_partly_consumed_cannot_be_reversed(catalogue, ledger):
    made = produce(catalogue, post(catalogue, ledger, completion("c-10", 10, lot="FG-10")), "FG-10", 10)
    used = made.appended([LedgerMovement("CHAIR", "FG", "FG-10", D(-4), MovementReason.DELIVERY, "signed")])
    with pytest.raises(CompletionNotReversibleError, match="6 of the 10 produced"):
        reverse_completion(used, production_order="PO-1", flush_id="c-10", item="CHAIR", lot="FG-10",
                           quantity=D(10), event_id="cancel")


def test_a_completion_whose_lot_is_allocated_cannot_be_reversed(catalogue, ledger):
    made = produce(catalogue, post(catalogue, ledger, completion("c-10", 10, lot="FG-10")), "FG-10", 10)
    promised = made.appended([LedgerMovement("CHAIR", "FG", "FG-10", D(10), MovementReason.ALLOCATION, "a",
                                             production_order="PO-1")])
    with pytest.raises(CompletionNotReversibleError, match="allocated"):
        reverse_completion(promised, production_order="PO-1", flush_id="c-10", item="CHAIR", lot="FG-10",
                           quantity=D(10), event_id="cancel")
