"""An advisory lock a transaction believes it holds, it holds: PostgreSQL releases a transaction-level advisory
lock taken inside a savepoint when that savepoint rolls back (a refused event), so the events after it in the
batch must take it again, or another instance can change the same stock in between."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backflush_shared.persistence.database import Database
from backflush_shared.persistence.locks import advisory_key, lock_for_transaction

pytestmark = pytest.mark.postgres


class Refused(Exception):
    pass


async def taken_by_another_session(url: str, name: str) -> bool:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            got = (await connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                            {"key": advisory_key(name)})).scalar_one()
            await connection.rollback()
            return not got
    finally:
        await engine.dispose()


async def test_a_lock_taken_in_a_savepoint_that_rolled_back_is_taken_again(empty_database: str) -> None:
    database = Database(empty_database)
    try:
        async with database.transaction() as session:
            with pytest.raises(Refused):
                async with session.begin_nested():
                    await lock_for_transaction(session, "manufacturer:stock")
                    raise Refused  # the event is refused: its savepoint rolls back, and with it the lock
            await lock_for_transaction(session, "manufacturer:stock")  # the next event of the batch
            assert await taken_by_another_session(empty_database, "manufacturer:stock")
    finally:
        await database.close()


async def test_a_lock_taken_before_the_savepoints_is_held_through_them(empty_database: str) -> None:
    database = Database(empty_database)
    try:
        async with database.transaction() as session:
            await lock_for_transaction(session, "manufacturer:stock")
            with pytest.raises(Refused):
                async with session.begin_nested():
                    await lock_for_transaction(session, "manufacturer:stock")
                    raise Refused
            assert await taken_by_another_session(empty_database, "manufacturer:stock")
    finally:
        await database.close()
