"""Inserts of the consume path that every batch runs, straight on SQLite's connection.

Every batch inserts its inbox rows, its offset accounting, its outbox rows and its appended history. Through
SQLAlchemy each of those statements cost a few hundred microseconds of Python (the session's execution path, the
compiled-cache lookup, the result machinery) around the microseconds SQLite takes: at batches of one event, more
than the event itself. On SQLite (an `InlineSession`, see inline_sqlite.py) they run here instead: the INSERT is
compiled once per table and set of columns by SQLAlchemy's own SQLite dialect, the values go through the
dialect's own bind processors (a datetime is stored exactly as SQLAlchemy stores it), and the sqlite3 connection
of the session's transaction runs it. Anything else -- PostgreSQL, a row that leaves a column with a default to
SQLAlchemy -- goes through SQLAlchemy as before.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from backflush_shared.persistence import fast_select
from backflush_shared.persistence.inline_sqlite import InlineSession

_DIALECT = SQLiteDialect_pysqlite()


class _Compiled:
    __slots__ = ("sql", "names", "processors", "_pairs")

    def __init__(self, table: Table, columns: tuple[str, ...]) -> None:
        compiled = insert(table).compile(dialect=_DIALECT, column_keys=list(columns))
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        bind = compiled._bind_processors  # noqa: SLF001 - the dialect's own conversions, so storage is identical
        self.processors: tuple[Callable[[Any], Any] | None, ...] = tuple(bind.get(name) for name in self.names)
        self._pairs = tuple(zip(self.names, self.processors, strict=True))

    def parameters(self, row: dict[str, Any]) -> tuple[Any, ...]:
        # a list comprehension over prebuilt pairs: two chained generators cost three times as much, on every
        # value of every row a batch inserts
        return tuple([row[name] if process is None or row[name] is None else process(row[name])
                      for name, process in self._pairs])


_compiled: dict[tuple[Table, tuple[str, ...]], _Compiled | None] = {}


def _compile(table: Table, row: dict[str, Any]) -> _Compiled | None:
    key = (table, tuple(row))
    found = _compiled.get(key, _compiled)
    if found is _compiled:
        candidate = _Compiled(table, key[1])
        # a column the rows leave out but the statement binds (a default SQLAlchemy computes): its way, then
        found = candidate if set(candidate.names) == set(key[1]) else None
        _compiled[key] = found
    return found  # type: ignore[return-value]


def sqlite_session(session: Any) -> InlineSession | None:
    """The session when it is an `InlineSession` (SQLite), else None."""
    return session if type(session) is InlineSession else None


def raw_connection(session: InlineSession) -> sqlite3.Connection:
    """The sqlite3 connection of the session's transaction (kept on the session, which lives as long)."""
    raw = session.raw
    if raw is None:
        connection = session.sync_session
        if not connection.in_transaction():
            connection.begin()  # as SQLAlchemy would before a statement: a reader's reads share one snapshot
        raw = session.raw = connection.connection.driver_connection
    return raw


def insert_rows_sync(sync_session: InlineSession, table: Table, rows: Sequence[dict[str, Any]]) -> bool:
    """Insert `rows` (all with the same keys) on SQLite's connection; False (nothing done) when SQLAlchemy must."""
    if not rows:
        return True
    compiled = _compile(table, rows[0])
    keys = rows[0].keys()
    if compiled is None or any(row.keys() != keys for row in rows):
        return False
    raw_connection(sync_session).executemany(compiled.sql, [compiled.parameters(row) for row in rows])
    return True


async def insert_rows(session: Any, table: Table, rows: Sequence[dict[str, Any]], statement: Any = None) -> None:
    """Insert `rows` in one statement: on SQLite's connection when it can, else `statement` (or an INSERT)."""
    sync_session = sqlite_session(session)
    if sync_session is not None and insert_rows_sync(sync_session, table, rows):
        return
    await session.execute(statement if statement is not None else insert(table), list(rows))


def insert_rows_returning_ids(session: Any, table: Table, rows: Sequence[dict[str, Any]]) -> list[int] | None:
    """SQLite: insert `rows` one statement each on the connection and return their ids (the rowid, in order);
    None when this cannot be done here (the caller then inserts with RETURNING through SQLAlchemy)."""
    sync_session = sqlite_session(session)
    if sync_session is None or not rows:
        return None if sync_session is None else []
    compiled = _compile(table, rows[0])
    keys = rows[0].keys()
    if compiled is None or any(row.keys() != keys for row in rows):
        return None
    cursor = raw_connection(sync_session).cursor()
    try:
        ids: list[int] = []
        for row in rows:
            cursor.execute(compiled.sql, compiled.parameters(row))
            ids.append(cursor.lastrowid)
        return ids
    finally:
        cursor.close()


_selects: dict[tuple[Table, tuple[str, ...], str, int], str] = {}


def select_in(session: Any, table: Table, columns: Sequence[str], key: str,
              values: Sequence[Any]) -> list[tuple[Any, ...]] | None:
    """SQLite: `SELECT columns FROM table WHERE key IN values` on the connection (text columns only: no result
    processing); None when this cannot be done here (the caller then asks SQLAlchemy)."""
    sync_session = sqlite_session(session)
    if sync_session is None:
        return None
    if not values:
        return []
    shape = (table, tuple(columns), key, len(values))
    sql = _selects.get(shape)
    if sql is None:  # built once per shape: at batches of one, building it cost more than SQLite running it
        quote = _DIALECT.identifier_preparer.quote
        sql = _selects[shape] = (
            f"SELECT {', '.join(quote(c) for c in columns)} FROM {_DIALECT.identifier_preparer.format_table(table)} "
            f"WHERE {quote(key)} IN ({', '.join('?' * len(values))})")
    return raw_connection(sync_session).execute(sql, tuple(values)).fetchall()  # type: ignore[no-any-return]


#: INSERT statement object -> whether it is a plain `insert(table)` (None: seen once, SQLAlchemy ran it)
_plain_inserts: weakref.WeakKeyDictionary[Insert, bool | None] = weakref.WeakKeyDictionary()


def execute_insert(session: InlineSession, statement: Any, params: Any) -> int | None:
    """A prebuilt plain `insert(table)` with a dict or a list of dicts (the same keys) as its rows, run by
    `insert_rows_sync`; the rows inserted, or None when SQLAlchemy must run it (a statement built per call, one
    with values, RETURNING, prefixes..., or someone listening to the engine for statements)."""
    if type(statement) is not Insert:
        return None
    plain = _plain_inserts.get(statement, _plain_inserts)
    if plain is _plain_inserts:
        _plain_inserts[statement] = None  # the first time, SQLAlchemy's: one built per call is never seen again
        return None
    if plain is None:
        table = statement.table
        plain = _plain_inserts[statement] = (
            isinstance(table, Table) and not statement._returning and not statement._return_defaults  # noqa: SLF001
            and str(statement.compile(dialect=_DIALECT)) == str(insert(table).compile(dialect=_DIALECT)))
    if not plain:
        return None
    rows = [params] if type(params) is dict else params
    if type(rows) is not list or not rows or any(type(row) is not dict for row in rows):
        return None
    if session.sync_session.dispatch.before_cursor_execute:
        return None  # someone watches the statements: let them see this one
    try:
        done = insert_rows_sync(session, statement.table, rows)
    except sqlite3.Error as error:
        # not run again (an executemany may have inserted some rows): SQLAlchemy's error, as callers expect
        raise DBAPIError.instance(str(statement), rows, error, sqlite3.Error, dialect=_DIALECT) from error
    if not done:
        return None
    fast_select.statements_run += 1
    return len(rows)
