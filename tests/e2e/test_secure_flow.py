"""The three services as processes on a broker with SASL_SSL and ACLs, each authenticated as its own principal;
orders, signatures, completions and master data come from the principals of the holders, the shop floor and the
planner, each allowed on its own intake only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backflush_shared.local_kafka import LocalKafka
from backflush_shared.local_stack import SERVICES
from support.broker import SECURE_USERS, SPEAKER_OF
from support.e2e_paths import SAMPLE_DATA
from support.flows import Flows
from support.stack import make_stack

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


@pytest.fixture
async def secure_flows(secure_kafka: LocalKafka, tmp_path: Path) -> AsyncIterator[Flows]:
    stack = make_stack(secure_kafka.bootstrap_servers, tmp_path / "stack",
                       extra_env={name: secure_kafka.client_env(name) for name in SERVICES})
    await secure_kafka.agrant(SECURE_USERS, topic_prefix=stack.topic_prefix)
    stack.start()
    try:
        flows = Flows(stack, security=secure_kafka.security_for("tests"),
                      speakers={writer: secure_kafka.security_for(name) for writer, name in SPEAKER_OF.items()})
        await flows.load_master_data(SAMPLE_DATA)
        yield flows
    finally:
        stack.stop()


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
