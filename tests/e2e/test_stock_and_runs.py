"""Repetitive production and selling from stock across the three services on a real broker (issue 17).

A line reports runs of SEAT-ASSY (the sample data, loaded by the `flows` fixture: 120 SEAT-SHELL, 105.5 kg
FOAM-PU, 150 m FABRIC-MESH, 7,000 SCREW-M6 in stock); each run's lot is racked at the warehouse as finished-goods
stock for sale; stock orders are served from it first in, first out, shipped, signed for and closed; the
manufacturer plays no part in them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from support.flows import Flows
from support.records import backflush, database_args
from support.stack import eventually

from backflush_shared.audit import audit

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def _clean_audit(flows: Flows) -> None:
    urls = {service: flows.stack.database_url(service) for service in ("manufacturer", "distributor", "warehouse")}

    async def clean() -> list[Any] | None:
        findings = await audit(urls)
        return findings if all(f.ok for f in findings) else None
    await eventually(clean, what="a clean audit", stack=flows.stack)
    result = backflush("audit", *database_args(flows.stack))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stock-flow allocations never above racked units" in result.stdout


async def _stocked(flows: Flows, run_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        return next((lot for lot in await flows.finished_stock() if lot["run_id"] == run_id), None)
    return await eventually(found, what=f"run {run_id} racked for sale", stack=flows.stack)


async def test_a_run_fills_stock_and_a_stock_order_is_served_from_it_signed_for_and_closed(flows: Flows) -> None:
    """Run R-1: 20 SEAT-ASSY, lot SA-R1; stock order SO-S1 for 12 takes 12 of SA-R1, 8 stay free."""
    await flows.report_run("R-1", quantity="20", lot="SA-R1")
    await flows.wait_production("R-1", "stocked")
    assert await flows.consumed_by("R-1") == {"SEAT-SHELL": 21, "FOAM-PU": Decimal("26.25"),
                                               "FABRIC-MESH": Decimal("17.6"), "SCREW-M6": 123}
    await _stocked(flows, "R-1")
    await flows.place_from_stock("SO-S1", quantity="12")
    await flows.wait_state("SO-S1", "shipped", waiting_for="signature")
    assert [(u["lot"], u["quantity"], u["status"]) for u in await flows.warehouse_units("SO-S1")] == [
        ("SA-R1", Decimal(12), "shipped")]
    await flows.sign("SO-S1", by="J. Doe")
    await flows.wait_state("SO-S1", "closed")
    assert [lot["free"] for lot in await flows.finished_stock()] == [Decimal(8)]
    assert await flows.production_order("SO-S1") is None  # the manufacturer plays no part in a stock order
    await _clean_audit(flows)


async def test_a_stock_order_placed_before_the_stock_waits_with_the_reason_and_is_served_when_a_run_arrives(
        flows: Flows) -> None:
    await flows.place_from_stock("SO-S2", quantity="5")
    await flows.wait_state("SO-S2", "waiting-for-stock", waiting_for="finished-goods stock: 5 units needed, 0 free")
    await flows.report_run("R-2", quantity="3")
    await flows.wait_state("SO-S2", "waiting-for-stock", waiting_for="finished-goods stock: 5 units needed, 3 free")
    await flows.report_run("R-3", quantity="4")
    await flows.wait_state("SO-S2", "shipped", waiting_for="signature")
    assert sorted((u["lot"], u["quantity"]) for u in await flows.warehouse_units("SO-S2")) == [
        ("LOT-R-2", Decimal(3)), ("LOT-R-3", Decimal(2))]  # first in, first out by lot
    await flows.sign("SO-S2", by="J. Doe")
    await flows.wait_state("SO-S2", "closed")
    await _clean_audit(flows)


async def test_a_run_reversed_gives_its_components_back_once_the_warehouse_withdrew_its_lot(flows: Flows) -> None:
    shells = await flows.on_hand("SEAT-SHELL")
    await flows.report_run("R-4", quantity="10", lot="SA-R4")
    await flows.wait_production("R-4", "stocked")
    await _stocked(flows, "R-4")
    assert await flows.on_hand("SEAT-SHELL") == shells - 11  # 10 x 1.01 = 10.1 -> 11
    await flows.cancel_run("R-4")
    await flows.wait_production("R-4", "cancelled")
    assert await flows.on_hand("SEAT-SHELL") == shells
    assert [lot["status"] for lot in await flows.finished_stock()] == ["withdrawn"]
    await _clean_audit(flows)


async def test_an_order_allowing_partial_deliveries_is_served_in_parts_and_says_so(flows: Flows) -> None:
    await flows.place_from_stock("SO-P", quantity="5", partial=True)
    await flows.wait_state("SO-P", "waiting-for-stock", waiting_for="finished-goods stock: 5 units needed, 0 free")
    await flows.report_run("R-5", quantity="2")
    await flows.wait_state("SO-P", "shipped", waiting_for="signature (2 of 5 shipped)")
    await flows.sign("SO-P", by="J. Doe")
    await flows.wait_state("SO-P", "waiting-for-stock",
                           waiting_for="finished-goods stock: 3 units needed, 0 free (2 of 5 shipped)")
    await flows.report_run("R-6", quantity="4")
    await flows.wait_state("SO-P", "shipped", waiting_for="signature")
    await flows.sign("SO-P", by="J. Doe")
    await flows.wait_state("SO-P", "closed")
    assert [lot["free"] for lot in await flows.finished_stock()] == [Decimal(0), Decimal(1)]
    await _clean_audit(flows)


async def test_a_run_whose_lot_was_sold_from_stands_and_its_reversal_is_refused_with_the_reason(
        flows: Flows) -> None:
    await flows.report_run("R-7", quantity="10", lot="SA-R7")
    await _stocked(flows, "R-7")
    await flows.place_from_stock("SO-S7", quantity="4")
    await flows.wait_state("SO-S7", "shipped", waiting_for="signature")
    await flows.cancel_run("R-7")

    async def refused() -> dict[str, Any] | None:
        row = await flows.production_order("R-7")
        return row if row and (row["reason"] or "").startswith("reversal refused") else None
    row = await eventually(refused, what="the reversal of R-7 refused", stack=flows.stack)
    assert row["status"] == "stocked"
    assert "4 of its 10 units of lot SA-R7 were allocated and shipped to SO-S7" in row["reason"]
    assert [lot["free"] for lot in await flows.finished_stock()] == [Decimal(6)]
    await _clean_audit(flows)
