"""SELECTs on SQLite run straight on the connection, and give exactly what SQLAlchemy gives.

At batches of one event SQLAlchemy's execution machinery around a prebuilt SELECT cost ten times what SQLite takes
to run it, so `InlineSession.execute` runs a Core SELECT on the transaction's sqlite3 connection
(persistence/fast_select.py). What a caller reads must not change: the same rows, keys and Python types (exact
decimals, aware datetimes), `IN` lists of any length, values held by the statement itself, `scalars`, `mappings`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import Select

from backflush_shared.persistence import fast_select
from backflush_shared.persistence.database import Database
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.persistence.types import DecimalText
from backflush_shared.service import ServiceRuntime
from backflush_shared.settings import ServiceSettings

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.topics import TopicNames
from backflush_shared.messaging.codec import encode
from backflush_shared.messaging.publish import envelope_for, source_for

from backflush_distributor.adapters import repository
from backflush_distributor.app import SERVICE as DISTRIBUTOR
from support.consumed import Record

metadata = MetaData()
lots = Table(
    "lots", metadata,
    Column("id", Integer, primary_key=True),
    Column("lot", String(40), nullable=False),
    Column("quantity", DecimalText(), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=True),
    Column("status", String(20), nullable=False),
)
NOON = dt.datetime(2030, 1, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)

STATEMENTS: list[tuple[str, Select[Any], dict[str, Any] | None]] = [
    ("every column, one id in a list", select(lots).where(lots.c.lot.in_(bindparam("lots", expanding=True))),
     {"lots": ["L-2"]}),
    ("every column, three ids in a list, ordered",
     select(lots).where(lots.c.lot.in_(bindparam("lots", expanding=True))).order_by(lots.c.id.desc()),
     {"lots": ["L-1", "L-3", "missing"]}),
    ("a value the statement holds", select(lots.c.lot, lots.c.quantity).where(lots.c.status == "stored")
     .order_by(lots.c.lot), None),
    ("a value given and a list", select(lots.c.lot).where(lots.c.status == bindparam("status"),
                                                          lots.c.lot.in_(bindparam("lots", expanding=True))),
     {"status": "stored", "lots": ["L-1", "L-2", "L-3"]}),
    ("an aggregate", select(func.max(lots.c.id)), None),
    ("a limit", select(lots.c.id, lots.c.received_at).order_by(lots.c.id).limit(bindparam("limit", type_=Integer)),
     {"limit": 2}),
    ("locked for update (nothing on SQLite)",
     select(lots.c.lot).where(lots.c.lot == bindparam("lot")).with_for_update(), {"lot": "L-3"}),
]


def record_of(event: Any, offset: int) -> Record:
    topic = TopicNames()(event.topic)
    encoded = encode(event, envelope_for(event, source_for(event, otherwise="/backflush/tests")), topic)
    return Record(topic, 0, offset, encoded.key, encoded.value, encoded.headers)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'selects.db'}")
    assert database.sqlite_engine is not None
    with database.sqlite_engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(insert(lots), [
            {"lot": "L-1", "quantity": Decimal("1.250"), "received_at": NOON, "status": "stored"},
            {"lot": "L-2", "quantity": None, "received_at": None, "status": "shipped"},
            {"lot": "L-3", "quantity": Decimal("0.000001"), "received_at": NOON, "status": "stored"},
        ])
    try:
        yield database
    finally:
        await database.close()


@pytest.mark.parametrize(("label", "statement", "params"), STATEMENTS, ids=[s[0] for s in STATEMENTS])
async def test_a_select_on_sqlite_reads_what_sqlalchemy_reads(database: Database, label: str,
                                                              statement: Select[Any], params: Any) -> None:
    async with database.transaction() as session:
        for attempt in range(3):  # SQLAlchemy runs a statement seen once; the second compiles, the third reuses
            run_before = fast_select.statements_run
            fast = await session.execute(statement, params)
            assert fast_select.statements_run == run_before + (attempt > 0)  # on the connection from the second
            expected = session.sync_session.execute(statement, params)
            assert list(fast.keys()) == list(expected.keys())
            fast_rows, expected_rows = fast.all(), expected.all()
            assert fast_rows == expected_rows
            assert [[type(v) for v in row] for row in fast_rows] == [[type(v) for v in row] for row in expected_rows]


async def test_a_select_on_sqlite_answers_the_ways_callers_read_it(database: Database) -> None:
    by_lot = select(lots).where(lots.c.lot == bindparam("lot"))
    async with database.transaction() as session:
        row = (await session.execute(by_lot, {"lot": "L-1"})).one_or_none()
        # SQLite keeps no time zone: SQLAlchemy reads the time back naive, and so does this
        assert row is not None and (row.quantity, row.received_at) == (Decimal("1.250"), NOON.replace(tzinfo=None))
        assert (await session.execute(by_lot, {"lot": "none"})).mappings().one_or_none() is None
        assert (await session.execute(by_lot, {"lot": "L-3"})).mappings().one()["quantity"] == Decimal("0.000001")
        assert await session.scalar(select(func.count()).select_from(lots)) == 3
        assert (await session.scalars(select(lots.c.lot).order_by(lots.c.lot))).all() == ["L-1", "L-2", "L-3"]
        # what the transaction wrote itself, before it commits
        await session.execute(insert(lots), {"lot": "L-4", "status": "stored"})
        assert (await session.execute(by_lot, {"lot": "L-4"})).mappings().one()["status"] == "stored"


async def test_a_distributor_batch_of_one_runs_no_select_through_sqlalchemy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batch's reads (the inbox's known ids, the locked orders) go straight to SQLite on the writer's
    connection: no SELECT pays for `Session.execute`."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'distributor.db'}"
    await upgrade_to_head_async(url, DISTRIBUTOR.migrations)
    runtime = ServiceRuntime.create(DISTRIBUTOR, ServiceSettings(service="distributor", database_url=url,
                                                                 bootstrap_servers="127.0.0.1:9"))
    processor = runtime.processor
    assert processor is not None
    selects: list[str] = []

    def counting(execute: Any) -> Any:
        def counted(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(statement, Select):
                selects.append(str(statement))
            return execute(self, statement, *args, **kwargs)
        return counted

    def placed(order_id: str) -> o.OrderPlaced:
        return o.OrderPlaced(order_id=order_id, order_holder="Small Ltd", flow="pre", item="CHAIR-ERGO",
                             quantity=Decimal(1), ship_to="1 Small Road", due_date=dt.date(2030, 1, 1))

    inspected = c.QualityInspectionRecorded(order_id="A", item="CHAIR-ERGO", passed=True, inspected_by="QA")
    try:
        # the service's first batch: each statement is run by SQLAlchemy the first time it is seen
        assert (await processor.process([record_of(placed("A"), 10)])).applied == 1
        monkeypatch.setattr(Session, "execute", counting(Session.execute))
        monkeypatch.setattr(Connection, "execute", counting(Connection.execute))
        assert (await processor.process([record_of(placed("B"), 11)])).applied == 1
        assert (await processor.process([record_of(inspected, 20)])).applied == 1
        monkeypatch.undo()
        async with runtime.database.reading() as session:
            stored = await repository.load(session, "A")
    finally:
        await runtime.database.close()
    assert stored is not None and stored.order.milestones.quality_passed
    assert selects == []


async def test_a_sqlite_unit_of_work_builds_no_orm_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch's transaction runs on the held writer connection: building, joining, committing and closing a
    `Session` per transaction cost more than SQLite's BEGIN and COMMIT. What it wrote still commits, what failed
    still rolls back, and a savepoint still undoes only its own part."""
    built: list[int] = []
    init = Session.__init__

    def counting(self: Session, *args: Any, **kwargs: Any) -> None:
        built.append(1)
        init(self, *args, **kwargs)

    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'writer.db'}")
    assert database.sqlite_engine is not None
    with database.sqlite_engine.begin() as connection:
        metadata.create_all(connection)
    monkeypatch.setattr(Session, "__init__", counting)
    try:
        async with database.transaction() as session:
            await session.execute(insert(lots), {"lot": "kept", "status": "stored"})
            with pytest.raises(RuntimeError):
                async with session.begin_nested():
                    await session.execute(insert(lots), {"lot": "undone", "status": "stored"})
                    raise RuntimeError("refused")
        with pytest.raises(RuntimeError):
            async with database.transaction() as session:
                await session.execute(insert(lots), {"lot": "rolled back", "status": "stored"})
                raise RuntimeError("the batch failed")
        async with database.reading() as session:
            assert (await session.scalars(select(lots.c.lot))).all() == ["kept"]
    finally:
        await database.close()
    assert built == []


