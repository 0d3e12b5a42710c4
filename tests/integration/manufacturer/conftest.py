"""The manufacturer's database, on both backends: a SQLite file, and PostgreSQL (marked `postgres`).

Every test gets a database of its own, migrated to the newest schema by Alembic: a fresh SQLite file, or a fresh
PostgreSQL database created on the run's one server (so the server starts once, and no test sees another's rows).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from backflush_manufacturer.app import SERVICE
from backflush_shared.persistence.database import Database
from backflush_shared.persistence.migrations import upgrade_to_head_async


async def _admin(server_url: str, statement: str) -> None:
    # CREATE / DROP DATABASE cannot run inside a transaction block
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A migrated, empty manufacturer database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('manufacturer') / 'manufacturer.db'}"
        await upgrade_to_head_async(url, SERVICE.migrations)
        yield url
        return
    server_url = request.getfixturevalue("postgres_server")
    name = f"manufacturer_{uuid.uuid4().hex[:12]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        await upgrade_to_head_async(url, SERVICE.migrations)
        yield url
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.close()
