"""Post-product: flush at completion (partially), consignment stock, final order, signature, ownership."""

from __future__ import annotations

from decimal import Decimal

import pytest

from support.flows import Flows
from support.stack import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def test_partial_completions_flush_exactly_what_one_completion_would_and_end_signed_for(flows: Flows) -> None:
    """20 CHAIR-ERGO completed as 8 + 7 + 5. Release flushes the pre lines for 20 (20.4 kits: 21 bases, 21 gas
    lifts). Each completion flushes the rounded cumulative requirement minus what was flushed before, so castors
    go 8.16 x 5.15 = 42.024 -> 43, then 15 x 1.02 x 5.15 = 78.795 -> 79 (36 more), then 20.4 x 5.15 = 105.06
    -> 106 (27 more): 43 + 36 + 27 = 106, exactly the single flush of 20. Screws: 20 x 8.4 + 20.4 x 4 = 249.6
    -> 250. Each completion turns its lot over to the warehouse as consignment stock owned by the manufacturer;
    once all 20 are stored the distributor places the final order, the warehouse ships, and the holder signs."""
    await flows.place("POST-1", flow="post", quantity="20", holder="Bluebird Hotels")
    await flows.wait_state("POST-1", "forwarded", waiting_for="production")
    await flows.wait_production("POST-1", "released")

    await flows.complete("POST-1", "8")
    await flows.wait_state("POST-1", "in-production", waiting_for="completion of the remaining 12")
    assert (await flows.consumed_by("POST-1"))["CASTOR-50"] == 43
    await flows.complete("POST-1", "7")
    await flows.wait_state("POST-1", "in-production", waiting_for="completion of the remaining 5")
    assert (await flows.consumed_by("POST-1"))["CASTOR-50"] == 79
    await flows.complete("POST-1", "5")

    await flows.wait_state("POST-1", "shipped", waiting_for="signature")
    assert await flows.consumed_by("POST-1") == {
        "BASE-STAR-5": Decimal(21), "GAS-LIFT-100": Decimal(21), "CASTOR-50": Decimal(106),
        "SCREW-M6": Decimal(250), "SEAT-ASSY": Decimal(20), "BACKREST-MESH": Decimal(20),
        "ARMREST-PAIR": Decimal(20),
    }
    units = await flows.warehouse_units("POST-1")
    assert sorted((u["lot"], u["quantity"], u["kind"]) for u in units) == [
        ("POST-1-C15", Decimal(7), "consignment"),
        ("POST-1-C20", Decimal(5), "consignment"),
        ("POST-1-C8", Decimal(8), "consignment"),
    ]
    assert {u["owner"] for u in units} == {"manufacturer"} and {u["status"] for u in units} == {"shipped"}

    await flows.sign("POST-1", by="R. Bluebird")
    order = await flows.wait_state("POST-1", "closed")
    assert order["waiting_for"] is None
    assert await flows.units_by_owner() == {("Bluebird Hotels", "delivered"): Decimal(20)}
    await flows.wait_production("POST-1", "delivered")  # the manufacturer is told on its own schedule
    history = await flows.history("POST-1")
    assert history.count("backflush.completion.production-completed") == 3
    assert "backflush.completion.goods-signed-for" in history and "backflush.completion.order-closed" in history


async def test_cancelling_midway_reverses_every_flush_and_releases_consignment_storage(flows: Flows) -> None:
    """After release and one completion of 4 out of 10, the holder cancels: the manufacturer posts compensating
    movements (nothing deleted), so every component balance is back where it started; the warehouse releases
    the 4 stored units."""
    before = {item: await flows.on_hand(item) for item in ("CASTOR-50", "SCREW-M6", "BASE-STAR-5", "SEAT-ASSY")}
    await flows.place("POST-X", flow="post", quantity="10")
    await flows.wait_production("POST-X", "released")
    await flows.complete("POST-X", "4")
    await flows.wait_state("POST-X", "in-production")
    async def stored() -> bool:
        return len(await flows.warehouse_units("POST-X")) == 1

    await eventually(stored, what="4 units in consignment", stack=flows.stack)
    assert (await flows.consumed_by("POST-X"))["CASTOR-50"] == 22  # 4 x 1.02 x 5 x 1.03 = 21.012, up to 22

    await flows.cancel("POST-X", reason="project postponed")
    order = await flows.wait_state("POST-X", "cancelled")
    assert order["waiting_for"] is None


    async def reversed_() -> bool:
        return await flows.consumed_by("POST-X") == {}
    await eventually(reversed_, what="the flushes of POST-X reversed", stack=flows.stack)
    assert {item: await flows.on_hand(item) for item in before} == before

    async def released() -> bool:
        return [u["status"] for u in await flows.warehouse_units("POST-X")] == ["released"]
    await eventually(released, what="consignment stock of POST-X released", stack=flows.stack)
