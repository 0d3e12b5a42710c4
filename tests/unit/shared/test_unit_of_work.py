"""The unit of work: what it buffers is written when it commits, what a refused event buffered is dropped, what it
kept is forgotten when a savepoint rolls back, and its commit actions run only after a real commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import create_async_engine

from backflush_shared.contracts.topics import TopicNames
from backflush_shared.messaging.codec import EncodedRecord
from backflush_shared.persistence.database import Database
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.persistence.outbox import Outbox
from backflush_shared.unit_of_work import UnitOfWork, unit_of_work
from backflush_warehouse.app import SERVICE as WAREHOUSE

history = Table("history", MetaData(), Column("id", Integer, primary_key=True), Column("note", String(40)))


class Refused(Exception):
    pass


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'warehouse.db'}"
    await upgrade_to_head_async(url, WAREHOUSE.migrations)  # an outbox table to write to
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(history.metadata.create_all)
    await engine.dispose()
    database = Database(url)
    yield database
    await database.close()


def outbox() -> Outbox:
    return Outbox(WAREHOUSE.outbox_table, TopicNames(""), source="/backflush/warehouse")


def record(n: int) -> EncodedRecord:
    return EncodedRecord("t", b"k", f"v{n}".encode(), [("ce_id", f"id-{n}".encode())])


async def notes(database: Database) -> list[str]:
    async with database.reading() as session:
        return list((await session.execute(select(history.c.note).order_by(history.c.id))).scalars())


async def outbox_values(database: Database) -> list[bytes]:
    table = WAREHOUSE.outbox_table
    async with database.reading() as session:
        return list((await session.execute(select(table.c.value).order_by(table.c.id))).scalars())


async def test_rows_and_records_are_written_at_commit_and_a_refused_events_are_dropped(database: Database) -> None:
    async with unit_of_work(database, outbox()) as uow:
        assert uow.outgoing is not None
        uow.insert_at_commit(history, {"note": "first"})
        await uow.outgoing.add(record(1))
        before = uow.mark()
        uow.insert_at_commit(history, {"note": "refused"})
        await uow.outgoing.add(record(2))
        uow.discard_after(before)  # what the processor does for a refused event
        uow.insert_at_commit(history, {"note": "third"})
        await uow.outgoing.add(record(3))
        assert await notes(database) == [], "nothing is written before the commit"
    assert await notes(database) == ["first", "third"]
    assert await outbox_values(database) == [b"v1", b"v3"]


async def test_a_savepoint_that_rolls_back_makes_the_unit_of_work_forget_what_it_kept(database: Database) -> None:
    ran: list[str] = []
    async with unit_of_work(database) as uow:
        uow.caches["kept"] = 1
        with pytest.raises(Refused):
            async with uow.savepoint():
                uow.after_commit("adopt", lambda _uow: ran.append("adopted what the refused event kept"))
                raise Refused
        assert uow.caches == {}
    assert ran == []


async def test_commit_actions_run_after_the_commit_and_never_after_a_rollback(database: Database) -> None:
    ran: list[str] = []

    async def before(uow: UnitOfWork) -> None:
        uow.insert_at_commit(history, {"note": "written by the before-commit action"})

    with pytest.raises(Refused):
        async with unit_of_work(database) as uow:
            uow.before_commit("write", before)
            uow.after_commit("adopt", lambda _uow: ran.append("rolled back"))
            raise Refused
    async with unit_of_work(database) as uow:
        uow.before_commit("write", before)
        uow.after_commit("adopt", lambda _uow: ran.append("committed"))
    assert ran == ["committed"]
    assert await notes(database) == ["written by the before-commit action"]
