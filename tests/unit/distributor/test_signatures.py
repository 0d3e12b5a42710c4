"""Only the distributor closes an order; a signature closes an open order, never a cancelled or rejected one."""

from __future__ import annotations

from decimal import Decimal

from backflush_distributor.domain.lifecycle import Order, OrderState, shipment_applies, signature_applies


def _shipped() -> Order:
    return Order("SIG-1", "post", "CHAIR-ERGO", Decimal(3)).with_milestones(
        produced=Decimal(3), consigned=Decimal(3), final_order_placed=True, shipped=True)


def test_a_signature_for_shipped_goods_applies_and_closes_the_order() -> None:
    assert signature_applies(_shipped())
    assert _shipped().with_milestones(signed_by="J. Doe", closed=True).status.state is OrderState.CLOSED


def test_a_signature_for_a_cancelled_or_rejected_order_does_not_apply() -> None:
    cancelled = Order("SIG-2", "post", "CHAIR-ERGO", Decimal(3)).with_milestones(cancelled_reason="changed my mind")
    rejected = Order("SIG-3", "post", "CHAIR-ERGO", Decimal(3)).with_milestones(rejected_reason="unknown item")
    assert not signature_applies(cancelled)
    assert not signature_applies(rejected)


def test_a_shipment_reported_for_a_cancelled_or_rejected_order_does_not_mark_it_shipped() -> None:
    """Found by the fuzz test (seed 71429): a GoodsShipped after the cancel left a cancelled order marked shipped."""
    cancelled = Order("SHP-1", "stock", "CHAIR-ERGO", Decimal(3)).with_milestones(cancelled_reason="changed my mind")
    rejected = Order("SHP-2", "pre", "CHAIR-ERGO", Decimal(3)).with_milestones(rejected_reason="unknown item")
    assert not shipment_applies(cancelled) and not shipment_applies(rejected)
    assert shipment_applies(Order("SHP-3", "stock", "CHAIR-ERGO", Decimal(3)))
