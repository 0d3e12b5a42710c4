"""A stock order as the distributor sees it: waiting for finished-goods stock says the figures, and since when."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from backflush_distributor.domain.lifecycle import (
    CancellationAfterShipmentError,
    Order,
    OrderState,
    check_cancellable,
    should_close_on_stock_signature,
)


def order(**milestones: object) -> Order:
    return Order("SO-1", "stock", "SEAT-ASSY", D(5)).with_milestones(**milestones)


def test_a_stock_order_waits_for_its_allocation_once_forwarded():
    assert (order().status.state, order().status.waiting_for) == (OrderState.FORWARDED,
                                                                  "finished-goods stock allocation")


def test_a_stock_order_short_of_stock_waits_saying_how_many_units_it_needs_and_how_many_are_free():
    status = order(stock_waiting_since=datetime(2026, 12, 7, tzinfo=UTC), stock_needed=D(5), stock_free=D(2)).status
    assert (status.state, status.waiting_for) == (OrderState.WAITING_FOR_STOCK,
                                                  "finished-goods stock: 5 units needed, 2 free")


def test_a_shipped_stock_order_waits_for_the_signature_and_closes_when_signed():
    waited = dict(stock_waiting_since=datetime(2026, 12, 7, tzinfo=UTC), stock_needed=D(5), stock_free=D(2))
    assert order(**waited, shipped=True, stock_shipped=D(5)).status.waiting_for == "signature"
    assert order(**waited, shipped=True, stock_shipped=D(5), stock_signed=D(5)).status.state is OrderState.CLOSED


def test_a_partly_delivered_stock_order_says_what_was_shipped_and_what_it_still_waits_for():
    part = dict(shipped=True, stock_shipped=D(2), signed_by="J. Doe")
    assert order(**part).status.waiting_for == "signature (2 of 5 shipped)"
    signed = order(**part, stock_signed=D(2), stock_waiting_since=datetime(2026, 12, 7, tzinfo=UTC),
                   stock_needed=D(3), stock_free=D(0)).status
    assert (signed.state, signed.waiting_for) == (OrderState.WAITING_FOR_STOCK,
                                                  "finished-goods stock: 3 units needed, 0 free (2 of 5 shipped)")


def test_a_waiting_stock_order_can_be_cancelled_but_not_once_shipped():
    check_cancellable(order(stock_waiting_since=datetime(2026, 12, 7, tzinfo=UTC)))
    with pytest.raises(CancellationAfterShipmentError):
        check_cancellable(order(shipped=True))


def test_the_distributor_closes_a_stock_order_once_the_signatures_cover_all_of_it_not_after_a_part():
    assert not should_close_on_stock_signature(order(shipped=True, stock_shipped=D(2), stock_signed=D(2)))
    assert should_close_on_stock_signature(order(shipped=True, stock_shipped=D(5), stock_signed=D(5)))
    assert not should_close_on_stock_signature(Order("PO-1", "post", "SEAT-ASSY", D(5)).with_milestones(
        stock_signed=D(5)))  # a post-product order closes on its one signature, by another rule
