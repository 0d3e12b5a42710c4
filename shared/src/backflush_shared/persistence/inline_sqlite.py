"""SQLite without a thread hop, or a greenlet, per statement.

Two ways, one reason. `Database` runs its SQLite units of work on a plain (sync) `Connection` behind
`InlineSession`, the part of `AsyncSession` our code uses (its prebuilt SELECTs and UPDATEs straight on the
sqlite3 connection, see fast_select.py); `create_engine` (migrations, code that wants an
`AsyncEngine`) gets the aiosqlite dialect over `InlineConnection`. Why:

SQLAlchemy's `sqlite+aiosqlite` dialect hands every statement, fetch, commit and rollback to aiosqlite's worker
thread and waits for the event loop to be woken with the result. A statement of ours takes SQLite a few
microseconds (WAL, `synchronous=NORMAL`, one writer per file); the hand-off around it cost ten times that, and
two thirds of every service's CPU (docs/benchmarks.md). So the connection below runs each sqlite3 call inline on
the event loop, behind the same small interface the dialect expects of an aiosqlite connection (read
sqlalchemy/dialects/sqlite/aiosqlite.py and connectors/asyncio.py: `cursor()`, async `execute`/`executemany`/
`fetch*`/`close` on the cursor; async `commit`/`rollback`/`close`/`create_function`, `_connection`, `_conn`,
`_tx`, `stop` on the connection).

Blocking the loop for microseconds is the right trade: Kafka heartbeats, fetches and the relay's sends wait far
less than they did for the thread hand-off's wake-up. The one way SQLite can block for long is a lock held by
another connection; the service is the only writer of its file (WAL readers, like the command line, take no lock
a writer waits for), and `BEGIN IMMEDIATE` -- where a writer takes the lock -- never waits on the loop:
`Database.transaction` tries it with the busy handler off and retries with `asyncio.sleep` for up to 30 s
(`InlineConnection` retries a locked `BEGIN` the same way), while SQLite's own busy handler waits at most
`INLINE_BUSY_MS` anywhere else (in WAL mode only rare cases, such as another connection's recovery, get there).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Connection, NestedTransaction

from backflush_shared.persistence.fast_select import WriteResult, execute_select, execute_update

#: SQLite's own busy handler, for a statement other than BEGIN that finds the file locked (in WAL mode only rare
#: cases: a reader during another connection's recovery, a checkpoint). It blocks the loop, so it is short; the
#: statement then fails like any database error and the batch is retried.
INLINE_BUSY_MS = 1000

#: How long `BEGIN` waits, between tries, for a writer of another process (e.g. two instances on one file).
_BEGIN_RETRY_SECONDS = (0.005, 0.25)


class InlineCursor:
    """An aiosqlite-shaped cursor whose coroutines finish without ever suspending (except a locked BEGIN)."""

    __slots__ = ("_owner", "_cursor")

    def __init__(self, owner: InlineConnection) -> None:
        self._owner = owner
        self._cursor = owner._conn.cursor()

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        if parameters is None:
            parameters = ()
        if sql[:5].upper() == "BEGIN":
            await self._owner._begin(self._cursor, sql, parameters)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def executescript(self, script: str) -> InlineCursor:
        self._cursor.executescript(script)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    async def nextset(self) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _InlineQueue:
    """What the dialect's `isolation_level` setter puts `(future, function)` on: run it now."""

    __slots__ = ()

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as error:  # noqa: BLE001 - handed to whoever awaits the future
            if future is not None and not future.done():
                future.set_exception(error)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection:
    """An aiosqlite-shaped connection over a stdlib sqlite3 connection, used on the event loop's thread."""

    def __init__(self, connection: sqlite3.Connection, timeout: float) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._timeout = timeout
        self._tx = _InlineQueue()

    @classmethod
    def open(cls, database: str, *, timeout: float, uri: bool = False) -> InlineConnection:
        # check_same_thread off: the pool may close a connection from the garbage collector's thread, and
        # SQLite's default (serialized) threading mode makes that safe; all work happens on the loop's thread.
        connection = sqlite3.connect(database, timeout=INLINE_BUSY_MS / 1000, isolation_level=None,
                                     check_same_thread=False, uri=uri)
        return cls(connection, timeout)

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")
        return self._connection

    def cursor(self) -> InlineCursor:
        return InlineCursor(self)

    async def _begin(self, cursor: sqlite3.Cursor, sql: str, parameters: Any) -> None:
        # Another process holding the write lock must not freeze this one's loop (heartbeats, sends): wait for it
        # here, asleep, up to the same total timeout a blocking busy handler would have allowed.
        deadline = time.monotonic() + self._timeout
        pause, longest = _BEGIN_RETRY_SECONDS
        while True:
            try:
                cursor.execute(sql, parameters)
                return
            except sqlite3.OperationalError as error:
                if not is_locked(error) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        cursor = self.cursor()
        return await cursor.execute(sql, parameters)

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> InlineCursor:
        cursor = self.cursor()
        return await cursor.executemany(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def stop(self) -> None:
        """Close at once (the dialect's forced termination, e.g. from the garbage collector)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._conn.isolation_level = value


def is_locked(error: BaseException | None) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED: another connection holds the lock."""
    return getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or (
        "locked" in str(error) or "busy" in str(error))


class InlineSession:
    """What our code uses of an `AsyncSession`, over a plain (sync) `Connection` on SQLite.

    Even with statements run inline, `AsyncSession.execute` spawns a greenlet and goes through the asyncio
    adapter layers for every statement: measured, two to four times what the plain call costs for the same
    statement. Nothing on SQLite ever needs to wait for I/O (see the module's docstring), so the methods run the
    sync ones directly. And on the connection, not a `Session`: our code is Core only (no ORM objects to flush
    or track), and a session per transaction -- built, joined to the connection's transaction, committed, closed
    -- cost more than SQLite's BEGIN and COMMIT of a batch of one (27 µs of 42). The face is the part of
    `AsyncSession` this project uses: `execute`, `scalar`, `scalars`, `begin_nested`, `flush`, `connection`,
    `get_bind`, `info` (this transaction's own), `sync_session` (here the connection).
    """

    __slots__ = ("sync_session", "info", "raw")

    def __init__(self, connection: Connection) -> None:
        #: the connection, under the name `AsyncSession` gives its sync half
        self.sync_session = connection
        self.info: dict[Any, Any] = {}
        #: the sqlite3 connection under it, once a fast path asked for it (see fast_insert.raw_connection)
        self.raw: sqlite3.Connection | None = None

    async def execute(self, statement: Any, params: Any = None, **options: Any) -> Any:
        if not options:
            # a SELECT or an UPDATE straight on the connection, for a fraction of SQLAlchemy's cost (fast_select.py)
            if params is None or type(params) is dict:
                result = execute_select(self, statement, params)
                if result is not None:
                    return result
            if params is not None:
                written = execute_update(self, statement, params)
                if written is not None:
                    return written
                from backflush_shared.persistence.fast_insert import execute_insert  # it imports this module

                inserted = execute_insert(self, statement, params)
                if inserted is not None:
                    return WriteResult(inserted)
        return self.sync_session.execute(statement, params, **options)

    async def scalar(self, statement: Any, params: Any = None, **options: Any) -> Any:
        return (await self.execute(statement, params, **options)).scalar()

    async def scalars(self, statement: Any, params: Any = None, **options: Any) -> Any:
        return (await self.execute(statement, params, **options)).scalars()

    async def flush(self) -> None:
        return None  # Core only: nothing waits to be flushed

    async def connection(self, **options: Any) -> Connection:
        if options:  # they would stay on the held writer connection, past this transaction
            raise TypeError(f"the inline SQLite session takes no connection options: {sorted(options)}")
        return self.sync_session

    def get_bind(self, *_args: Any, **_options: Any) -> Connection:
        return self.sync_session

    def in_nested_transaction(self) -> bool:
        return self.sync_session.in_nested_transaction()

    def begin_nested(self) -> _InlineSavepoint:
        return _InlineSavepoint(self.sync_session)


class _InlineSavepoint:
    """`async with session.begin_nested():` -- released on success, rolled back on an exception."""

    __slots__ = ("_connection", "_transaction")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._transaction: NestedTransaction | None = None

    async def __aenter__(self) -> _InlineSavepoint:
        self._transaction = self._connection.begin_nested()
        return self

    async def __aexit__(self, kind: Any, error: Any, traceback: Any) -> None:
        assert self._transaction is not None
        self._transaction.__exit__(kind, error, traceback)
