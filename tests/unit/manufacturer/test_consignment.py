"""Contract manufacturing in the pure engine: whose lots a flush takes, owner stock never negative, the reports.

A KIT is 2 PART (pre) and 1 CAP (post). BRAND-A and BRAND-B consign PART lots; the manufacturer holds its own.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backflush_manufacturer.domain import (
    NEGATIVE_LOT,
    PCS,
    Bom,
    BomCatalogue,
    BomLine,
    ComponentIssue,
    FlushPoint,
    FlushRequest,
    InsufficientComponentStockError,
    Item,
    MovementReason,
    NegativeStockPolicy,
    ParkedFlush,
    PostedFlush,
    Receipt,
    StockLedger,
    StockPolicies,
    backflush,
    issue,
    plan,
    receive,
)
from backflush_manufacturer.domain.consignment import flush_reports, period_bounds, statement
from backflush_manufacturer.domain.errors import LotOwnerMismatchError
from backflush_manufacturer.domain.parking import reprocess_parked
from backflush_manufacturer.domain.reversal import reverse_flush

PARK = StockPolicies(NegativeStockPolicy.PARK)
ALLOW = StockPolicies(NegativeStockPolicy.ALLOW)
REJECT = StockPolicies(NegativeStockPolicy.REJECT)
OWNERS = ("BRAND-A", "BRAND-B", None)

CATALOGUE = BomCatalogue(
    [Item("KIT", PCS), Item("PART", PCS), Item("CAP", PCS)],
    [Bom("KIT", (BomLine("PART", D(2), flush=FlushPoint.PRE), BomLine("CAP", D(1), flush=FlushPoint.POST)))],
)


def stocked(*receipts: tuple[str, str, int, str | None]) -> StockLedger:
    ledger = StockLedger()
    for n, (item, lot, quantity, owner) in enumerate(receipts):
        ledger = ledger.appended(receive(CATALOGUE, ledger, Receipt(f"r{n}", item, lot, D(quantity), owner=owner)))
    return ledger


def release(flush_id: str, kits: int, owner: str | None = None, own: bool = False) -> FlushRequest:
    return FlushRequest(flush_id, f"PO-{flush_id}", "KIT", FlushPoint.PRE, D(kits), components_owner=owner,
                        own_components_allowed=own)


def taken(outcome: PostedFlush) -> dict[tuple[str, str | None], D]:
    return {(m.lot, m.owner): -m.quantity for m in outcome.movements}


def test_an_owners_order_takes_its_own_lots_first_then_stops_short_of_anyone_elses():
    """OWN-1 (own) is the oldest lot; BRAND-A has A1 4 and A2 10; BRAND-B has B1 50. 5 kits need 10 PART:
    A1 gives 4, A2 6; OWN-1 and B1 are left alone."""
    ledger = stocked(("PART", "OWN-1", 100, None), ("PART", "A1", 4, "BRAND-A"), ("PART", "B1", 50, "BRAND-B"),
                     ("PART", "A2", 10, "BRAND-A"))
    outcome = backflush(CATALOGUE, ledger, release("1", 5, "BRAND-A"), PARK)
    assert isinstance(outcome, PostedFlush)
    assert taken(outcome) == {("A1", "BRAND-A"): 4, ("A2", "BRAND-A"): 6}


def test_an_ordinary_order_never_takes_a_consigned_lot_even_the_oldest():
    ledger = stocked(("PART", "A1", 100, "BRAND-A"), ("PART", "OWN-1", 3, None))
    outcome = backflush(CATALOGUE, ledger, release("1", 5), PARK)
    assert isinstance(outcome, ParkedFlush)
    [shortage] = outcome.shortages
    assert (shortage.item, shortage.available, shortage.owner) == ("PART", 3, None)


@pytest.mark.parametrize("policies", [ALLOW, PARK], ids=["allow", "park"])
def test_an_owner_shortage_parks_whatever_the_policy_and_posts_nothing(policies):
    """BRAND-A holds 6 PART, 5 kits need 10: even under `allow` nothing goes negative, the flush waits whole."""
    ledger = stocked(("PART", "A1", 6, "BRAND-A"), ("PART", "OWN-1", 100, None))
    outcome = backflush(CATALOGUE, ledger, release("1", 5, "BRAND-A"), policies)
    assert isinstance(outcome, ParkedFlush)
    [shortage] = outcome.shortages
    assert (shortage.needed, shortage.available, shortage.owner) == (10, 6, "BRAND-A")


def test_an_owner_shortage_is_rejected_under_reject():
    ledger = stocked(("PART", "A1", 6, "BRAND-A"))
    with pytest.raises(InsufficientComponentStockError):
        backflush(CATALOGUE, ledger, release("1", 5, "BRAND-A"), REJECT)


def test_with_own_components_allowed_the_shortage_spills_to_own_stock_sold_to_the_owner():
    """BRAND-A holds 6, 5 kits need 10: A1 gives 6, the manufacturer's OWN-1 the other 4."""
    ledger = stocked(("PART", "OWN-1", 100, None), ("PART", "A1", 6, "BRAND-A"), ("PART", "B1", 9, "BRAND-B"))
    outcome = backflush(CATALOGUE, ledger, release("1", 5, "BRAND-A", own=True), PARK)
    assert isinstance(outcome, PostedFlush)
    assert taken(outcome) == {("A1", "BRAND-A"): 6, ("OWN-1", None): 4}
    [report] = flush_reports(outcome.movements, "BRAND-A")
    assert [(r.lot, r.quantity) for r in report.consigned] == [("A1", 6)]
    assert [(r.lot, r.quantity) for r in report.own] == [("OWN-1", 4)]


