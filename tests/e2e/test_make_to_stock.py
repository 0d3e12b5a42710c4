"""A two-level make across the three services (issue 15, defect 5): a make-to-stock order makes a subassembly for
the manufacturer's own stock, and the parent's customer order consumes that very lot."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from support.flows import Flows
from support.records import backflush, broker_args, database_args, wait_logged
from support.stack import eventually, read_db

from backflush_shared.audit import audit
from backflush_shared.contracts import master_data as md

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

#: A desk whose leg set is a stocked subassembly made here, and which no supplier delivers.
DESK_CATALOGUE = [
    md.ItemDefined(item="DESK-1", unit="pcs", decimals=0, description="Desk"),
    md.ItemDefined(item="LEG-SET", unit="pcs", decimals=0, description="Leg set (stocked subassembly, made here)"),
    md.ItemDefined(item="TUBE-40", unit="pcs", decimals=0, description="Steel tube"),
    md.ItemDefined(item="BOLT-M8", unit="pcs", decimals=0, description="Bolt M8"),
    md.ItemDefined(item="TOP-PANEL", unit="pcs", decimals=0, description="Desk top"),
    md.BomDefined(parent="LEG-SET", lines=[
        md.BomLineDefinition(component="TUBE-40", quantity_per=Decimal(4), flush="pre"),
        md.BomLineDefinition(component="BOLT-M8", quantity_per=Decimal(8), flush="post")]),
    md.BomDefined(parent="DESK-1", lines=[
        md.BomLineDefinition(component="LEG-SET", quantity_per=Decimal(1), flush="post"),
        md.BomLineDefinition(component="TOP-PANEL", quantity_per=Decimal(1), flush="post")]),
    md.ComponentsReceived(receipt_id="R-TUBE", item="TUBE-40", lot="TB-1", quantity=Decimal(100)),
    md.ComponentsReceived(receipt_id="R-BOLT", item="BOLT-M8", lot="BT-1", quantity=Decimal(500)),
    md.ComponentsReceived(receipt_id="R-TOP", item="TOP-PANEL", lot="TP-1", quantity=Decimal(50)),
]


async def _genealogy(flows: Flows, into_lot: str) -> list[tuple[Any, ...]]:
    async def load(session: Any) -> list[tuple[Any, ...]]:
        result = await session.execute(text(
            "SELECT item, lot, location, quantity FROM ledger_movements WHERE into_lot = :lot ORDER BY id"),
            {"lot": into_lot})
        return [tuple(row) for row in result.all()]
    return await read_db(flows.stack.database_url("manufacturer"), load)


async def test_a_subassembly_made_to_stock_is_consumed_by_its_parents_customer_order(flows: Flows) -> None:
    """`backflush make-to-stock MTS-LEG-1 LEG-SET 6`, its completion of 6 reported with `--stock`: the lot
    MTS-LEG-1-C6 is received at MAIN and the order closes, with nothing at the distributor or the warehouse. The
    desk order DESK-A of 5 then flushes 5 of that lot at its completion, ships, is signed for and closes; the
    audit is clean."""
    await flows.publish(*DESK_CATALOGUE)
    result = backflush("make-to-stock", "MTS-LEG-1", "LEG-SET", "6", "--due", "2030-01-31", *broker_args(flows.stack))
    assert result.returncode == 0, result.stderr
    assert "make-to-stock order MTS-LEG-1 for 6 LEG-SET placed" in result.stdout
    await flows.wait_production("MTS-LEG-1", "released")
    result = backflush("complete", "MTS-LEG-1", "--qty", "6", "--stock", *broker_args(flows.stack))
    assert result.returncode == 0, result.stderr
    await flows.wait_production("MTS-LEG-1", "closed")
    assert await flows.on_hand("LEG-SET") == 6
    await wait_logged(flows.stack, "distributor", "event of a make-to-stock production order: not a customer order, "
                                                  "ignored", order_id="MTS-LEG-1")
    assert await flows.order("MTS-LEG-1") is None

    await flows.place("DESK-A", flow="post", item="DESK-1", quantity="5")
    await flows.wait_production("DESK-A", "released")
    await flows.complete("DESK-A", "5")
    await flows.wait_state("DESK-A", "shipped", waiting_for="signature")
    assert await _genealogy(flows, "DESK-A-C5") == [
        ("LEG-SET", "MTS-LEG-1-C6", "MAIN", "-5"), ("TOP-PANEL", "TP-1", "MAIN", "-5")]
    await flows.sign("DESK-A", by="D. Esker")
    await flows.wait_state("DESK-A", "closed")
    assert await flows.on_hand("LEG-SET") == 1

    listed = backflush("production-orders", "--database", flows.stack.database_url("manufacturer"))
    assert listed.returncode == 0, listed.stderr
    assert any("MTS-LEG-1" in line and "stock" in line and "closed" in line for line in listed.stdout.splitlines())

    urls = {service: flows.stack.database_url(service) for service in ("manufacturer", "distributor", "warehouse")}

    async def clean() -> list[Any] | None:
        findings = await audit(urls)
        return findings if all(f.ok for f in findings) else None
    await eventually(clean, what="a clean audit", stack=flows.stack)
    result = backflush("audit", *database_args(flows.stack))
    assert result.returncode == 0, result.stdout + result.stderr
