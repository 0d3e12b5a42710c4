"""Engine correctness across the three services (issue 15): a refused order does not block its id, a completion
refused under `reject` leaves the order open, one completion can be cancelled, a subassembly made here is
consumed by its parent."""

from __future__ import annotations

import pytest

from support.flows import Flows

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


async def test_a_two_level_make_consumes_the_subassembly_made_first(flows: Flows) -> None:
    """A subassembly order makes 30 SEAT-ASSY; the chair order's completion of 50 then takes the 40 purchased seats
    first in, and 10 of the lot made here, instead of parking with 40 available."""
    await flows.place("SUB-1", flow="post", item="SEAT-ASSY", quantity="30")
    await flows.wait_production("SUB-1", "released")
    await flows.complete("SUB-1", "30")
    await flows.wait_production("SUB-1", "completed")

    await flows.place("TOP-1", flow="post", item="CHAIR-ERGO", quantity="50")
    await flows.wait_production("TOP-1", "released")
    await flows.complete("TOP-1", "50")
    await flows.wait_production("TOP-1", "completed")
    assert (await flows.consumed_by("TOP-1"))["SEAT-ASSY"] == 50
    assert await flows.parked() == []
