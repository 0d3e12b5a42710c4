"""Ledger versions share one log: appending to any version gives what building it from scratch gives."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backflush_manufacturer.domain.ledger import NEGATIVE_LOT, LedgerMovement, MovementReason, StockLedger, _ItemState

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


rich_movements = st.builds(
    LedgerMovement,
    item=st.sampled_from(["A", "B"]),
    location=st.sampled_from(["MAIN", "FG"]),
    lot=st.sampled_from(["L1", "L2", NEGATIVE_LOT]),
    quantity=st.integers(min_value=-5, max_value=5).map(Decimal),
    reason=st.sampled_from([MovementReason.RECEIPT, MovementReason.BACKFLUSH, MovementReason.ALLOCATION]),
    event_id=st.just("e"),
    production_order=st.sampled_from([None, "PO1", "PO2"]),
    flush_id=st.sampled_from([None, "F1", "F2"]),
    owner=st.sampled_from([None, "BRAND"]),
)


def full_summary(ledger: StockLedger) -> tuple[object, ...]:
    """`summary` and every per-item answer: lots in FIFO order with owners, debts, allocations, lot locations."""
    per_item = tuple(
        (ledger.lots(item), ledger.lots(item, "FG"), ledger.negative_debts(item), ledger.negative_debts(item, "FG"),
         ledger.allocations(), ledger.allocations_of_order("PO1"), ledger.lot_locations(item, "L1"),
         ledger.lot_locations(item, "L2"), ledger.on_hand(item), ledger.available(item))
        for item in ("A", "B")
    )
    return summary(ledger) + per_item + (ledger.items(),)


@given(st.lists(rich_movements, max_size=6), st.lists(st.lists(rich_movements, max_size=4), max_size=6),
       st.lists(rich_movements, max_size=4), st.integers(min_value=0, max_value=6))
def test_a_working_ledger_appended_in_place_leaves_every_other_version_as_it_was(
    base: list[LedgerMovement], batches: list[list[LedgerMovement]], other: list[LedgerMovement], split: int
) -> None:
    """A transaction's working ledger, appended to many times in place, equals its ledger built anew; the version
    it started from, a sibling branched from that version, and a value taken from the working ledger half way
    are all unchanged by the appends that follow them."""
    shared = StockLedger.from_movements(base)
    shared_before = full_summary(shared)
    working = shared.working()
    sibling = shared.appended(other)  # another transaction's version from the same start
    appended: list[LedgerMovement] = []
    taken = None
    for number, batch in enumerate(batches):
        if number == split:
            taken, taken_of = working.appended(other), base + appended + other
        working.append(batch)
        appended += batch
        assert full_summary(working) == full_summary(StockLedger.from_movements(base + appended))
    assert full_summary(shared) == shared_before
    assert full_summary(sibling) == full_summary(StockLedger.from_movements(base + other))
    if taken is not None:
        assert full_summary(taken) == full_summary(StockLedger.from_movements(taken_of))


def test_a_working_ledger_copies_an_items_state_at_its_first_append_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The state of an item (every lot it ever had) is copied once per working ledger, not once per append; after
    a value is taken from the working ledger (they then share the state) it is copied once more, before the
    working ledger next changes it."""
    def receipt(item: str, lot: str) -> LedgerMovement:
        return LedgerMovement(item, "MAIN", lot, Decimal(1), MovementReason.RECEIPT, f"r-{lot}")

    shared = StockLedger.from_movements([receipt("A", "OLD"), receipt("B", "OLD")])
    copies: list[object] = []
    clone = _ItemState.clone

    def counted(state: _ItemState) -> _ItemState:
        copies.append(state)
        return clone(state)

    monkeypatch.setattr(_ItemState, "clone", counted)
    working = shared.working()
    for n in range(50):
        working.append([receipt("A", f"L{n}")])
    assert len(copies) == 1 and working.on_hand("A") == 51 and shared.on_hand("A") == 1
    value = working.appended([receipt("B", "NEW")])
    assert len(copies) == 2  # B, for the value
    working.append([receipt("A", "AFTER")])
    working.append([receipt("A", "AFTER2")])
    assert len(copies) == 3  # A again, once: the value holds the state the working ledger had
    assert value.on_hand("A") == 51 and working.on_hand("A") == 53


def test_only_a_working_ledger_that_is_not_frozen_is_appended_to_in_place() -> None:
    receipt = LedgerMovement("A", "MAIN", "L1", Decimal(1), MovementReason.RECEIPT, "r")
    version = StockLedger.from_movements([receipt])
    with pytest.raises(TypeError):
        version.append([receipt])
    working = version.working()
    working.append([receipt])
    frozen = working.freeze()
    with pytest.raises(TypeError):
        frozen.append([receipt])
    assert frozen.on_hand("A") == 2 and version.on_hand("A") == 1


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
