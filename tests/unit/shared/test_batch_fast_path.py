"""What the fast path of a batch keeps: the same outcomes as one savepoint per event, without paying for it.

- SQLite statements run on the event loop's own thread (no aiosqlite worker thread and its hand-offs), while a
  writer that finds another connection holding the write lock waits asleep, leaving the loop free.
- A batch runs without savepoints; when a handler refuses an event, that run rolls back and the batch runs again
  with a savepoint per event: the refused event leaves nothing but its dead letter (not even the history rows
  buffered until the commit) and the others apply once.
- Another service's event on a shared topic is ignored by its `ce_type` header without its value being read,
  and still accounted for in `consumed_ranges`. A batch holding only such events opens no transaction: its
  range is written with the next transaction, and until then holds its partition's Kafka commit back.

On the distributor's real processor, inbox and outbox and a SQLite file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.common import RackPlacement
from backflush_shared.contracts.topics import TopicNames
from backflush_shared.errors import BackflushError
from backflush_shared.messaging import processor as processor_module
from backflush_shared.messaging.codec import encode
from backflush_shared.unit_of_work import UnitOfWork
from backflush_shared.messaging.publish import envelope_for, source_for
from backflush_shared.persistence.database import WRITE_OPTION, Database
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceRuntime
from backflush_shared.settings import ServiceSettings

from backflush_distributor.adapters import repository as distributor_repository
from backflush_distributor.adapters.tables import inbox, order_events, order_transitions, orders, outbox
from backflush_distributor.app import SERVICE as DISTRIBUTOR
from backflush_warehouse.app import SERVICE as WAREHOUSE
from support.consumed import Record




def record_of(event: Any, topic: str, partition: int, offset: int) -> Record:
    source = source_for(event, otherwise="/backflush/tests")  # a service topic's events come from its writer
    encoded = encode(event, envelope_for(event, source), topic)
    return Record(topic, partition, offset, encoded.key, encoded.value, encoded.headers)


def placed(order_id: str, offset: int) -> Record:
    return record_of(o.OrderPlaced(order_id=order_id, order_holder="Fast Ltd", flow="pre", item="CHAIR-ERGO",
                                   quantity=Decimal(1), ship_to="1 Fast Road", due_date=dt.date(2030, 1, 1)),
                     TopicNames()(o.OrderPlaced.topic), 0, offset)


class NotToday(BackflushError):
    """A refusal the test's handler raises after the real handler wrote its rows and emitted."""


@dataclass
class Setup:
    runtime: ServiceRuntime
    calls: dict[str, int]

    async def rows(self, table: Any) -> list[dict[str, Any]]:
        async with self.runtime.database.reading() as session:
            return [dict(r) for r in (await session.execute(select(table))).mappings().all()]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'distributor.db'}"
    await upgrade_to_head_async(url, DISTRIBUTOR.migrations)
    settings = ServiceSettings(service="distributor", database_url=url, bootstrap_servers="127.0.0.1:9")
    runtime = ServiceRuntime.create(DISTRIBUTOR, settings)
    assert runtime.processor is not None
    calls: dict[str, int] = {}
    apply_order = runtime.processor.handlers[o.OrderPlaced]

    async def refusing_bad(uow: UnitOfWork, event: o.OrderPlaced) -> None:
        order_id = event.order_id
        calls[order_id] = calls.get(order_id, 0) + 1
        await apply_order(uow, event)  # the order row, its history and an OrderForwarded in the outbox buffer ...
        if order_id.startswith("BAD"):
            raise NotToday(f"{order_id} is refused after its handler wrote")  # ... all of which must go

    runtime.processor.handlers[o.OrderPlaced] = refusing_bad
    try:
        yield Setup(runtime, calls)
    finally:
        await runtime.database.close()


