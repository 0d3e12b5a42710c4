"""Properties of the stock ledger and the flushes posted to it (worked-example chair from conftest.py)."""

from decimal import ROUND_CEILING, ROUND_FLOOR
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from backflush_manufacturer.domain import (
    ComponentIssue,
    FlushPoint,
    FlushRequest,
    LedgerMovement,
    MovementReason,
    NegativeStockPolicy,
    ParkedFlush,
    PostedFlush,
    Receipt,
    StockLedger,
    StockPolicies,
    backflush,
    issue,
    receive,
    receive_all,
    reprocess_parked,
    reverse_flush,
)

ITEMS = ("CASTOR", "SCREW", "FABRIC", "SEAT", "GREASE", "LABEL")
LOTS = ("L1", "L2", "L3")
LOCATIONS = ("MAIN", "LINE-2")

signed_quantity = st.decimals(min_value=D("-1000"), max_value=D("1000"), places=3)
stock_quantity = st.decimals(min_value=D("0.001"), max_value=D("700"), places=3)


@st.composite
def movement(draw):
    return LedgerMovement(
        draw(st.sampled_from(ITEMS)),
        draw(st.sampled_from(LOCATIONS)),
        draw(st.sampled_from(LOTS)),
        draw(signed_quantity),
        draw(st.sampled_from(list(MovementReason))),
        "e",
        production_order=draw(st.sampled_from(["PO-1", "PO-2", None])),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(movement(), max_size=40))
def test_every_balance_is_the_sum_of_its_movements(movements):
    ledger = StockLedger.from_movements(movements)
    for item in ITEMS:
        stock = [m for m in movements if m.item == item and m.reason is not MovementReason.ALLOCATION]
        promised = [m for m in movements if m.item == item and m.reason is MovementReason.ALLOCATION]
        assert ledger.on_hand(item) == sum((m.quantity for m in stock), D(0))
        assert ledger.allocated(item) == sum((m.quantity for m in promised), D(0))
        for location in LOCATIONS:
            for lot in LOTS:
                assert ledger.on_hand(item, location, lot) == sum(
                    (m.quantity for m in stock if m.location == location and m.lot == lot), D(0)
                )
                assert ledger.available(item, location, lot) == ledger.on_hand(item, location, lot) - sum(
                    (m.quantity for m in promised if m.location == location and m.lot == lot), D(0)
                )


@settings(max_examples=100, deadline=None)
@given(st.lists(movement(), max_size=30), st.integers(0, 30))
def test_a_ledger_appended_in_two_batches_equals_one_built_at_once(movements, cut):
    stepwise = StockLedger.from_movements(movements[:cut]).appended(movements[cut:])
    at_once = StockLedger.from_movements(movements)
    assert stepwise.balances() == at_once.balances()
    assert stepwise.allocations() == at_once.allocations()


# -- flush and reverse ------------------------------------------------------------------------------------------

PIECES = {"CASTOR", "SCREW", "SEAT", "LABEL"}


@st.composite
def receipts(draw, min_size=0, max_size=8, prefix="r"):
    """Receipts of the chair's components into a few lots each, whole quantities for pieces."""
    entries = draw(
        st.lists(
            st.tuples(st.sampled_from(ITEMS), st.sampled_from(LOTS), stock_quantity),
            min_size=min_size,
            max_size=max_size,
        )
    )
    return [
        Receipt(f"{prefix}-{n}", item, f"{item}-{lot}", whole(quantity) if item in PIECES else quantity)
        for n, (item, lot, quantity) in enumerate(entries)
    ]


def whole(quantity):
    return quantity.to_integral_value(ROUND_CEILING)


flush_request = st.builds(
    lambda point, quantity, before: FlushRequest(
        "flush-under-test", "PO-1", "CHAIR", point, D(quantity), D(before), finished_lot="FG-1"
    ),
    st.sampled_from(list(FlushPoint)),
    st.integers(1, 120),
    st.integers(0, 80),
)
policies = st.sampled_from([NegativeStockPolicy.ALLOW, NegativeStockPolicy.PARK]).map(StockPolicies)


