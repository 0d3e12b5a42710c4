"""Selling from stock (pure): first in, first out by lot, in arrival order, whole orders, never above the stock."""

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from backflush_warehouse.domain.stock import (
    FreeUnit,
    WaitingStockOrder,
    serve_in_arrival_order,
    take_first_in_first_out,
)


def units(*quantities: int) -> list[FreeUnit]:
    return [FreeUnit(i, f"R-{i}", f"L-{i}", "DC-A1", D(q)) for i, q in enumerate(quantities, start=1)]


def test_the_lot_racked_first_goes_first():
    takes = take_first_in_first_out(units(30, 25), D(35))
    assert takes is not None
    assert [(t.unit.lot, t.quantity) for t in takes] == [("L-1", D(30)), ("L-2", D(5))]


def test_stock_short_of_the_order_takes_nothing():
    assert take_first_in_first_out(units(3, 4), D(8)) is None


def test_an_order_that_does_not_fit_waits_with_the_figures_and_the_later_ones_wait_behind_it():
    serving = serve_in_arrival_order([WaitingStockOrder("SO-1", D(10)), WaitingStockOrder("SO-2", D(2))], units(5))
    assert serving.served == ()
    assert [(w.order_id, w.needed, w.free) for w in serving.waiting] == [("SO-1", D(10), D(5)), ("SO-2", D(2), D(0))]


def test_orders_are_served_in_arrival_order_from_what_the_earlier_ones_left():
    serving = serve_in_arrival_order([WaitingStockOrder("SO-1", D(4)), WaitingStockOrder("SO-2", D(4)),
                                      WaitingStockOrder("SO-3", D(4))], units(3, 7))
    assert [s.order_id for s in serving.served] == ["SO-1", "SO-2"]
    assert [(t.unit.lot, t.quantity) for t in serving.served[1].takes] == [("L-2", D(4))]
    assert [(w.order_id, w.free) for w in serving.waiting] == [("SO-3", D(2))]


quantities = st.lists(st.integers(min_value=1, max_value=50), max_size=8)


@given(stock=quantities, orders=quantities)
def test_allocations_never_exceed_the_racked_units_of_any_lot_and_each_order_gets_exactly_its_quantity(
        stock: list[int], orders: list[int]) -> None:
    free = units(*stock)
    serving = serve_in_arrival_order([WaitingStockOrder(f"SO-{i}", D(q)) for i, q in enumerate(orders)], free)
    taken: dict[int, D] = {}
    for served in serving.served:
        assert sum((t.quantity for t in served.takes), D(0)) == D(orders[int(served.order_id[3:])])
        for take in served.takes:
            assert take.quantity > 0
            taken[take.unit.unit_id] = taken.get(take.unit.unit_id, D(0)) + take.quantity
    assert all(taken[u.unit_id] <= u.quantity for u in free if u.unit_id in taken)
    # served is a prefix of the arrival order: nothing jumps the line
    ids = [s.order_id for s in serving.served] + [w.order_id for w in serving.waiting]
    assert ids == [f"SO-{i}" for i in range(len(orders))]
    if serving.waiting:
        first = serving.waiting[0]
        assert first.free < first.needed == D(orders[int(first.order_id[3:])])


def test_an_order_allowing_partial_deliveries_takes_what_is_free_and_waits_first_in_line_for_the_rest():
    serving = serve_in_arrival_order([WaitingStockOrder("SO-1", D(5), partial=True),
                                      WaitingStockOrder("SO-2", D(1))], units(2))
    assert [(s.order_id, s.quantity) for s in serving.served] == [("SO-1", D(2))]
    assert [(w.order_id, w.needed, w.free) for w in serving.waiting] == [("SO-1", D(3), D(0)), ("SO-2", D(1), D(0))]


def test_an_order_allowing_partial_deliveries_with_nothing_free_takes_nothing():
    serving = serve_in_arrival_order([WaitingStockOrder("SO-1", D(5), partial=True)], [])
    assert serving.served == () and [(w.needed, w.free) for w in serving.waiting] == [(D(5), D(0))]


@given(stock=quantities, orders=st.lists(st.tuples(st.integers(min_value=1, max_value=50), st.booleans()),
                                         max_size=8))
def test_partial_or_whole_no_order_gets_more_than_it_waits_for_and_no_lot_more_than_it_holds(
        stock: list[int], orders: list[tuple[int, bool]]) -> None:
    free = units(*stock)
    serving = serve_in_arrival_order([WaitingStockOrder(f"SO-{i}", D(q), p) for i, (q, p) in enumerate(orders)],
                                     free)
    taken: dict[int, D] = {}
    for served in serving.served:
        quantity, partial = orders[int(served.order_id[3:])]
        assert 0 < served.quantity <= quantity and (partial or served.quantity == quantity)
        for take in served.takes:
            taken[take.unit.unit_id] = taken.get(take.unit.unit_id, D(0)) + take.quantity
    assert all(taken[u.unit_id] <= u.quantity for u in free if u.unit_id in taken)
    assert sum(taken.values(), D(0)) <= sum((u.quantity for u in free), D(0))
