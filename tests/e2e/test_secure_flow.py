"""The three services as processes on a broker with SASL_SSL and ACLs, each authenticated as its own principal;
orders, signatures, completions and master data come from the principals of the holders, the shop floor and the
planner, each allowed on its own intake only."""

from __future__ import annotations

import pytest

from support.flows import Flows

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def test_orders_of_both_flows_close_with_every_service_on_sasl_ssl_and_acls(secure_flows: Flows) -> None:
    await secure_flows.place("SEC-PRE-1", flow="pre", quantity="2")
    await secure_flows.place("SEC-POST-1", flow="post", quantity="3")
    order = await secure_flows.wait_state("SEC-PRE-1", "closed")
    assert order["waiting_for"] is None
    production = await secure_flows.production_order("SEC-PRE-1")
    assert production is not None and production["status"] == "allocated"

    await secure_flows.wait_production("SEC-POST-1", "released")
    await secure_flows.complete("SEC-POST-1", "3")
    await secure_flows.wait_state("SEC-POST-1", "shipped")
    await secure_flows.sign("SEC-POST-1", by="J. Doe")
    closed = await secure_flows.wait_state("SEC-POST-1", "closed")
    assert closed["waiting_for"] is None
    for name, service in secure_flows.stack.processes.items():
        log = service.log_path.read_text(errors="replace")
        assert "Traceback" not in log, f"{name}:\n{service.log_tail()}"
        assert "not authorized" not in log.lower(), f"{name}:\n{service.log_tail()}"
        assert secure_flows.stack.processes[name].env["BACKFLUSH_SASL_PASSWORD"] not in log
