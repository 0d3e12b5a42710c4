"""The run's one PostgreSQL server for integration tests (started on first use; see support/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.postgres import provide_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of the run's PostgreSQL database, from which each test's own databases are created."""
    with provide_postgres() as url:
        yield url
