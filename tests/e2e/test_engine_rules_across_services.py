"""Engine correctness across the three services (issue 15): a refused order does not block its id, a completion
refused under `reject` leaves the order open, one completion can be cancelled, a subassembly made here is
consumed by its parent."""

from __future__ import annotations

from decimal import Decimal

import pytest

from support.flows import Flows
from support.records import backflush, broker_args
from support.stack import eventually

from backflush_shared.contracts import master_data as md

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def test_a_refused_order_can_be_sent_again_corrected_under_the_same_id(flows: Flows) -> None:
    """An order for an item nobody defined is refused by the manufacturer and shown rejected by the distributor;
    the refusal leaves no production order behind, so the corrected order, placed again under the same id, is
    forwarded and released."""
    await flows.place("FIX-1", flow="post", item="CHAIR-ERGOO", quantity="2")
    rejected = await flows.wait_state("FIX-1", "rejected")
    assert "unknown item CHAIR-ERGOO" in str(rejected["milestones"])
    assert await flows.production_order("FIX-1") is None

    await flows.place("FIX-1", flow="post", item="CHAIR-ERGO", quantity="2")
    await flows.wait_production("FIX-1", "released")
    await flows.wait_state("FIX-1", "forwarded", waiting_for="production")


async def test_a_two_level_make_takes_the_subassembly_from_a_receipt_never_from_another_orders_goods(
        flows: Flows) -> None:
    """A subassembly order makes 30 SEAT-ASSY for its holder: they are its finished goods (FG), turned over to the
    warehouse, never flushed by another order. The chair order's completion of 50 finds the 40 purchased seats and
    parks; 10 seats received at the supply location let it post: 50 consumed, the made lot untouched."""
    await flows.place("SUB-1", flow="post", item="SEAT-ASSY", quantity="30")
    await flows.wait_production("SUB-1", "released")
    await flows.complete("SUB-1", "30")
    await flows.wait_production("SUB-1", "completed")

    await flows.place("TOP-1", flow="post", item="CHAIR-ERGO", quantity="50")
    await flows.wait_production("TOP-1", "released")
    await flows.complete("TOP-1", "50")
    await flows.wait_production("TOP-1", "parked")
    await flows.receive("SEAT-ASSY", "SA-BOOKED", "10")
    await flows.wait_production("TOP-1", "completed")
    assert (await flows.consumed_by("TOP-1"))["SEAT-ASSY"] == 50
    assert [p["status"] for p in await flows.parked()] == ["posted"]

    async def sub_lot_whole() -> bool:  # the whole lot reached the warehouse for its holder, nothing of it flushed
        return sum((Decimal(str(u["quantity"])) for u in await flows.warehouse_units("SUB-1")), Decimal(0)) == 30
    await eventually(sub_lot_whole, what="the subassembly order's whole lot at the warehouse", stack=flows.stack)


async def test_under_reject_a_refused_completion_is_shown_by_the_distributor_and_the_order_stays_open(
        flows: Flows) -> None:
    """SEAT-ASSY is `reject`; 40 are in stock. After 10 chairs, a completion of 40 finds 30 seats: the manufacturer
    refuses that completion (not the order) and the distributor shows it; the next completion, of 30, posts."""
    await flows.publish(md.ItemDefined(item="SEAT-ASSY", unit="pcs", decimals=0, negative_stock_policy="reject"))
    await flows.place("REJ-1", flow="post", item="CHAIR-ERGO", quantity="50")
    await flows.wait_production("REJ-1", "released")
    await flows.complete("REJ-1", "10")
    await flows.wait_state("REJ-1", "in-production", waiting_for="completion of the remaining 40")
    await flows.complete("REJ-1", "40")
    await flows.wait_state("REJ-1", "in-production", waiting_for="completion of the remaining 40 (last completion "
                                                                 "refused: 40, insufficient-component-stock)")
    assert "backflush.completion.refused" in await flows.history("REJ-1")
    await flows.complete("REJ-1", "30")
    await flows.wait_state("REJ-1", "in-production", waiting_for="completion of the remaining 10")


async def test_one_completion_reported_by_mistake_is_cancelled_from_the_command_line(flows: Flows) -> None:
    """10 chairs: completions of 4, then 3 by mistake. `backflush complete cancel CAN-1-C7` reverses the 3: its
    castors go back (22 consumed, as after the 4), its lot leaves consignment storage, the distributor waits for
    6 more; the next completion, of 6, finishes the order, which ships and is signed for."""
    await flows.place("CAN-1", flow="post", quantity="10")
    await flows.wait_production("CAN-1", "released")
    await flows.complete("CAN-1", "4")
    await flows.wait_state("CAN-1", "in-production", waiting_for="completion of the remaining 6")
    await flows.complete("CAN-1", "3")
    await flows.wait_state("CAN-1", "in-production", waiting_for="completion of the remaining 3")

    async def stored(count: int) -> bool:
        return len([u for u in await flows.warehouse_units("CAN-1") if u["status"] == "stored"]) == count
    await eventually(lambda: stored(2), what="both lots in consignment", stack=flows.stack)

    result = backflush("complete", "cancel", "CAN-1-C7", "--reason", "reported twice", *broker_args(flows.stack))
    assert result.returncode == 0, result.stderr
    assert "cancellation of completion CAN-1-C7 of CAN-1 requested" in result.stdout
    await flows.wait_state("CAN-1", "in-production", waiting_for="completion of the remaining 6")
    assert (await flows.consumed_by("CAN-1"))["CASTOR-50"] == 22  # 4 x 1.02 x 5.15 = 21.012, up to 22
    await eventually(lambda: stored(1), what="the cancelled lot out of consignment", stack=flows.stack)
    assert "backflush.completion.cancelled" in await flows.history("CAN-1")

    await flows.complete("CAN-1", "6")
    await flows.wait_state("CAN-1", "shipped", waiting_for="signature")
    assert (await flows.consumed_by("CAN-1"))["CASTOR-50"] == 53  # 10 x 1.02 x 5.15 = 52.53, up to 53
