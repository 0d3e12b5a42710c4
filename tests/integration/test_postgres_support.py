"""The PostgreSQL that tests get from `support.postgres` is real, reachable through SQLAlchemy + asyncpg, and gone
afterwards."""

from __future__ import annotations

import os
import socket

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from support.postgres import URL_ENV, provide_postgres

pytestmark = pytest.mark.postgres


async def _query(url: str, sql: str) -> object:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(sql))).scalar_one()
    finally:
        await engine.dispose()


async def test_select_version_through_sqlalchemy_and_asyncpg() -> None:
    with provide_postgres() as url:
        version = await _query(url, "SELECT version()")
        database = await _query(url, "SELECT current_database()")

    assert isinstance(version, str) and version.startswith("PostgreSQL "), version
    assert make_url(url).drivername == "postgresql+asyncpg"
    if not os.environ.get(URL_ENV):
        assert database == "backflush"


@pytest.mark.skipif(bool(os.environ.get(URL_ENV)), reason=f"{URL_ENV} names a server this test does not own")
async def test_own_server_is_stopped_and_deleted_on_exit() -> None:
    with provide_postgres() as url:
        port = make_url(url).port
        assert port is not None
        assert await _query(url, "SELECT 1") == 1

    # The port no longer answers: the server is stopped, not merely forgotten.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.1", port)) != 0
