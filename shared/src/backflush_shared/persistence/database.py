"""One database per service: SQLite by default, PostgreSQL from the same code when a service scales out."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from backflush_shared.errors import ConfigurationError
from backflush_shared.persistence.inline_sqlite import INLINE_BUSY_MS, InlineConnection, InlineSession, is_locked
from backflush_shared.persistence.urls import masked_url

T = TypeVar("T")

#: How long a SQLite transaction waits for another connection's write lock before it fails.
SQLITE_LOCK_TIMEOUT_SECONDS = 30.0


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    """An engine with the settings each backend needs for our unit of work.

    SQLite: WAL so that readers (the command line) never block the service's writer; `synchronous=NORMAL`,
    which in WAL mode still survives a process crash (only a power loss can lose the last commits);
    `BEGIN IMMEDIATE` so that a transaction takes the write lock when it starts instead of failing half-way;
    and the driver's own transaction handling switched off so that SAVEPOINTs work.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ConfigurationError(
            f"database URL {masked_url(url)!r} is not a valid SQLAlchemy URL: {masked_url(str(error))}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Each connection runs its sqlite3 calls inline on the event loop, not on aiosqlite's thread (see
        # inline_sqlite.py for why); the dialect, pool and SQL stay the aiosqlite dialect's.
        args, options = SQLiteDialect_pysqlite().create_connect_args(parsed)

        async def connect() -> InlineConnection:
            return InlineConnection.open(args[0], timeout=SQLITE_LOCK_TIMEOUT_SECONDS, uri=bool(options.get("uri")))

        engine = create_async_engine(url, async_creator=connect)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)
    raise ConfigurationError(f"database URL {masked_url(url)!r}: only sqlite and postgresql are supported")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection.isolation_level is not None:  # InlineConnection opens with it off already
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # short: SQLite's busy handler blocks the event loop; BEGIN, where a writer waits for the lock, waits
        # asleep instead (InlineConnection._begin, up to SQLITE_LOCK_TIMEOUT_SECONDS)
        cursor.execute(f"PRAGMA busy_timeout={INLINE_BUSY_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        # writers take the lock up front; readers (the command line) take none and never block the service
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


WRITE_OPTION = "backflush_writes"


def create_sqlite_engine(url: str) -> Engine:
    """The plain (sync) engine `Database` runs SQLite through: statements inline, no greenlet per statement.

    The same settings as `create_engine`'s, except how a writer takes the lock: `BEGIN IMMEDIATE` with SQLite's
    busy handler off, so that a lock held by another process fails at once and `Database.transaction` waits
    for it asleep instead of blocking the event loop."""
    parsed = make_url(url)
    database = parsed.database or ""
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = sqlalchemy.create_engine(parsed.set(drivername="sqlite"),
                                      connect_args={"timeout": INLINE_BUSY_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we say when transactions begin (and SAVEPOINTs then work)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={INLINE_BUSY_MS}", "foreign_keys=ON"):
            dbapi_connection.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        raw = connection.connection.driver_connection
        if not connection.get_execution_options().get(WRITE_OPTION, False):
            raw.execute("BEGIN")  # readers (the command line) take no lock and never block the service
            return
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute("BEGIN IMMEDIATE")
        finally:
            raw.execute(f"PRAGMA busy_timeout={INLINE_BUSY_MS}")

    return engine


class Database:
    """The service's database: an engine and the sessions of its units of work.

    On SQLite the sessions are `InlineSession`s over plain connections (see inline_sqlite.py): every statement runs
    on the event loop's thread in microseconds, with no thread hand-off and no greenlet per statement."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._write_lock: asyncio.Lock | None = None
        try:
            sqlite = make_url(url).get_backend_name() == "sqlite"
        except ArgumentError:
            sqlite = False  # create_engine below says what is wrong with the URL
        # what `create_engine` makes for this URL (on SQLite only used by code that asks for it: nothing connects)
        self.engine = create_engine(url)
        if sqlite:
            self.sqlite_engine: Engine | None = create_sqlite_engine(url)
            self._sqlite_writer_engine = self.sqlite_engine.execution_options(**{WRITE_OPTION: True})
            #: the one writer connection, held from the first transaction to `close`: a session and a pool
            #: checkout per transaction cost about as much as the BEGIN, INSERT and COMMIT of a batch of one
            self._sqlite_writer: Connection | None = None
            # SQLite has one writer: transactions of this process queue here instead of in SQLite's busy handler
            self._write_lock = asyncio.Lock()
            return
        self.sqlite_engine = None
        self._sessions = async_sessionmaker(self.engine.execution_options(**{WRITE_OPTION: True}),
                                            expire_on_commit=False, autoflush=True)
        self._readers = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: everything done in the block commits together or not at all."""
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock:
            connection = await self._begin_sqlite_writer()
            # a new InlineSession each time (its `info` is this transaction's), on the held connection, whose
            # transaction is ours to commit or roll back
            try:
                yield InlineSession(connection)  # type: ignore[misc]  # the part of AsyncSession we use
            except BaseException:
                self._end_sqlite_writer(connection, commit=False)
                raise
            self._end_sqlite_writer(connection, commit=True)

    async def _begin_sqlite_writer(self) -> Connection:
        """The writer connection in a transaction holding SQLite's write lock; waits asleep while another
        process's writer holds it."""
        deadline = time.monotonic() + SQLITE_LOCK_TIMEOUT_SECONDS
        pause = 0.005
        while True:
            if self._sqlite_writer is None or self._sqlite_writer.closed or self._sqlite_writer.invalidated:
                self._sqlite_writer = self._sqlite_writer_engine.connect()
            try:
                self._sqlite_writer.begin()  # BEGIN IMMEDIATE
                return self._sqlite_writer
            except (OperationalError, sqlite3.OperationalError) as error:  # raw: raised by the `begin` listener
                self._drop_sqlite_writer()  # whatever state a failed BEGIN left it in, a new one starts clean
                if not is_locked(getattr(error, "orig", error)) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _end_sqlite_writer(self, connection: Connection, *, commit: bool) -> None:
        transaction = connection.get_transaction()
        try:
            if transaction is not None:
                transaction.commit() if commit else transaction.rollback()
        except BaseException:
            self._drop_sqlite_writer()  # a failed COMMIT or ROLLBACK: start the next transaction on a new one
            raise

    def _drop_sqlite_writer(self) -> None:
        writer, self._sqlite_writer = self._sqlite_writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - it is being thrown away; the pool discards a broken one
                writer.invalidate()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        if self.sqlite_engine is None:
            async with self._readers() as session:
                yield session
            return
        with self.sqlite_engine.connect() as reader:  # its read transaction rolls back when it closes
            yield InlineSession(reader)  # type: ignore[misc]

    async def close(self) -> None:
        if self.sqlite_engine is not None:
            self._drop_sqlite_writer()
            self.sqlite_engine.dispose()
        await self.engine.dispose()


def missing_sqlite_file(url: str) -> str | None:
    """The path `url` names when it is a SQLite file that does not exist, else None.

    Opening a missing SQLite file would create it empty, and a reader would then report an empty database (or
    missing tables) instead of the real mistake: a wrong path, or a service that never started."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # Database() reports a malformed URL as a ConfigurationError
    path = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or path in ("", ":memory:") or Path(path).is_file():
        return None
    return path


async def read_once(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Open a service's database, read from it once, close it: what the command line and tests do."""
    database = Database(url)
    try:
        async with database.reading() as session:
            return await work(session)
    finally:
        await database.close()