def test_the_spilled_shortage_follows_the_policy_on_own_stock_only():
    """Under `allow`, what neither the owner's lots nor own stock cover goes onto the (own) negative lot."""
    ledger = stocked(("PART", "A1", 6, "BRAND-A"), ("PART", "OWN-1", 1, None))
    outcome = backflush(CATALOGUE, ledger, release("1", 5, "BRAND-A", own=True), ALLOW)
    assert isinstance(outcome, PostedFlush)
    assert taken(outcome) == {("A1", "BRAND-A"): 6, ("OWN-1", None): 1, (NEGATIVE_LOT, None): 3}


def test_a_consignment_settles_no_negative_lot_and_a_lot_keeps_one_owner():
    ledger = stocked(("PART", "OWN-1", 1, None))
    ledger = ledger.appended(backflush(CATALOGUE, ledger, release("1", 1), ALLOW).movements)  # NEGATIVE -1
    consigned = receive(CATALOGUE, ledger, Receipt("c", "PART", "A1", D(5), owner="BRAND-A"))
    assert [(m.lot, m.quantity, m.owner) for m in consigned] == [("A1", 5, "BRAND-A")]
    ledger = ledger.appended(consigned)
    assert ledger.on_hand("PART", lot=NEGATIVE_LOT) == -1
    with pytest.raises(LotOwnerMismatchError):
        receive(CATALOGUE, ledger, Receipt("x", "PART", "A1", D(1)))
    with pytest.raises(LotOwnerMismatchError):
        receive(CATALOGUE, ledger, Receipt("y", "PART", "OWN-1", D(1), owner="BRAND-B"))
    assert receive(CATALOGUE, ledger, Receipt("z", "PART", "A1", D(1), owner="BRAND-A"))[0].owner == "BRAND-A"


def test_a_reversal_gives_the_units_back_to_the_same_lots_and_owner():
    ledger = stocked(("PART", "A1", 6, "BRAND-A"), ("PART", "OWN-1", 10, None))
    outcome = backflush(CATALOGUE, ledger, release("1", 5, "BRAND-A", own=True), PARK)
    assert isinstance(outcome, PostedFlush)
    flushed = ledger.appended(outcome.movements)
    reversal = reverse_flush(flushed, "1", "cancel")
    assert {(m.lot, m.owner, m.quantity) for m in reversal} == {("A1", "BRAND-A", 6), ("OWN-1", None, 4)}
    [back] = flush_reports(reversal, "BRAND-A", sign=1)
    assert [(r.lot, r.quantity) for r in back.consigned] == [("A1", 6)]
    restored = flushed.appended(reversal)
    assert restored.on_hand("PART", lot="A1") == 6 and restored.on_hand("PART", lot="OWN-1") == 10


def test_a_scrap_issue_for_an_owners_order_draws_the_owners_lot():
    ledger = stocked(("PART", "OWN-1", 10, None), ("PART", "A1", 6, "BRAND-A"))
    request = ComponentIssue("s1", "PO-1", "PART", D(2), MovementReason.SCRAP, components_owner="BRAND-A")
    outcome = issue(CATALOGUE, ledger, request, PARK)
    assert isinstance(outcome, PostedFlush)
    assert [(m.lot, m.owner, m.quantity) for m in outcome.movements] == [("A1", "BRAND-A", -2)]


