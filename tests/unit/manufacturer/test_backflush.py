"""The backflush engine on the worked-example chair (BOM in conftest.py), with this stock at MAIN, received in
this order: CASTOR C1 300, C2 300; SCREW S1 1000, S2 1000; FABRIC F1 50.000, F2 60.000; SEAT SE1 100;
GREASE G1 2.000; LABEL L1 200.
"""

from decimal import Decimal as D

import pytest

from backflush_manufacturer.domain import (
    NEGATIVE_LOT,
    ComponentIssue,
    FlushPoint,
    FlushRequest,
    InsufficientComponentStockError,
    MovementReason,
    NegativeStockAlert,
    NegativeStockPolicy,
    NonPositiveQuantityError,
    ParkedFlush,
    PhantomWithStockError,
    PostedFlush,
    StockPolicies,
    TooManyDecimalsError,
    UnknownItemError,
    allocate,
    backflush,
    issue,
)

PARK = StockPolicies(NegativeStockPolicy.PARK)
REJECT = StockPolicies(NegativeStockPolicy.REJECT)
ALLOW = StockPolicies(NegativeStockPolicy.ALLOW)


def completion(flush_id, quantity, before=0, lot="FG-1"):
    return FlushRequest(flush_id, "PO-1", "CHAIR", FlushPoint.POST, D(quantity), D(before), finished_lot=lot)


def consumed(outcome):
    return {(m.item, m.lot): m.quantity for m in outcome.movements}


def test_a_completion_of_100_chairs_takes_every_post_component_first_in_first_out(catalogue, ledger):
    """Post requirements for 100 chairs: CASTOR 526, FABRIC 91.630, SCREW 1248, SEAT 100.
    CASTOR: C1 gives its 300, C2 the other 226. FABRIC: F1 50, F2 41.630. SCREW: S1 1000, S2 248. SEAT: SE1 100.
    """
    outcome = backflush(catalogue, ledger, completion("done-1", 100), PARK)
    assert isinstance(outcome, PostedFlush)
    assert consumed(outcome) == {
        ("CASTOR", "C1"): -300,
        ("CASTOR", "C2"): -226,
        ("FABRIC", "F1"): D("-50.000"),
        ("FABRIC", "F2"): D("-41.630"),
        ("SCREW", "S1"): -1000,
        ("SCREW", "S2"): -248,
        ("SEAT", "SE1"): -100,
    }
    assert outcome.alerts == ()
    assert {m.reason for m in outcome.movements} == {MovementReason.BACKFLUSH}
    assert {(m.event_id, m.flush_id, m.production_order) for m in outcome.movements} == {("done-1", "done-1", "PO-1")}


def test_a_release_flushes_only_the_pre_lines(catalogue, ledger):
    """Pre for 100 chairs: GREASE 102 x 0.015 x 1.10 = 1.683 kg from G1 (BASE is a phantom, its grease is pre)."""
    release = FlushRequest("released-1", "PO-1", "CHAIR", FlushPoint.PRE, D(100), finished_lot="FG-1")
    outcome = backflush(catalogue, ledger, release, PARK)
    assert consumed(outcome) == {("GREASE", "G1"): D("-1.683")}


def test_the_manual_lines_are_issued_by_an_explicit_manual_flush(catalogue, ledger):
    manual = FlushRequest("labels-issued", "PO-1", "CHAIR", FlushPoint.MANUAL, D(100))
    outcome = backflush(catalogue, ledger, manual, PARK)
    assert consumed(outcome) == {("LABEL", "L1"): -100}
    assert {m.reason for m in outcome.movements} == {MovementReason.MANUAL_ISSUE}


def test_completions_of_40_35_25_leave_every_lot_where_one_completion_of_100_does(catalogue, ledger):
    """40: CASTOR C1 211; 35: C1 89 + C2 94 = 183; 25: C2 132. Lots end at C1 0, C2 74 either way."""
    partial = ledger
    for flush_id, quantity, before in (("done-1", 40, 0), ("done-2", 35, 40), ("done-3", 25, 75)):
        outcome = backflush(catalogue, partial, completion(flush_id, quantity, before), PARK)
        partial = partial.appended(outcome.movements)
    whole = ledger.appended(backflush(catalogue, ledger, completion("done", 100), PARK).movements)
    assert partial.balances() == whole.balances()
    assert partial.on_hand("CASTOR", "MAIN", "C2") == 74


def test_a_flush_records_which_component_lots_went_into_the_finished_lot(catalogue, ledger):
    outcome = backflush(catalogue, ledger, completion("done-1", 100, lot="FG-7"), PARK)
    castors = [(g.component_lot, g.quantity) for g in outcome.genealogy if g.component == "CASTOR"]
    assert castors == [("C1", 300), ("C2", 226)]
    assert {(g.finished_item, g.finished_lot) for g in outcome.genealogy} == {("CHAIR", "FG-7")}


def test_allocated_stock_is_never_flushed(catalogue, make_ledger):
    ledger = make_ledger([("SEAT", "SE1", D(10)), ("SEAT", "SE2", D(10))])
    ledger = ledger.appended(
        [allocate(catalogue, ledger, item="SEAT", lot="SE1", quantity=D(8), production_order="PO-9", event_id="a")]
    )
    outcome = issue(catalogue, ledger, ComponentIssue("i-1", "PO-1", "SEAT", D(5)), PARK)
    assert consumed(outcome) == {("SEAT", "SE1"): -2, ("SEAT", "SE2"): -3}


