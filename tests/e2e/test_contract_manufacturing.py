"""Contract manufacturing across the three services on a real broker (issue 17, part 3).

The sample data (loaded by the `flows` fixture) holds the manufacturer's own stock: GAS-LIFT-100 GL-1003 80,
BASE-STAR-5 BS-1001 60, ... BRAND-A consigns BASE-STAR-5 (its lots BA-1 3 and BA-2 10) and orders 5 CHAIR-TASK
built from them (post flow). Release flushes BASE-KIT 5 x 1.02 = 5.1 kits: BASE-STAR-5 5.1 -> 6 = BA-1 3 + BA-2 3
(BRAND-A's, first in first out, although BS-1001 is older) and GAS-LIFT-100 6 from our own GL-1003, which the
order allows (sold to BRAND-A). BRAND-A's statement: BA-1 received 3, consumed 3, closing 0; BA-2 received 10,
consumed 3, closing 7.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from support.flows import Flows
from support.records import backflush, database_args, records_on
from support.stack import eventually

from backflush_shared.audit import audit
from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

PERIOD = dt.datetime.now(dt.UTC).strftime("%Y-%m")
CONSUMED = "backflush.completion.consigned-components-consumed"
RETURNED = "backflush.completion.consigned-components-returned"


async def consign(flows: Flows, owner: str, item: str, lot: str, quantity: int) -> None:
    await flows.publish(md.ComponentsConsigned(receipt_id=f"{owner}:{lot}", owner=owner, item=item, lot=lot,
                                               quantity=Decimal(quantity)))


async def place_contract_order(flows: Flows, order_id: str, owner: str, *, own_allowed: bool) -> None:
    await flows.publish(o.OrderPlaced(order_id=order_id, order_holder=owner, flow="post", item="CHAIR-TASK",
                                      quantity=Decimal(5), ship_to="1 Brand Road, Springfield",
                                      due_date=dt.date.today() + dt.timedelta(days=14), contract_manufacturing=True,
                                      own_components_allowed=own_allowed))


async def reports(flows: Flows, order_id: str, event_type: str, count: int) -> list[dict[str, Any]]:
    records = await records_on(flows.stack, "completions", key=order_id, event_type=event_type, until=count)
    return [json.loads(record.value or b"{}") for record in records]


def lots(report: dict[str, Any], part: str = "consigned") -> list[tuple[str, str, str]]:
    return [(line["item"], line["lot"], line["quantity"]) for line in report[part]]


async def clean_audit(flows: Flows) -> None:
    urls = {service: flows.stack.database_url(service) for service in ("manufacturer", "distributor", "warehouse")}

    async def clean() -> list[Any] | None:
        findings = await audit(urls)
        return findings if all(f.ok for f in findings) else None
    await eventually(clean, what="a clean audit", stack=flows.stack)
    result = backflush("audit", *database_args(flows.stack))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "owner stock never negative" in result.stdout
    assert "consigned lots consumed only by their owner's orders" in result.stdout


async def test_a_contract_order_consumes_the_owners_lots_reports_them_closes_and_reconciles(flows: Flows) -> None:
    await consign(flows, "BRAND-A", "BASE-STAR-5", "BA-1", 3)
    await consign(flows, "BRAND-A", "BASE-STAR-5", "BA-2", 10)
    await place_contract_order(flows, "CM-1", "BRAND-A", own_allowed=True)
    await flows.wait_production("CM-1", "released")
    [release] = await reports(flows, "CM-1", CONSUMED, 1)
    assert (release["owner"], release["flush_point"]) == ("BRAND-A", "pre")
    assert lots(release) == [("BASE-STAR-5", "BA-1", "3"), ("BASE-STAR-5", "BA-2", "3")]
    assert lots(release, "own") == [("GAS-LIFT-100", "GL-1003", "6")]

    await flows.complete("CM-1", "5")
    await flows.wait_state("CM-1", "shipped", waiting_for="signature")
    _release, completion = await reports(flows, "CM-1", CONSUMED, 2)
    assert completion["flush_point"] == "post" and completion["consigned"] == []  # its post lines are all ours
    await flows.sign("CM-1", by="Brand A receiving")
    await flows.wait_state("CM-1", "closed")
    assert CONSUMED in await flows.history("CM-1")  # the distributor files the reports under the order

    result = backflush("consignment-statement", "BRAND-A", "--period", PERIOD, "--database",
                       flows.stack.database_url("manufacturer"))
    assert result.returncode == 0, result.stdout + result.stderr
    figures = {tuple(line.replace("│", " ").split()) for line in result.stdout.splitlines()}
    assert ("BASE-STAR-5", "BA-1", "0", "3", "3", "0", "0", "pcs") in figures, result.stdout
    assert ("BASE-STAR-5", "BA-2", "0", "10", "3", "0", "7", "pcs") in figures, result.stdout
    assert "reconciled" in result.stdout and "with the ledger's balances" in result.stdout
    stock = backflush("stock", "--item", "BASE-STAR-5", "--database", flows.stack.database_url("manufacturer"))
    rows = {tuple(line.replace("│", " ").split()) for line in stock.stdout.splitlines()}
    assert ("BASE-STAR-5", "MAIN", "BA-2", "7", "0", "7", "pcs", "BRAND-A") in rows, stock.stdout
    assert ("BASE-STAR-5", "MAIN", "BS-1001", "60", "0", "60", "pcs", "own") in rows, stock.stdout
    await clean_audit(flows)


async def test_an_owner_shortage_parks_until_the_owner_consigns_more_and_a_cancellation_gives_it_back(
        flows: Flows) -> None:
    """CM-2 may use BRAND-A's components only: release needs BASE-STAR-5 6 and GAS-LIFT-100 6, BRAND-A holds
    GAS-LIFT-100 GA-1 2 (our own GL-1003 80 is not its): it parks, whatever our 80. GA-2 10 arrives: it posts
    (GA-1 2 + GA-2 4). Cancelled, the 6 go back to GA-1 and GA-2, BRAND-A's."""
    await consign(flows, "BRAND-A", "BASE-STAR-5", "BA-1", 10)
    await consign(flows, "BRAND-A", "GAS-LIFT-100", "GA-1", 2)
    await place_contract_order(flows, "CM-2", "BRAND-A", own_allowed=False)
    parked = await flows.wait_production("CM-2", "parked")
    assert "GAS-LIFT-100: needs 6 pcs, 2 available of BRAND-A's consigned stock" in parked["reason"]
    await consign(flows, "BRAND-A", "GAS-LIFT-100", "GA-2", 10)
    await flows.wait_production("CM-2", "released")
    [release] = await reports(flows, "CM-2", CONSUMED, 1)
    assert lots(release) == [("BASE-STAR-5", "BA-1", "6"), ("GAS-LIFT-100", "GA-1", "2"),
                             ("GAS-LIFT-100", "GA-2", "4")] and release["own"] == []

    await flows.cancel("CM-2")
    await flows.wait_state("CM-2", "cancelled")
    [returned] = await reports(flows, "CM-2", RETURNED, 1)
    assert sorted(lots(returned)) == [("BASE-STAR-5", "BA-1", "6"), ("GAS-LIFT-100", "GA-1", "2"),
                                      ("GAS-LIFT-100", "GA-2", "4")]
    result = backflush("consignment-statement", "BRAND-A", "--period", PERIOD, "--database",
                       flows.stack.database_url("manufacturer"))
    assert result.returncode == 0, result.stdout + result.stderr
    figures = {tuple(line.replace("│", " ").split()) for line in result.stdout.splitlines()}
    assert ("GAS-LIFT-100", "GA-2", "0", "10", "0", "0", "10", "pcs") in figures, result.stdout
    await clean_audit(flows)