async def test_sqlite_statements_run_on_the_event_loops_own_thread(tmp_path: Path) -> None:
    # by identity, not by count: a thread an earlier test left may end meanwhile and hide a new one
    threads_before = {thread.ident for thread in threading.enumerate()}
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}")
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (a INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
        async with database.reading() as session:
            assert (await session.execute(text("SELECT count(*) FROM t"))).scalar() == 1
            started = [t.name for t in threading.enumerate() if t.ident not in threads_before]
            assert started == []  # no connection thread was started
    finally:
        await database.close()


async def test_sqlite_transactions_reuse_one_writer_connection_and_each_starts_with_a_fresh_session(
    tmp_path: Path,
) -> None:
    """A pool checkout and a session per transaction cost about a third of a batch of one event's BEGIN, INSERT
    and COMMIT; the writer connection is held instead. A failed transaction rolls back and the next one works;
    what a handler kept in `session.info` does not outlive its transaction."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}")
    assert database.sqlite_engine is not None
    checkouts: list[int] = []
    event.listen(database.sqlite_engine, "checkout", lambda *_args: checkouts.append(1))
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (a INTEGER)"))
            session.info["cache"] = "first transaction's"
        for value in (1, 2):
            async with database.transaction() as session:
                assert "cache" not in session.info
                await session.execute(text("INSERT INTO t VALUES (:a)"), {"a": value})
        with pytest.raises(RuntimeError):
            async with database.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (3)"))
                raise RuntimeError("the batch failed")
        async with database.transaction() as session:
            await session.execute(text("INSERT INTO t VALUES (4)"))
        async with database.reading() as session:
            assert (await session.execute(text("SELECT a FROM t ORDER BY a"))).scalars().all() == [1, 2, 4]
    finally:
        await database.close()
    assert len(checkouts) == 2  # the writer once, the reader once


async def test_a_writer_waiting_for_another_connections_lock_waits_asleep_and_then_commits(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (a INTEGER)"))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock

        async def write() -> None:
            async with database.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (2)"))

        writer = asyncio.create_task(write())
        ticks, started = 0, time.monotonic()
        while time.monotonic() - started < 0.5:  # the loop keeps running while the writer waits ...
            await asyncio.sleep(0.01)
            ticks += 1
        assert not writer.done()
        assert ticks >= 10  # ... where SQLite's busy handler (blocking, a second a try) would have stopped it
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(writer, timeout=5)
        async with database.reading() as session:
            assert (await session.execute(text("SELECT a FROM t"))).scalars().all() == [2]
    finally:
        await database.close()


async def test_a_refused_event_leaves_only_its_dead_letter_and_the_rest_of_its_batch_applies_once(
    setup: Setup,
) -> None:
    assert setup.runtime.processor is not None
    result = await setup.runtime.processor.process([placed("A", 10), placed("BAD-1", 11), placed("C", 12)])

    assert (result.applied, result.refused, result.dead_lettered) == (2, 1, 1)
    assert sorted(r["order_id"] for r in await setup.rows(orders)) == ["A", "C"]
    forwarded = sorted(r["correlation_id"] for r in await setup.rows(outbox)
                       if r["event_type"] == o.OrderForwarded.event_type)
    assert forwarded == ["A", "C"]  # exactly once each, nothing of BAD-1's
    [letter] = [r for r in await setup.rows(outbox) if r["topic"] == "orders.intake.dlq"]
    assert letter["event_id"] == "dlq:distributor:orders.intake:0:11"
    history = sorted((r["order_id"], r["event_type"]) for r in await setup.rows(order_events))
    assert history == [("A", o.OrderPlaced.event_type), ("C", o.OrderPlaced.event_type)]  # buffered rows went too
    assert sorted(r["order_id"] for r in await setup.rows(order_transitions)) == ["A", "C"]
    outcomes = {r["correlation_id"]: r["outcome"] for r in await setup.rows(inbox)}
    assert outcomes == {"A": "applied", "BAD-1": "refused", "C": "applied"}
    # the run without savepoints stopped at BAD-1 and rolled back; the run with them applied all three
    assert setup.calls == {"A": 2, "BAD-1": 2, "C": 1}
    [accounted] = await setup.rows(DISTRIBUTOR.metadata.tables["consumed_ranges"])
    assert (accounted["first_offset"], accounted["last_offset"], accounted["records"], accounted["applied"],
            accounted["dead_lettered"]) == (10, 12, 3, 2, 1)


async def test_the_orders_of_a_batch_are_read_once_and_each_event_starts_from_what_the_one_before_saved(
    setup: Setup,
) -> None:
    """The distributor loads (and on PostgreSQL locks) a batch's orders with one statement before its handlers run;
    two events of one order in the batch both keep their milestone."""
    assert setup.runtime.processor is not None
    assert setup.runtime.database.sqlite_engine is not None
    await setup.runtime.processor.process([placed("A", 10), placed("B", 11)])
    inspected = c.QualityInspectionRecorded(order_id="A", item="CHAIR-ERGO", passed=True, inspected_by="QA")
    racked = inv.GoodsRacked(order_id="A", item="CHAIR-ERGO", lot="L-1",
                             placements=[RackPlacement(location="DC-A1", quantity=Decimal(1))])
    inspected_b = c.QualityInspectionRecorded(order_id="B", item="CHAIR-ERGO", passed=True, inspected_by="QA")
    reads: list[str] = []

    def count_reads(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM orders" in statement:
            reads.append(statement)

    event.listen(setup.runtime.database.sqlite_engine, "before_cursor_execute", count_reads)
    try:
        result = await setup.runtime.processor.process([
            record_of(inspected, TopicNames()(inspected.topic), 0, 20),
            record_of(racked, TopicNames()(racked.topic), 0, 21),
            record_of(inspected_b, TopicNames()(inspected_b.topic), 0, 22),
        ])
    finally:
        event.remove(setup.runtime.database.sqlite_engine, "before_cursor_execute", count_reads)

    assert result.applied == 3
    assert len(reads) == 1, reads
    async with setup.runtime.database.reading() as session:
        a = await distributor_repository.load(session, "A")
        b = await distributor_repository.load(session, "B")
    assert a is not None and b is not None
    assert (a.order.milestones.quality_passed, a.order.milestones.racked) == (True, True)
    assert (b.order.milestones.quality_passed, b.order.milestones.racked) == (True, False)


async def test_a_batch_without_refusals_runs_each_handler_once(setup: Setup) -> None:
    assert setup.runtime.processor is not None
    result = await setup.runtime.processor.process([placed("A", 10), placed("B", 11)])
    assert result.applied == 2
    assert setup.calls == {"A": 1, "B": 1}


async def test_another_services_event_is_ignored_unread_and_accounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The warehouse reads the holders' `orders.intake` for signatures and call-offs; OrderPlaced is the
    distributor's."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'warehouse.db'}"
    await upgrade_to_head_async(url, WAREHOUSE.migrations)
    runtime = ServiceRuntime.create(WAREHOUSE, ServiceSettings(service="warehouse", database_url=url,
                                                               bootstrap_servers="127.0.0.1:9"))
    assert runtime.processor is not None and o.OrderPlaced not in runtime.processor.handlers
    theirs = placed("A", 40)
    broken = Record(theirs.topic, 0, 41, theirs.key, b"{not json", theirs.headers)  # the distributor's to refuse
    decoded: list[int] = []
    real_decode = processor_module.decode

    def counting_decode(record: Any, **options: Any) -> Any:
        decoded.append(record.offset)
        return real_decode(record, **options)

    monkeypatch.setattr(processor_module, "decode", counting_decode)
    try:
        result = await runtime.processor.process([theirs, broken])
        await runtime.processor.account_deferred()  # what the offset timer does when no transaction came by
        async with runtime.database.reading() as session:
            letters = (await session.execute(select(WAREHOUSE.outbox_table))).all()
            [accounted] = (await session.execute(select(WAREHOUSE.metadata.tables["consumed_ranges"]))).mappings().all()
    finally:
        await runtime.database.close()

    assert decoded == []  # neither value was read
    assert (result.ignored, result.dead_lettered, result.applied) == (2, 0, 0)
    assert letters == []
    assert (accounted["topic"], accounted["first_offset"], accounted["last_offset"], accounted["records"],
            accounted["applied"], accounted["dead_lettered"]) == ("orders.intake", 40, 41, 2, 0, 0)


async def test_a_batch_of_only_other_services_events_opens_no_transaction_and_is_accounted_with_the_next(
    tmp_path: Path,
) -> None:
    """At 10 orders a second the warehouse's batches are often one event of another service's: a transaction
    (BEGIN IMMEDIATE, an insert, COMMIT) for nothing but the accounting. The range waits in memory, holding the
    partition's offset commit back to its first offset, and is written by the next transaction that runs."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'warehouse.db'}"
    await upgrade_to_head_async(url, WAREHOUSE.migrations)
    runtime = ServiceRuntime.create(WAREHOUSE, ServiceSettings(service="warehouse", database_url=url,
                                                               bootstrap_servers="127.0.0.1:9"))
    assert runtime.processor is not None and runtime.database.sqlite_engine is not None
    begins: list[int] = []
    event.listen(runtime.database.sqlite_engine, "begin",  # writers only: the test's own reads begin too
                 lambda conn: begins.append(1) if conn.get_execution_options().get(WRITE_OPTION) else None)
    ranges = WAREHOUSE.metadata.tables["consumed_ranges"]
    theirs = placed("A", 40)
    try:
        await runtime.processor.process([theirs])
        await runtime.processor.process([placed("B", 41)])
        assert begins == []
        assert runtime.processor.deferred.floor(theirs.topic, 0) == 40
        async with runtime.database.reading() as session:
            assert (await session.execute(select(ranges))).all() == []

        unreadable = Record(theirs.topic, 0, 42, b"C", b"{not json", [])  # ours to dead-letter: a transaction
        result = await runtime.processor.process([unreadable])
        async with runtime.database.reading() as session:
            rows = (await session.execute(select(ranges).order_by(ranges.c.first_offset))).mappings().all()
    finally:
        await runtime.database.close()

    assert result.dead_lettered == 1 and len(begins) == 1
    assert [(r["first_offset"], r["last_offset"], r["records"], r["applied"], r["dead_lettered"]) for r in rows] == [
        (40, 41, 2, 0, 0), (42, 42, 1, 0, 1)]
    assert runtime.processor.deferred.floor(theirs.topic, 0) is None


async def test_the_rows_every_batch_inserts_go_straight_to_sqlite_and_read_back_as_sqlalchemy_wrote_them(
    setup: Setup,
) -> None:
    """Inbox (claims too), outbox, offset accounting and appended history: a few hundred microseconds each through
    SQLAlchemy, more than a batch of one event costs otherwise (see fast_insert.py). They bypass its execution
    path, and what they store reads back through SQLAlchemy like what it would have stored itself."""
    from sqlalchemy import event

    assert setup.runtime.processor is not None and setup.runtime.database.sqlite_engine is not None
    through_sqlalchemy: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        through_sqlalchemy.append(statement.split("(")[0].strip())

    event.listen(setup.runtime.database.sqlite_engine, "before_cursor_execute", seen)
    before = dt.datetime.now(dt.UTC)
    record = placed("A", 10)
    await setup.runtime.processor.process([record])
    event.remove(setup.runtime.database.sqlite_engine, "before_cursor_execute", seen)
    redelivered = await setup.runtime.processor.process([record])  # the same record, redelivered

    plumbing = ("inbox", "outbox", "consumed_ranges", "order_events", "order_transitions")
    assert [s for s in through_sqlalchemy if s.startswith("INSERT INTO") and s.split()[2] in plumbing] == []
    assert [s for s in through_sqlalchemy if "FROM inbox" in s] == []  # the batch's inbox look-up too
    assert (redelivered.duplicates, redelivered.applied) == (1, 0)
    [claimed] = await setup.rows(inbox)
    [forwarded] = await setup.rows(outbox)
    accounted, _redelivery = await setup.rows(DISTRIBUTOR.metadata.tables["consumed_ranges"])
    [history] = await setup.rows(order_events)
    assert (claimed["correlation_id"], claimed["offset"], claimed["outcome"]) == ("A", 10, "applied")
    assert (forwarded["event_type"], forwarded["record_key"], forwarded["published_at"]) == (
        o.OrderForwarded.event_type, b"A", None)
    assert (accounted["first_offset"], accounted["last_offset"], accounted["applied"]) == (10, 10, 1)
    assert history["order_id"] == "A"
    for stamp in (claimed["processed_at"], forwarded["created_at"], accounted["recorded_at"]):
        assert isinstance(stamp, dt.datetime)  # stored in SQLAlchemy's format, so read back as a datetime
        assert stamp.replace(tzinfo=dt.UTC) >= before.replace(microsecond=0) - dt.timedelta(seconds=1)
