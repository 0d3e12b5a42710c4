"""End-to-end fixtures: the three services as separate processes on the session's real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backflush_shared.local_stack import LocalStack
from support.broker import Broker
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
