"""Fresh PostgreSQL databases, one per test and service, on the run's one throw-away server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceDefinition

FreshDatabase = Callable[[ServiceDefinition], Awaitable[str]]


async def _admin(server_url: str, statement: str) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")  # CREATE DATABASE needs no transaction
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def create_database(server_url: str, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture
async def empty_database(postgres_server: str) -> AsyncIterator[str]:
    """An empty database (no schema yet)."""
    url = await create_database(postgres_server, "empty")
    yield url
    await _admin(postgres_server, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@pytest.fixture
async def fresh_database(postgres_server: str) -> AsyncIterator[FreshDatabase]:
    """Creates a database migrated to a service's newest schema; dropped after the test."""
    created: list[str] = []

    async def create(service: ServiceDefinition) -> str:
        url = await create_database(postgres_server, service.name)
        created.append(make_url(url).database or "")
        await upgrade_to_head_async(url, service.migrations)
        return url

    yield create
    for name in created:
        await _admin(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
