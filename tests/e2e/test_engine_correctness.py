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
