"""Pre-product: quality check before sale, flush at release, racked at the distribution center, allocated."""

from __future__ import annotations

from decimal import Decimal

import pytest

from support.flows import Flows
from support.stack import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

# Worked out by hand from services/manufacturer/sample_data for 10 CHAIR-ERGO (BASE-KIT is a phantom with 2 %
# scrap, so 10.2 kits): BASE-STAR-5 10.2 -> 11 and GAS-LIFT-100 10.2 -> 11 (pre, at release);
# CASTOR-50 10.2 x 5 x 1.03 = 52.53 -> 53; SCREW-M6 10 x 8 x 1.05 + 10.2 x 4 = 84 + 40.8 = 124.8 -> 125;
# SEAT-ASSY (stocked, consumed as itself), BACKREST-MESH, ARMREST-PAIR 10 each (post, at the completion that
# follows release at once). Manual lines (CARTON-CH, GREASE-LI) are never flushed automatically.
TEN_CHAIRS = {
    "BASE-STAR-5": Decimal(11),
    "GAS-LIFT-100": Decimal(11),
    "CASTOR-50": Decimal(53),
    "SCREW-M6": Decimal(125),
    "SEAT-ASSY": Decimal(10),
    "BACKREST-MESH": Decimal(10),
    "ARMREST-PAIR": Decimal(10),
}


async def test_a_pre_product_order_is_flushed_racked_allocated_and_closed(flows: Flows) -> None:
    await flows.place("PRE-1", flow="pre", quantity="10")
    order = await flows.wait_state("PRE-1", "closed")
    assert order["waiting_for"] is None

    assert await flows.consumed_by("PRE-1") == TEN_CHAIRS
    assert await flows.on_hand("CASTOR-50") == 650 - 53
    # first in, first out: screws come from the older lot SC-0901 (2000) first
    production = await flows.production_order("PRE-1")
    assert production is not None and production["status"] == "allocated"

    racked = await flows.warehouse_units("PRE-1")
    assert [(u["location"], u["quantity"], u["owner"], u["status"], u["kind"]) for u in racked] == [
        ("DC-A1", Decimal(10), "manufacturer", "stored", "rack")
    ]
    # events of one order travel on three topics: the order may close before the last of them is filed, and
    # only their set is fixed
    async def filed() -> list[str] | None:
        history = await flows.history("PRE-1")
        return history if len(history) >= 11 else None
    history = await eventually(filed, what="the whole history of PRE-1", stack=flows.stack)
    assert sorted(history) == sorted([
        "backflush.order.placed", "backflush.order.forwarded", "backflush.completion.quality-inspected",
        "backflush.completion.components-backflushed", "backflush.completion.components-backflushed",
        "backflush.inventory.pre-sale-details-forwarded", "backflush.inventory.directed-to-racks",
        "backflush.inventory.racked", "backflush.completion.inventory-check-returned",
        "backflush.completion.goods-allocated", "backflush.completion.order-closed",
    ])
    assert history[0] == "backflush.order.placed"
    states = [state for state, _waiting in await flows.transitions("PRE-1")]
    assert states[0] == "forwarded" and states[-1] == "closed"


async def test_a_failed_quality_check_rejects_the_order_with_its_reason_and_flushes_nothing(flows: Flows) -> None:
    """CHAIR-TASK's inspection plan fails it (EN 1021): rejected before release, so no component moves."""
    await flows.place("PRE-QC", flow="pre", item="CHAIR-TASK", quantity="5")
    await flows.wait_state("PRE-QC", "rejected")
    production = await flows.production_order("PRE-QC")
    assert production is not None and production["status"] == "quality-failed"
    assert "EN 1021" in production["reason"]
    assert await flows.consumed_by("PRE-QC") == {}
    assert await flows.warehouse_units("PRE-QC") == []


async def test_an_order_short_of_components_parks_and_completes_after_a_receipt(flows: Flows) -> None:
    """45 chairs need 45 SEAT-ASSY at completion; 40 are in stock, so the completion flush parks whole (the
    release flush already took 46 bases and gas lifts: 45.9 -> 46). A receipt of 10 seat assemblies releases it:
    45 taken first in, first out (40 from SA-2411-01, 5 from the new lot)."""
    await flows.place("PRE-SHORT", flow="pre", quantity="45")
    waiting = await flows.wait_state("PRE-SHORT", "waiting-for-components", waiting_for="component stock")
    assert waiting["waiting_since"] is not None
    parked = await flows.parked()
    assert [(p["order_id"], p["step"], p["status"]) for p in parked] == [("PRE-SHORT", "completion", "waiting")]
    assert "SEAT-ASSY: needs 45 pcs, 40 available" in parked[0]["reason"]
    assert (await flows.consumed_by("PRE-SHORT")).get("SEAT-ASSY") is None

    await flows.receive("SEAT-ASSY", "SA-2412-02", "10")
    await flows.wait_state("PRE-SHORT", "closed")
    consumed = await flows.consumed_by("PRE-SHORT")
    assert consumed["SEAT-ASSY"] == 45 and consumed["BASE-STAR-5"] == 46
    assert await flows.on_hand("SEAT-ASSY") == 40 + 10 - 45
    assert [p["status"] for p in await flows.parked()] == ["posted"]