async def test_an_update_on_sqlite_writes_what_sqlalchemy_writes_and_counts_its_rows(database: Database) -> None:
    """UPDATEs run on the connection too (from the second time a statement is seen): the values stored exactly as
    SQLAlchemy stores them, `rowcount` right for a conditional write, a constraint's error SQLAlchemy's."""
    by_lot = update(lots).where(lots.c.lot == bindparam("key"))  # SET: the columns the parameters name
    ship = update(lots).where(lots.c.lot == bindparam("key"), lots.c.status == "stored").values(status="shipped")
    values = {"quantity": Decimal("2.500"), "received_at": NOON}
    async with database.transaction() as session:
        session.sync_session.execute(by_lot, {"key": "L-1", **values})  # SQLAlchemy's own, for comparison
        await session.execute(by_lot, {"key": "L-2", **values})  # seen once: SQLAlchemy's
        run_before = fast_select.statements_run
        written = await session.execute(by_lot, [{"key": "L-3", **values}, {"key": "missing", **values}])
        assert (written.rowcount, fast_select.statements_run) == (1, run_before + 1)
        await session.execute(ship, {"key": "L-1"})
        assert [(await session.execute(ship, {"key": lot})).rowcount for lot in ("L-3", "L-3")] == [1, 0]
        with pytest.raises(IntegrityError):
            await session.execute(by_lot, {"key": "L-1", "status": None})
    assert database.sqlite_engine is not None
    with database.sqlite_engine.connect() as connection:  # the text stored, not what it reads back as
        stored = connection.exec_driver_sql("SELECT lot, quantity, received_at, status FROM lots ORDER BY lot").all()
    assert [tuple(row) for row in stored] == [
        ("L-1", "2.500", stored[0][2], "shipped"), ("L-2", "2.500", stored[0][2], "shipped"),
        ("L-3", "2.500", stored[0][2], "shipped")]