class TestNotEnoughStock:
    """Castors short: 40 chairs need 211 castors but only 200 are in stock (lot C1)."""

    @pytest.fixture
    def short(self, make_ledger):
        return make_ledger(
            [("CASTOR", "C1", D(200)), ("SCREW", "S1", D(1000)), ("FABRIC", "F1", D(50)), ("SEAT", "SE1", D(100))]
        )

    def test_under_reject_the_flush_fails_naming_item_needed_and_available(self, catalogue, short):
        with pytest.raises(InsufficientComponentStockError) as caught:
            backflush(catalogue, short, completion("done-1", 40), REJECT)
        error = caught.value
        assert (error.item, error.needed, error.available, error.location) == ("CASTOR", 211, 200, "MAIN")
        assert error.path == ("CHAIR", "BASE", "CASTOR")
        assert "CASTOR" in str(error) and "needed 211, available 200" in str(error)
        assert "CHAIR > BASE > CASTOR" in str(error) and "PO-1" in str(error)

    def test_under_park_the_flush_is_returned_whole_and_posts_nothing(self, catalogue, short):
        outcome = backflush(catalogue, short, completion("done-1", 40), PARK)
        assert isinstance(outcome, ParkedFlush)
        assert not hasattr(outcome, "movements")
        assert [(s.item, s.needed, s.available, s.shortfall) for s in outcome.shortages] == [
            ("CASTOR", 211, 200, 11)
        ]
        assert {r.item for r in outcome.requirements} == {"CASTOR", "FABRIC", "SCREW", "SEAT"}

    def test_under_allow_the_shortfall_goes_onto_the_negative_lot_with_an_alert(self, catalogue, short):
        outcome = backflush(catalogue, short, completion("done-1", 40), ALLOW)
        assert consumed(outcome)[("CASTOR", "C1")] == -200
        assert consumed(outcome)[("CASTOR", NEGATIVE_LOT)] == -11
        assert outcome.alerts == (
            NegativeStockAlert("CASTOR", "MAIN", NEGATIVE_LOT, D(211), D(200), D(11), "done-1", "PO-1"),
        )
        after = short.appended(outcome.movements)
        assert after.on_hand("CASTOR", "MAIN", "C1") == 0  # a real lot never goes below zero
        assert after.on_hand("CASTOR") == -11

    def test_the_strictest_policy_of_the_short_components_decides_for_the_whole_flush(self, catalogue, make_ledger):
        """40 chairs against CASTOR 200 (needs 211), SCREW 100 (needs 500), SEAT 10 (needs 40), FABRIC 50 (enough).
        Castors allow + screws park -> parked whole. Add seats reject -> rejected, naming the seat."""
        ledger = make_ledger(
            [("CASTOR", "C1", D(200)), ("SCREW", "S1", D(100)), ("FABRIC", "F1", D(50)), ("SEAT", "SE1", D(10))]
        )
        allow_park = StockPolicies(NegativeStockPolicy.ALLOW, {"SCREW": NegativeStockPolicy.PARK})
        outcome = backflush(catalogue, ledger, completion("done-1", 40), allow_park)
        assert isinstance(outcome, ParkedFlush)
        assert [s.item for s in outcome.shortages] == ["CASTOR", "SCREW", "SEAT"]
        with_reject = StockPolicies(
            NegativeStockPolicy.ALLOW, {"SCREW": NegativeStockPolicy.PARK, "SEAT": NegativeStockPolicy.REJECT}
        )
        with pytest.raises(InsufficientComponentStockError) as caught:
            backflush(catalogue, ledger, completion("done-1", 40), with_reject)
        assert (caught.value.item, caught.value.needed, caught.value.available) == ("SEAT", 40, 10)
        assert [s.item for s in caught.value.shortages] == ["CASTOR", "SCREW", "SEAT"]

    def test_a_per_item_override_beats_the_global_policy(self, catalogue, short):
        policies = StockPolicies(NegativeStockPolicy.REJECT, {"CASTOR": NegativeStockPolicy.ALLOW})
        outcome = backflush(catalogue, short, completion("done-1", 40), policies)
        assert isinstance(outcome, PostedFlush) and outcome.alerts[0].item == "CASTOR"


def test_extra_scrap_is_issued_to_the_order_like_any_consumption(catalogue, ledger):
    scrap = ComponentIssue(
        "scrap-1", "PO-1", "FABRIC", D("2.5"), MovementReason.SCRAP, finished_item="CHAIR", finished_lot="FG-1"
    )
    outcome = issue(catalogue, ledger, scrap, PARK)
    assert consumed(outcome) == {("FABRIC", "F1"): D("-2.5")}
    assert outcome.movements[0].reason is MovementReason.SCRAP


class TestBadRequests:
    def test_a_phantom_cannot_be_issued(self, catalogue, ledger):
        with pytest.raises(PhantomWithStockError, match="BASE"):
            issue(catalogue, ledger, ComponentIssue("i-1", "PO-1", "BASE", D(1)), PARK)

    def test_an_unknown_item_cannot_be_flushed(self, catalogue, ledger):
        request = FlushRequest("f", "PO-1", "SOFA", FlushPoint.POST, D(1))
        with pytest.raises(UnknownItemError, match="SOFA"):
            backflush(catalogue, ledger, request, PARK)

    def test_half_a_completed_chair_is_refused(self, catalogue, ledger):
        with pytest.raises(TooManyDecimalsError, match="CHAIR"):
            backflush(catalogue, ledger, completion("f", "2.5"), PARK)

    def test_a_negative_completion_is_refused(self, catalogue, ledger):
        with pytest.raises(NonPositiveQuantityError, match="CHAIR"):
            backflush(catalogue, ledger, completion("f", -1), PARK)

    def test_a_negative_quantity_completed_before_is_refused(self, catalogue, ledger):
        with pytest.raises(NonPositiveQuantityError, match="completed before"):
            backflush(catalogue, ledger, completion("f", 1, before=-1), PARK)
