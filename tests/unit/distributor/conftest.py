"""A distributor's real runtime on a SQLite file, without a broker: what its batch processor does to the tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceRuntime
from backflush_shared.settings import ServiceSettings

from backflush_distributor.app import SERVICE as DISTRIBUTOR


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ServiceRuntime]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'distributor.db'}"
    await upgrade_to_head_async(url, DISTRIBUTOR.migrations)
    runtime = ServiceRuntime.create(DISTRIBUTOR, ServiceSettings(service="distributor", database_url=url,
                                                                 bootstrap_servers="127.0.0.1:9"))
    try:
        yield runtime
    finally:
        await runtime.database.close()
