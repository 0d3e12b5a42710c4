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


placed_movements = st.builds(
    LedgerMovement,
    item=st.just("A"),
    location=st.sampled_from(["MAIN", "FG", "DOCK"]),
    lot=st.sampled_from(["L1", "L2"]),
    quantity=st.integers(min_value=-3, max_value=3).map(Decimal),
    reason=st.sampled_from([MovementReason.RECEIPT, MovementReason.BACKFLUSH, MovementReason.ALLOCATION]),
    event_id=st.just("e"),
    production_order=st.sampled_from([None, "PO1"]),
)


def lot_locations_by_scan(movements: list[LedgerMovement], lot: str) -> dict[str, Decimal]:
    """Where the lot is on hand, from every movement: locations in the order of their first on-hand movement."""
    on_hand: dict[str, Decimal] = {}
    for m in movements:
        if m.lot == lot and not m.is_allocation:
            on_hand[m.location] = on_hand.get(m.location, Decimal(0)) + m.quantity
    return {location: quantity for location, quantity in on_hand.items() if quantity}


@given(st.lists(placed_movements, max_size=10), st.lists(placed_movements, max_size=10))
def test_a_lots_locations_are_where_it_is_on_hand_in_first_movement_order(
    first: list[LedgerMovement], second: list[LedgerMovement]
) -> None:
    """Allocations put nothing on hand anywhere; a location the lot went back to zero at is not listed."""
    older = StockLedger.from_movements(first)
    newer = older.appended(second)
    for lot in ("L1", "L2"):
        assert list(older.lot_locations("A", lot).items()) == list(lot_locations_by_scan(first, lot).items())
        assert list(newer.lot_locations("A", lot).items()) == \
            list(lot_locations_by_scan(first + second, lot).items())


allocating_movements = st.builds(
    LedgerMovement,
    item=st.sampled_from(["A", "B"]),
    location=st.sampled_from(["MAIN", "FG"]),
    lot=st.sampled_from(["L1", "L2"]),
    quantity=st.integers(min_value=-2, max_value=2).map(Decimal),
    reason=st.sampled_from([MovementReason.RECEIPT, MovementReason.ALLOCATION, MovementReason.ALLOCATION]),
    event_id=st.just("e"),
    production_order=st.sampled_from([None, "PO1", "PO2"]),
)


@given(st.lists(allocating_movements, max_size=12), st.lists(allocating_movements, max_size=12))
def test_an_orders_allocations_are_the_books_allocations_of_that_order_in_the_same_order(
    first: list[LedgerMovement], second: list[LedgerMovement]
) -> None:
    older = StockLedger.from_movements(first)
    newer = older.appended(second)
    for ledger in (older, newer):
        for order in ("PO1", "PO2"):
            expected = [(key, quantity) for key, quantity in ledger.allocations().items() if key[3] == order]
            assert list(ledger.allocations_of_order(order).items()) == expected