async def test_a_prebuilt_insert_on_sqlite_stores_what_sqlalchemy_stores(database: Database) -> None:
    """A plain `insert(table)` the code keeps runs on the connection from the second time (one statement for a
    list of rows); one with more to it (here `OR IGNORE`) stays SQLAlchemy's and keeps its meaning."""
    add = insert(lots)
    add_unless_there = insert(lots).prefix_with("OR IGNORE")
    row = {"lot": "N", "quantity": Decimal("3.000"), "received_at": NOON, "status": "stored"}
    async with database.transaction() as session:
        session.sync_session.execute(add, {**row, "id": 10})  # SQLAlchemy's own, for comparison
        await session.execute(add, {**row, "id": 11})  # seen once: SQLAlchemy's
        run_before = fast_select.statements_run
        written = await session.execute(add, [{**row, "id": 12}, {**row, "id": 13}])
        assert (written.rowcount, fast_select.statements_run) == (2, run_before + 1)
        for _ in range(3):
            await session.execute(add_unless_there, {**row, "id": 10})  # already there: ignored
        with pytest.raises(IntegrityError):
            await session.execute(add, {**row, "id": 10})
    assert database.sqlite_engine is not None
    with database.sqlite_engine.connect() as connection:  # the text stored, not what it reads back as
        stored = connection.exec_driver_sql(
            "SELECT lot, quantity, received_at, status FROM lots WHERE id >= 10 ORDER BY id").all()
    assert [tuple(r) for r in stored] == [tuple(stored[0])] * 4 and stored[0][1] == "3.000"