def test_an_owner_shortage_holds_back_only_flushes_that_would_take_that_owners_stock():
    """The queue: BRAND-A's order waits for its PART; an ordinary order needing PART posts from own stock, and a
    later BRAND-A order waits behind the first. Then BRAND-A consigns and both of its orders post."""
    ledger = stocked(("PART", "A1", 2, "BRAND-A"), ("PART", "OWN-1", 100, None), ("CAP", "K1", 100, None))
    first = backflush(CATALOGUE, ledger, release("1", 5, "BRAND-A"), PARK)
    assert isinstance(first, ParkedFlush)
    ordinary = release("2", 5)
    later = release("3", 1, "BRAND-A")
    queue = [first, ParkedFlush(ordinary, plan(CATALOGUE, ordinary), ()), ParkedFlush(later, plan(CATALOGUE, later), ())]
    result = reprocess_parked(ledger, queue, PARK)
    assert [p.flush_id for p in result.posted] == ["2"]
    assert [p.flush_id for p in result.still_parked] == ["1", "3"]
    assert ("PART", "MAIN", "BRAND-A") in result.held
    ledger = ledger.appended(receive(CATALOGUE, ledger, Receipt("c", "PART", "A2", D(10), owner="BRAND-A")))
    result = reprocess_parked(ledger, result.still_parked, PARK)
    assert [p.flush_id for p in result.posted] == ["1", "3"]


def test_the_statement_reconciles_received_consumed_scrapped_and_on_hand_per_lot():
    """BRAND-A consigns A1 20 before December and A2 10 in it. In December flushes take 10 and 4 from A1 (first in,
    first out), 2 are scrapped from A1, and the flush of 4 is reversed. A1: opening 20, received 0, consumed
    10 + 4 - 4 = 10, scrapped 2, closing 20 - 10 - 2 = 8. A2: received 10, closing 10."""
    start, end = period_bounds("2026-12")
    before, during = start - timedelta(days=3), start + timedelta(days=3)
    ledger = stocked(("PART", "A1", 20, "BRAND-A"))
    history = [(m, before) for m in ledger.movements]
    consignment = receive(CATALOGUE, ledger, Receipt("c2", "PART", "A2", D(10), owner="BRAND-A"))
    ledger = ledger.appended(consignment)
    history += [(m, during) for m in consignment]
    for request in (release("1", 5, "BRAND-A"), release("2", 2, "BRAND-A"),
                    ComponentIssue("s", "PO-1", "PART", D(2), MovementReason.SCRAP, components_owner="BRAND-A")):
        outcome = backflush(CATALOGUE, ledger, request, PARK) if isinstance(request, FlushRequest) else \
            issue(CATALOGUE, ledger, request, PARK)
        assert isinstance(outcome, PostedFlush)
        ledger = ledger.appended(outcome.movements)
        history += [(m, during) for m in outcome.movements]
    reversal = reverse_flush(ledger, "2", "cancel")
    ledger = ledger.appended(reversal)
    history += [(m, during) for m in reversal]
    lines = {(line.lot): line for line in statement(history, "BRAND-A", start, end)}
    a1, a2 = lines["A1"], lines["A2"]
    assert (a1.opening, a1.received, a1.consumed, a1.scrapped, a1.closing) == (20, 0, 10, 2, 8)
    assert (a2.opening, a2.received, a2.consumed, a2.scrapped, a2.closing) == (0, 10, 0, 0, 10)
    assert a1.reconciles and a2.reconciles
    assert a1.closing == ledger.on_hand("PART", lot="A1")
    assert statement(history, "BRAND-B", start, end) == ()


def test_a_period_is_a_month():
    assert period_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="YYYY-MM"):
        period_bounds("2026-W49")


# -- properties ---------------------------------------------------------------------------------------------------

consignments = st.lists(st.tuples(st.sampled_from(OWNERS), st.integers(1, 12)), min_size=0, max_size=6)
orders = st.lists(st.tuples(st.sampled_from(OWNERS), st.booleans(), st.integers(1, 8),
                            st.sampled_from([PARK, ALLOW, REJECT])), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(consignments, orders)
def test_no_order_ever_takes_someone_elses_lot_and_owner_stock_never_goes_negative(receipts, placed):
    """Whatever the receipts, orders and policies: an ordinary order takes own lots only; an owner's order takes
    its own lots, and own lots only when allowed; never another owner's; no consigned lot is ever below zero and
    the negative lot is never an owner's."""
    ledger = stocked(*[("PART", f"L{n}", quantity, owner) for n, (owner, quantity) in enumerate(receipts)])
    for n, (owner, own, kits, policies) in enumerate(placed):
        request = release(str(n), kits, owner, own and owner is not None)
        try:
            outcome = backflush(CATALOGUE, ledger, request, policies)
        except InsufficientComponentStockError:
            continue
        if isinstance(outcome, ParkedFlush):
            continue
        allowed = {owner, None} if owner is not None and own else {owner}
        for m in outcome.movements:
            assert m.owner in allowed, (m, owner, own)
            assert ledger.lot_owner(m.item, m.lot) == m.owner  # the movement names the lot's real owner
            if m.lot == NEGATIVE_LOT:
                assert m.owner is None
        ledger = ledger.appended(outcome.movements)
        for (item, _location, lot), balance in ledger.balances().items():
            if ledger.lot_owner(item, lot) is not None:
                assert balance >= 0
