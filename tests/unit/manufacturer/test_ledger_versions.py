"""Ledger versions share one log: appending to any version gives what building it from scratch gives."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from backflush_manufacturer.domain.ledger import LedgerMovement, MovementReason, StockLedger

movements = st.builds(
    LedgerMovement,
    item=st.sampled_from(["A", "B"]),
    location=st.just("MAIN"),
    lot=st.sampled_from(["L1", "L2"]),
    quantity=st.integers(min_value=-5, max_value=5).map(Decimal),
    reason=st.sampled_from([MovementReason.RECEIPT, MovementReason.BACKFLUSH]),
    event_id=st.just("e"),
    production_order=st.sampled_from([None, "PO1", "PO2"]),
    flush_id=st.sampled_from([None, "F1", "F2"]),
)


def summary(ledger: StockLedger) -> tuple[object, ...]:
    return (
        ledger.movements,
        ledger.balances(),
        ledger.flush_movements("F1"),
        ledger.flush_movements("F2"),
        ledger.flush_ids_of_order("PO1"),
        dict(ledger.consumed_by_order("PO2")),
    )


@given(st.lists(movements, max_size=8), st.lists(movements, max_size=8), st.lists(movements, max_size=8))
def test_a_branch_from_an_older_version_sees_only_its_own_history(
    base: list[LedgerMovement], first: list[LedgerMovement], second: list[LedgerMovement]
) -> None:
    """Appending `first` then, again from the same parent, `second`: each child equals its ledger built anew,
    and the parent is unchanged."""
    parent = StockLedger.from_movements(base)
    before = summary(parent)
    child_one = parent.appended(first)
    child_two = parent.appended(second)
    assert summary(child_one) == summary(StockLedger.from_movements(base + first))
    assert summary(child_two) == summary(StockLedger.from_movements(base + second))
    assert summary(parent) == before
    grandchild = child_one.appended(second)
    assert summary(grandchild) == summary(StockLedger.from_movements(base + first + second))
