"""The three services as processes on a broker with SASL_SSL, each authenticated as its own principal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backflush_shared.local_kafka import LocalKafka
from backflush_shared.local_stack import SERVICES, LocalStack
from support.e2e_paths import SAMPLE_DATA
from support.flows import Flows
from support.stack import make_stack

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


@pytest.fixture
async def secure_flows(secure_kafka: LocalKafka, tmp_path: Path) -> AsyncIterator[Flows]:
    stack = make_stack(secure_kafka.bootstrap_servers, tmp_path / "stack",
                       extra_env={name: secure_kafka.client_env(name) for name in SERVICES})
    stack.start()
    try:
        flows = Flows(stack, security=secure_kafka.security_for("tests"))
        await flows.load_master_data(SAMPLE_DATA)
        yield flows
    finally:
        stack.stop()


async def test_a_pre_product_order_is_closed_with_every_service_on_sasl_ssl(secure_flows: Flows) -> None:
    await secure_flows.place("SEC-PRE-1", flow="pre", quantity="2")
    order = await secure_flows.wait_state("SEC-PRE-1", "closed")
    assert order["waiting_for"] is None
    production = await secure_flows.production_order("SEC-PRE-1")
    assert production is not None and production["status"] == "allocated"
    for name, service in secure_flows.stack.processes.items():
        log = service.log_path.read_text(errors="replace")
        assert "Traceback" not in log, f"{name}:\n{service.log_tail()}"
        assert secure_flows.stack.processes[name].env["BACKFLUSH_SASL_PASSWORD"] not in log
