"""An outside inspector's result, and following orders from the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import master_data as md
from support.flows import Flows

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def test_an_order_waits_for_an_outside_inspector_and_goes_on_when_the_result_arrives(flows: Flows) -> None:
    """With the inspection plan `external`, a pre-product order waits for the quality check; the inspector's
    QualityInspectionReported (on the shop floor's intake) releases it, and the manufacturer records the result."""
    await flows.publish(md.InspectionPlanDefined(item="CHAIR-ERGO", rule="external", remark="TUV audit"))
    await flows.place("EXT-1", flow="pre", quantity="2")
    await flows.wait_production("EXT-1", "awaiting-inspection")
    order = await flows.wait_state("EXT-1", "forwarded", waiting_for="quality check")
    assert order["waiting_since"] is not None
    assert await flows.consumed_by("EXT-1") == {}

    await flows.publish(c.QualityInspectionReported(order_id="EXT-1", item="CHAIR-ERGO", passed=True,
                                                    inspected_by="TUV Rheinland", remark="lot sample ok"))
    await flows.wait_state("EXT-1", "closed")
    history = await flows.history("EXT-1")
    assert history.count(c.QualityInspectionRecorded.event_type) == 1  # the manufacturer's word, once
    assert (await flows.consumed_by("EXT-1"))["SEAT-ASSY"] == 2


def backflush(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backflush_shared", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "200"})


async def test_orders_and_order_status_show_state_what_it_waits_for_and_the_history(flows: Flows) -> None:
    await flows.place("CLI-1", flow="post", quantity="3", holder="Erin Estates")
    await flows.wait_state("CLI-1", "forwarded", waiting_for="production")
    database = flows.stack.database_url("distributor")

    listing = backflush("orders", "--database", database)
    assert listing.returncode == 0, listing.stderr
    assert "CLI-1" in listing.stdout and "Erin Estates" in listing.stdout and "production" in listing.stdout

    status = backflush("order", "status", "CLI-1", "--database", database)
    assert status.returncode == 0, status.stderr
    assert "state: forwarded" in status.stdout and "waiting for: production" in status.stdout
    assert "order.placed" in status.stdout and "order.forwarded" in status.stdout
    assert "distributor" in status.stdout

    missing = backflush("order", "status", "NOPE", "--database", database)
    assert missing.returncode == 1 and "no order NOPE" in missing.stdout


async def test_the_readme_command_line_places_an_order_that_goes_through_the_flow(flows: Flows) -> None:
    stack = flows.stack
    placed = backflush("order", "place", "--item", "CHAIR-ERGO", "--qty", "2", "--flow", "pre",
                       "--holder", "Acme Offices", "--id", "CLI-PLACE-1",
                       "--bootstrap-servers", stack.bootstrap_servers, "--topic-prefix", stack.topic_prefix)
    assert placed.returncode == 0, placed.stderr
    order = await flows.wait_state("CLI-PLACE-1", "closed")
    assert order["quantity"] == 2 and order["order_holder"] == "Acme Offices"
