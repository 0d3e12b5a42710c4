"""Calling off racked goods goes through the distributor: only the holder, only racked pre-product goods, and
once called off the order cannot be cancelled (the warehouse ships on the call-off)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backflush_distributor.domain.lifecycle import (
    CallOffByAnotherHolderError,
    CallOffNotPreOrderError,
    CallOffNotRackedError,
    CallOffOfFinishedOrderError,
    CancellationAfterShipmentError,
    Order,
    check_call_off,
    check_cancellable,
)

HOLDER = "Acme Offices"


def _racked(flow: str = "pre") -> Order:
    return Order("OFF-1", flow, "CHAIR-ERGO", Decimal(3)).with_milestones(directed_to_racks=True, racked=True)


def test_the_holder_calls_off_racked_goods_once() -> None:
    assert check_call_off(_racked(), order_holder=HOLDER, requested_by=HOLDER) is True
    called_off = _racked().with_milestones(delivery_requested=True)
    assert check_call_off(called_off, order_holder=HOLDER, requested_by=HOLDER) is False


def test_a_closed_pre_order_still_holds_its_goods_in_the_racks_until_called_off() -> None:
    closed = _racked().with_milestones(allocated=True, closed=True)
    assert check_call_off(closed, order_holder=HOLDER, requested_by=HOLDER) is True


def test_a_call_off_by_another_holder_is_refused_with_both_names() -> None:
    with pytest.raises(CallOffByAnotherHolderError, match="'Mallory'.*'Acme Offices'"):
        check_call_off(_racked(), order_holder=HOLDER, requested_by="Mallory")


def test_a_call_off_of_goods_not_racked_yet_is_refused() -> None:
    waiting = Order("OFF-1", "pre", "CHAIR-ERGO", Decimal(3)).with_milestones(directed_to_racks=True)
    with pytest.raises(CallOffNotRackedError, match="not racked yet"):
        check_call_off(waiting, order_holder=HOLDER, requested_by=HOLDER)


def test_a_call_off_of_a_post_order_is_refused() -> None:
    with pytest.raises(CallOffNotPreOrderError, match="only pre-product orders are racked"):
        check_call_off(_racked("post"), order_holder=HOLDER, requested_by=HOLDER)


def test_a_call_off_of_a_cancelled_order_is_refused() -> None:
    cancelled = _racked().with_milestones(cancelled_reason="changed my mind")
    with pytest.raises(CallOffOfFinishedOrderError, match="cancelled"):
        check_call_off(cancelled, order_holder=HOLDER, requested_by=HOLDER)


def test_a_cancel_after_a_call_off_is_refused_even_before_allocation() -> None:
    called_off = _racked().with_milestones(delivery_requested=True)
    with pytest.raises(CancellationAfterShipmentError, match="called off"):
        check_cancellable(called_off)
