"""Allocation: promising stock to an order is a movement; it changes available, never on hand."""

from decimal import Decimal as D

import pytest

from backflush_manufacturer.domain import InsufficientStockError, allocate, release_allocations


def test_allocating_a_lot_makes_it_unavailable_to_others(catalogue, make_ledger):
    ledger = make_ledger([("SEAT", "SE1", D(10))])
    promise = allocate(catalogue, ledger, item="SEAT", lot="SE1", quantity=D(6), production_order="PO-1", event_id="a")
    ledger = ledger.appended([promise])
    assert (ledger.on_hand("SEAT"), ledger.allocated("SEAT"), ledger.available("SEAT")) == (10, 6, 4)


def test_allocating_more_than_is_available_is_refused(catalogue, make_ledger):
    ledger = make_ledger([("SEAT", "SE1", D(10))])
    with pytest.raises(InsufficientStockError) as caught:
        allocate(catalogue, ledger, item="SEAT", lot="SE1", quantity=D(11), production_order="PO-1", event_id="a")
    assert (caught.value.item, caught.value.needed, caught.value.available) == ("SEAT", 11, 10)


def test_releasing_an_orders_allocations_frees_them_and_only_them(catalogue, make_ledger):
    ledger = make_ledger([("SEAT", "SE1", D(10))])
    for order, quantity in (("PO-1", 6), ("PO-2", 3)):
        promise = allocate(
            catalogue, ledger, item="SEAT", lot="SE1", quantity=D(quantity), production_order=order, event_id=order
        )
        ledger = ledger.appended([promise])
    ledger = ledger.appended(release_allocations(ledger, production_order="PO-1", event_id="cancel"))
    assert ledger.allocated("SEAT") == 3
    assert ledger.allocated("SEAT", production_order="PO-1") == 0
