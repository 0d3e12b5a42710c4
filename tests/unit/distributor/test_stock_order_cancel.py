"""A stock order's cancel is the warehouse's to decide: the distributor passes it on and follows the answer.

Stock reaches the warehouse on another topic than the cancel, so the warehouse may ship a waiting order before it
reads the cancel; a distributor that cancelled at once would end `cancelled` while the goods left."""

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from backflush_distributor.domain.lifecycle import (
    CANCEL_ANSWER,
    CancellationAfterShipmentError,
    Order,
    OrderState,
    await_cancel_answer,
    cancel_accepted,
    cancel_goes_to_warehouse,
    cancel_answer_awaited,
    cancel_refused,
    check_cancellable,
    refused_by_warehouse,
)

WAITING = dict(stock_waiting_since=datetime(2026, 12, 7, tzinfo=UTC), stock_needed=D(5), stock_free=D(0))


def stock_order(**milestones: object) -> Order:
    return Order("SO-1", "stock", "SEAT-ASSY", D(5)).with_milestones(**milestones)


def test_a_stock_orders_cancel_is_requested_of_the_warehouse_not_done():
    order = stock_order(**WAITING)
    check_cancellable(order)
    assert cancel_goes_to_warehouse(order)
    asked = await_cancel_answer(order, "found it cheaper", "{}")
    assert (asked.status.state, asked.status.waiting_for) == (OrderState.WAITING_FOR_STOCK, CANCEL_ANSWER)
    assert asked.milestones.cancelled_reason is None


def test_other_flows_are_cancelled_by_the_distributor_at_once():
    assert not cancel_goes_to_warehouse(Order("PO-1", "pre", "CHAIR-ERGO", D(5)))
    assert not cancel_goes_to_warehouse(Order("PO-2", "post", "CHAIR-ERGO", D(5)))


def test_the_warehouses_acceptance_cancels_the_stock_order_for_the_holders_reason():
    asked = await_cancel_answer(stock_order(**WAITING), "found it cheaper", "{}")
    cancelled = cancel_accepted(asked)
    assert cancelled.status.state is OrderState.CANCELLED
    assert cancelled.milestones.cancelled_reason == "found it cheaper"


def test_the_warehouses_refusal_lets_the_stock_order_go_on_to_its_signature_and_close():
    asked = await_cancel_answer(stock_order(**WAITING), "found it cheaper", "{}")
    shipped = asked.with_milestones(shipped=True, stock_shipped=D(5))  # the warehouse shipped before it read it
    assert (shipped.status.state, shipped.status.waiting_for) == (OrderState.SHIPPED, CANCEL_ANSWER)
    refused = cancel_refused(shipped)
    assert (refused.status.state, refused.status.waiting_for) == (OrderState.SHIPPED, "signature")
    assert refused.with_milestones(stock_signed=D(5)).status.state is OrderState.CLOSED
    error = refused_by_warehouse(refused, "5 of 5 units shipped")
    assert isinstance(error, CancellationAfterShipmentError) and "5 of 5 units shipped" in str(error)


def test_an_answer_without_a_pending_request_changes_nothing():
    order = stock_order(**WAITING)
    assert cancel_accepted(order) == order and cancel_refused(order) == order
    closed = stock_order(shipped=True, stock_shipped=D(5), stock_signed=D(5))
    assert cancel_accepted(closed) == closed


def test_a_refusal_that_comes_after_the_order_closed_still_answers_the_holder():
    """The warehouse shipped, the holder signed (the order closed on GoodsSignedFor), and only then did the
    warehouse read the cancel: its refusal still ends the request, so the holder's cancel gets its answer."""
    asked = await_cancel_answer(stock_order(**WAITING), "found it cheaper", "{}")
    closed = asked.with_milestones(shipped=True, stock_shipped=D(5), stock_signed=D(5))
    assert closed.status.state is OrderState.CLOSED
    assert cancel_answer_awaited(closed)
    answered = cancel_refused(closed)
    assert not cancel_answer_awaited(answered) and answered.milestones.cancel_request_record is None
    assert answered.status.state is OrderState.CLOSED


def test_a_second_request_while_the_first_waits_for_its_answer_changes_nothing():
    asked = await_cancel_answer(stock_order(**WAITING), "found it cheaper", "{}")
    assert await_cancel_answer(asked, "another reason", "{}") == asked


def test_a_stock_order_known_to_have_shipped_is_refused_by_the_distributor_as_today():
    with pytest.raises(CancellationAfterShipmentError):
        check_cancellable(stock_order(shipped=True, stock_shipped=D(2)))
