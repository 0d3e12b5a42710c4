"""Parked flushes: they wait whole, and post in arrival order once receipts make it possible."""

from decimal import Decimal as D

from backflush_manufacturer.domain import (
    ComponentIssue,
    FlushPoint,
    FlushRequest,
    NegativeStockPolicy,
    ParkedFlush,
    Receipt,
    StockLedger,
    StockPolicies,
    backflush,
    issue,
    receive,
    reprocess_parked,
)

PARK = StockPolicies(NegativeStockPolicy.PARK)


def park(catalogue, ledger, request):
    outcome = (issue if isinstance(request, ComponentIssue) else backflush)(catalogue, ledger, request, PARK)
    assert isinstance(outcome, ParkedFlush)
    return outcome


def castors(flush_id, quantity, order="PO-1"):
    return ComponentIssue(flush_id, order, "CASTOR", D(quantity))


def stock(catalogue, ledger, item, lot, quantity):
    return ledger.appended(receive(catalogue, ledger, Receipt(f"r-{lot}", item, lot, D(quantity))))


def test_nothing_posts_while_the_stock_is_still_missing(catalogue):
    queue = [park(catalogue, StockLedger(), castors("i-1", 10))]
    result = reprocess_parked(StockLedger(), queue, PARK)
    assert result.posted == () and result.still_parked == tuple(queue)


def test_a_receipt_lets_parked_flushes_post_in_arrival_order(catalogue):
    empty = StockLedger()
    queue = [park(catalogue, empty, castors("i-1", 10)), park(catalogue, empty, castors("i-2", 5))]
    ledger = stock(catalogue, empty, "CASTOR", "C1", 15)
    result = reprocess_parked(ledger, queue, PARK)
    assert [p.flush_id for p in result.posted] == ["i-1", "i-2"]
    assert result.still_parked == ()
    assert ledger.appended(result.movements).on_hand("CASTOR") == 0


def test_a_parked_flush_waits_whole_even_when_part_of_it_could_post(catalogue, make_ledger):
    """40 chairs need 211 castors; 200 are in stock and everything else is there: nothing posts, not even seats."""
    ledger = make_ledger(
        [("CASTOR", "C1", D(200)), ("SCREW", "S1", D(1000)), ("FABRIC", "F1", D(50)), ("SEAT", "SE1", D(100))]
    )
    completion = FlushRequest("done-1", "PO-1", "CHAIR", FlushPoint.POST, D(40), finished_lot="FG-1")
    queue = [park(catalogue, ledger, completion)]
    assert reprocess_parked(ledger, queue, PARK).posted == ()
    ledger = stock(catalogue, ledger, "CASTOR", "C2", 11)
    (posted,) = reprocess_parked(ledger, queue, PARK).posted
    assert {(m.item, m.lot): m.quantity for m in posted.movements if m.item == "CASTOR"} == {
        ("CASTOR", "C1"): -200,
        ("CASTOR", "C2"): -11,
    }


def test_an_earlier_flush_still_short_keeps_its_place_in_line_for_that_component(catalogue):
    """i-1 needs 10 castors, i-2 needs 4; only 6 arrive. i-1 still cannot post, and i-2, though 6 would cover it,
    may not take the castors i-1 waits for. i-3 needs screws only and posts."""
    empty = StockLedger()
    queue = [
        park(catalogue, empty, castors("i-1", 10)),
        park(catalogue, empty, castors("i-2", 4)),
        park(catalogue, empty, ComponentIssue("i-3", "PO-3", "SCREW", D(8))),
    ]
    ledger = stock(catalogue, stock(catalogue, empty, "CASTOR", "C1", 6), "SCREW", "S1", 8)
    result = reprocess_parked(ledger, queue, PARK)
    assert [p.flush_id for p in result.posted] == ["i-3"]
    assert [p.flush_id for p in result.still_parked] == ["i-1", "i-2"]


def test_each_parked_flush_sees_the_ledger_the_ones_before_it_left(catalogue):
    """12 castors arrive for i-1 (10) and i-2 (4): i-1 posts, i-2 is short of 2 and stays parked."""
    empty = StockLedger()
    queue = [park(catalogue, empty, castors("i-1", 10)), park(catalogue, empty, castors("i-2", 4))]
    result = reprocess_parked(stock(catalogue, empty, "CASTOR", "C1", 12), queue, PARK)
    assert [p.flush_id for p in result.posted] == ["i-1"]
    (waiting,) = result.still_parked
    assert (waiting.flush_id, waiting.shortages[0].available) == ("i-2", 2)


def test_a_reprocessed_flush_the_reject_policy_refuses_is_refused_not_kept_waiting(catalogue):
    """Under `reject` nothing waits for stock: a parked flush whose item is now `reject` is refused with the
    shortage (instead of failing the batch, and instead of waiting for ever), and it holds nothing behind it."""
    queue = [park(catalogue, StockLedger(), castors("i-1", 10)), park(catalogue, StockLedger(), castors("i-2", 2))]
    ledger = stock(catalogue, StockLedger(), "CASTOR", "C1", 3)
    result = reprocess_parked(ledger, queue, StockPolicies(NegativeStockPolicy.REJECT))
    assert result.still_parked == ()
    [(refused, error)] = result.refused
    assert (refused.flush_id, error.item, error.needed, error.available) == ("i-1", "CASTOR", 10, 3)
    assert [p.flush_id for p in result.posted] == ["i-2"]


def test_a_later_flush_of_an_order_never_posts_before_an_earlier_one_of_the_same_order(catalogue):
    """PO-1's first flush (i-1) is short of castors; its second (i-2) needs screws only, which arrive. i-2 stays
    behind i-1: an order's completion never posts before its
    release. PO-3's flush of screws is another order's, and posts."""
    empty = StockLedger()
    queue = [
        park(catalogue, empty, castors("i-1", 10)),
        park(catalogue, empty, ComponentIssue("i-2", "PO-1", "SCREW", D(8))),
        park(catalogue, empty, ComponentIssue("i-3", "PO-3", "SCREW", D(8))),
    ]
    ledger = stock(catalogue, empty, "SCREW", "S1", 16)
    result = reprocess_parked(ledger, queue, PARK)
    assert [p.flush_id for p in result.posted] == ["i-3"]
    assert [p.flush_id for p in result.still_parked] == ["i-1", "i-2"]