@settings(max_examples=150, deadline=None)
@given(receipts(), flush_request, policies, receipts(prefix="later"))
def test_flush_then_reverse_leaves_every_balance_and_lot_as_before(chair, stock, request, policy, later):
    """Posting a flush, receiving more stock (which may settle what the flush left negative), then reversing the
    flush, leaves every lot exactly as receiving the same stock without the flush would have."""
    before = StockLedger.from_movements(receive_all(chair, StockLedger(), stock))
    outcome = backflush(chair, before, request, policy)
    after = before.appended(outcome.movements) if isinstance(outcome, PostedFlush) else before
    after = after.appended(receive_all(chair, after, later))
    restored = after.appended(reverse_flush(after, request.flush_id, "cancelled"))
    without_flush = before.appended(receive_all(chair, before, later))
    assert restored.balances() == without_flush.balances()
    assert restored.consumed_by_order("PO-1") == {}


# -- parked flushes -----------------------------------------------------------------------------------------------

PARK = StockPolicies(NegativeStockPolicy.PARK)

requests = st.lists(
    st.one_of(
        st.integers(1, 40).map(lambda q: ("complete", q)),
        st.tuples(st.sampled_from(["CASTOR", "FABRIC", "SCREW"]), st.integers(1, 90)).map(lambda t: ("issue", *t)),
    ),
    min_size=1,
    max_size=6,
)


def build(n, spec):
    if spec[0] == "complete":
        return FlushRequest(f"f-{n}", f"PO-{n}", "CHAIR", FlushPoint.POST, D(spec[1]), finished_lot=f"FG-{n}")
    return ComponentIssue(f"f-{n}", f"PO-{n}", spec[1], D(spec[2]), MovementReason.SCRAP)


@settings(max_examples=100, deadline=None)
@given(requests.flatmap(lambda specs: st.tuples(st.just(specs), st.permutations(range(len(specs))))))
def test_parked_flushes_reprocessed_after_receipts_give_the_same_totals_in_any_arrival_order(chair, drawn):
    """Every flush parks on an empty ledger; two receipt waves then cover them all. Whatever the arrival order, all
    of them post and every lot ends where the arrival order 0, 1, 2, ... leaves it."""
    specs, order = drawn

    def run(arrival):
        ledger = StockLedger()
        queue = []
        for n in arrival:
            request = build(n, specs[n])
            outcome = (backflush if isinstance(request, FlushRequest) else issue)(chair, ledger, request, PARK)
            assert isinstance(outcome, ParkedFlush)
            queue.append(outcome)
        needed: dict[str, D] = {}
        for parked in queue:
            for requirement in parked.requirements:
                needed[requirement.item] = needed.get(requirement.item, D(0)) + requirement.quantity
        posted = []
        # the first wave brings half of what is needed (some flushes post, others keep waiting), the second all of it
        for wave, share, rounding in (("first", D("0.5"), ROUND_FLOOR), ("second", D(1), ROUND_CEILING)):
            for item, quantity in needed.items():
                received = (quantity * share).to_integral_value(rounding)
                if received > 0:
                    receipt = Receipt(f"{wave}-{item}", item, f"{wave}-{item}", received)
                    ledger = ledger.appended(receive(chair, ledger, receipt))
            result = reprocess_parked(ledger, queue, PARK)
            ledger = ledger.appended(result.movements)
            posted.extend(result.posted)
            queue = list(result.still_parked)
        assert queue == []
        return ledger, posted, needed

    ledger, posted, needed = run(order)
    reference, _, _ = run(range(len(specs)))
    assert ledger.balances() == reference.balances()
    assert sorted(p.flush_id for p in posted) == sorted(f"f-{n}" for n in range(len(specs)))
    consumed = {
        item: -sum((m.quantity for p in posted for m in p.movements if m.item == item), D(0)) for item in needed
    }
    assert consumed == needed
