"""End-to-end fixtures: the three services as separate processes on the session's real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backflush_shared.local_kafka import LocalKafka
from backflush_shared.local_stack import SERVICES, LocalStack
from support.broker import SECURE_USERS, SPEAKER_OF, Broker
from support.flows import Flows
from support.stack import make_stack

from support.e2e_paths import SAMPLE_DATA


@pytest.fixture
async def stack(kafka: Broker, tmp_path: Path) -> AsyncIterator[LocalStack]:
    """Fresh services, databases and topics for one test."""
    services = make_stack(kafka.bootstrap_servers, tmp_path / "stack")
    services.start()
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture
async def flows(stack: LocalStack) -> Flows:
    """The stack with the sample master data (office chairs) loaded."""
    flows = Flows(stack)
    await flows.load_master_data(SAMPLE_DATA)
    return flows


@pytest.fixture
async def secure_flows(secure_kafka: LocalKafka, tmp_path: Path) -> AsyncIterator[Flows]:
    """The stack on the secure broker (SASL_SSL, ACLs granted): each service its own principal, and every event
    published by the principal that writes its topic; the sample master data loaded."""
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
