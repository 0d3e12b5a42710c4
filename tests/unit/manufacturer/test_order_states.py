"""The states of a production order and of a run, and the moves between them (issue 18: states as an enum with
their transitions in the domain). The tables below are written out as the stored strings on purpose: they are the
specification the code's table must match, and the strings the database, the CLI and the audit have always read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backflush_shared.audit import FINISHED_PRODUCTION_STATES
from backflush_shared.errors import BackflushError

from backflush_manufacturer.domain.order_states import (
    IllegalProductionOrderTransitionError,
    ProductionOrderState,
    next_states,
    transition,
)

S = ProductionOrderState

#: Where a production order (flow pre, post or stock) may go from each state.
ORDER_MOVES = {
    "created": {"awaiting-inspection", "quality-failed", "released", "parked", "rejected", "produced"},
    "awaiting-inspection": {"quality-failed", "parked", "rejected", "produced", "cancelled"},
    "released": {"released", "parked", "in-production", "completed", "closed", "cancelled"},
    "in-production": {"released", "parked", "in-production", "completed", "closed", "cancelled"},
    "parked": {"parked", "released", "in-production", "completed", "closed", "produced", "rejected", "cancelled"},
    "completed": {"delivered", "cancelled"},
    "closed": {"in-production", "released"},
    "produced": {"allocated", "delivered", "cancelled"},
    "allocated": {"delivered", "cancelled"},
    "delivered": set(),
    "rejected": set(),
    "cancelled": set(),
    "quality-failed": set(),
    "reported": set(),
    "stocked": set(),
    "withdrawal-requested": set(),
}

#: Where a run may go from each state.
RUN_MOVES = {
    "reported": {"parked", "stocked", "rejected"},
    "parked": {"stocked", "rejected", "cancelled"},
    "stocked": {"withdrawal-requested"},
    "withdrawal-requested": {"cancelled", "stocked"},
}

#: The paths the flows take today (tests/e2e and tests/integration/manufacturer drive them through the services).
FLOWS = {
    "pre-product, the plan passes": ("created", "produced", "allocated", "delivered"),
    "pre-product, an inspector passes it": ("created", "awaiting-inspection", "produced", "allocated", "delivered"),
    "pre-product, an inspector fails it": ("created", "awaiting-inspection", "quality-failed"),
    "pre-product, the plan fails it": ("created", "quality-failed"),
    "pre-product, the release parks, then posts": ("created", "parked", "produced", "allocated", "delivered"),
    "pre-product, the completion flush refused": ("created", "parked", "rejected"),
    "post-product, in two completions": ("created", "released", "in-production", "completed", "delivered"),
    "post-product, a completion parks": ("created", "released", "in-production", "parked", "in-production",
                                         "completed", "delivered"),
    "post-product, a completion refused": ("created", "released", "released", "in-production", "in-production"),
    "post-product, its completion cancelled": ("created", "released", "in-production", "released", "cancelled"),
    "post-product, the release refused": ("created", "rejected"),
    "make-to-stock, its last completion cancelled": ("created", "released", "in-production", "closed",
                                                     "in-production", "closed"),
    "make-to-stock, the release parks": ("created", "parked", "released", "in-production", "closed"),
}
RUN_FLOWS = {
    "run posted, reversed": ("reported", "stocked", "withdrawal-requested", "cancelled"),
    "run reversal refused by the warehouse": ("reported", "stocked", "withdrawal-requested", "stocked"),
    "run parked, then posted": ("reported", "parked", "stocked"),
    "run parked, then cancelled": ("reported", "parked", "cancelled"),
    "run refused under reject": ("reported", "rejected"),
    "run parked, refused when reprocessed": ("reported", "parked", "rejected"),
}


def test_the_states_are_the_strings_the_status_column_always_held():
    assert {state.value for state in S} == set(ORDER_MOVES)
    assert S("in-production") is S.IN_PRODUCTION and f"{S.IN_PRODUCTION}" == "in-production"


@pytest.mark.parametrize("state", sorted(ORDER_MOVES))
def test_a_production_order_in_each_state_may_go_exactly_where_the_flows_take_it(state):
    assert {s.value for s in next_states(S(state))} == ORDER_MOVES[state]


@pytest.mark.parametrize("state", sorted(ORDER_MOVES))
def test_a_run_in_each_state_may_go_exactly_where_the_run_flows_take_it(state):
    assert {s.value for s in next_states(S(state), run=True)} == RUN_MOVES.get(state, set())


def test_finished_are_cancelled_rejected_and_quality_failed_as_the_audit_reads_them():
    assert {s.value for s in S if s.finished} == {"cancelled", "rejected", "quality-failed"}
    assert {s.value for s in S if s.finished} == set(FINISHED_PRODUCTION_STATES)


@pytest.mark.parametrize("run", [False, True], ids=["order", "run"])
@pytest.mark.parametrize("finished", [s for s in S if s.finished])
def test_a_finished_order_or_run_cannot_move(finished, run):
    for to in S:
        with pytest.raises(IllegalProductionOrderTransitionError):
            transition(finished, to, run=run)


@pytest.mark.parametrize("path", FLOWS.values(), ids=FLOWS.keys())
def test_every_move_of_a_production_order_flow_is_allowed(path):
    state = S(path[0])
    for to in path[1:]:
        state = transition(state, S(to))
    assert state == path[-1]


@pytest.mark.parametrize("path", RUN_FLOWS.values(), ids=RUN_FLOWS.keys())
def test_every_move_of_a_run_flow_is_allowed(path):
    state = S(path[0])
    for to in path[1:]:
        state = transition(state, S(to), run=True)
    assert state == path[-1]


def test_a_refused_move_names_the_order_both_states_and_where_it_may_go():
    with pytest.raises(IllegalProductionOrderTransitionError) as refused:
        transition(S.ALLOCATED, S.PARKED, order_id="PO-7")
    assert isinstance(refused.value, BackflushError)  # so the event is refused with its reason, not retried
    assert (refused.value.current, refused.value.to, refused.value.order_id) == (S.ALLOCATED, S.PARKED, "PO-7")
    assert str(refused.value) == ("production order PO-7 cannot move from allocated to parked; "
                                  "from allocated it may go to cancelled, delivered")


def test_a_delivered_order_goes_nowhere_and_says_so():
    with pytest.raises(IllegalProductionOrderTransitionError, match="it may go to nowhere: it ends there"):
        transition(S.DELIVERED, S.CANCELLED)


def test_a_production_order_never_takes_a_run_s_move_nor_a_run_an_order_s():
    with pytest.raises(IllegalProductionOrderTransitionError, match="production order"):
        transition(S.PARKED, S.STOCKED)
    with pytest.raises(IllegalProductionOrderTransitionError, match="a run cannot move from parked to released"):
        transition(S.PARKED, S.RELEASED, run=True)


@settings(max_examples=300, deadline=None)
@given(run=st.booleans(), choices=st.lists(st.tuples(st.integers(0, 20), st.sampled_from(list(S))), max_size=40))
def test_any_walk_of_allowed_moves_stays_in_its_lane_and_never_leaves_a_finished_state(run, choices):
    """From `created` (a run: `reported`), try random moves: an allowed one is taken, a refused one leaves the state
    as it was. A production order never reaches a run's state nor a run an order's, and once finished nothing moves
    it again."""
    state = S.REPORTED if run else S.CREATED
    run_only = {"reported", "stocked", "withdrawal-requested"}
    reachable = set(RUN_MOVES) | {"rejected", "cancelled"} if run else set(ORDER_MOVES) - run_only
    for pick, attempt in choices:
        allowed = sorted(next_states(state, run=run))
        was_finished = state.finished
        to = allowed[pick % len(allowed)] if allowed and pick % 2 else attempt  # half allowed, half anything
        try:
            state = transition(state, to, run=run)
        except IllegalProductionOrderTransitionError:
            assert to not in allowed
            continue
        assert not was_finished
        assert state.value in reachable
