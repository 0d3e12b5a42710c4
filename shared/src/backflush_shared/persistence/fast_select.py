"""SELECTs and UPDATEs of the consume path, straight on SQLite's connection (what fast_insert.py does for INSERTs).

At batches of one event, a prebuilt statement through `Session.execute` cost about 40 µs of SQLAlchemy (the
session's execution path, the compiled-cache lookup, the expansion of an `IN` list, the cursor result) around the
few microseconds SQLite takes; the distributor's one `lock_orders` statement took 12 % of its CPU. On SQLite
(`InlineSession.execute`) a Core SELECT or UPDATE runs here instead, from the second time its statement object is
seen (a statement built per call is left to SQLAlchemy's cache): compiled once per statement (per length of each
`IN` list; per set of keys an UPDATE's parameters name, its SET clause) by the connection's own dialect, its
values through the dialect's bind processors, a SELECT's rows through the result processors SQLAlchemy would have
applied and handed back as a real `Result` (`mappings`, `scalars`, `one_or_none` ... behave as ever), an UPDATE's
`rowcount` kept for conditional writes. Anything else -- another statement kind, options, RETURNING, a default
computed in Python, a statement this module cannot run exactly as SQLAlchemy would, or an engine someone listens
to for statements (tests counting them) -- goes through SQLAlchemy as before. PostgreSQL never comes here.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Result
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData
from sqlalchemy.exc import CompileError, DBAPIError
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.selectable import Select

if TYPE_CHECKING:
    from backflush_shared.persistence.inline_sqlite import InlineSession

#: Counts the statements run here, for tests that pin how many a batch runs (SQLAlchemy's events do not see them).
statements_run = 0

_Processor = Callable[[Any], Any] | None


class _Plan:
    """One statement, compiled, for given lengths of its `IN` lists."""

    __slots__ = ("sql", "binds", "metadata", "processors")

    def __init__(self, sql: str, binds: tuple[tuple[str, int, _Processor], ...], metadata: SimpleResultMetaData,
                 processors: tuple[_Processor, ...] | None) -> None:
        self.sql = sql
        #: per `?`: the parameter's name, its index in an expanded list (-1: not a list), its bind processor
        self.binds = binds
        self.metadata = metadata
        self.processors = processors  # None: no column needs one


class _Statement:
    """What is known of one statement object: its compiled form, its plans, or that SQLAlchemy must run it."""

    __slots__ = ("compiled", "expanding", "names", "plans")

    def __init__(self, compiled: Any, expanding: tuple[str, ...], names: frozenset[str]) -> None:
        self.compiled = compiled
        self.expanding = expanding
        self.names = names  # every parameter's name: given them all, nothing else need be looked up
        self.plans: dict[tuple[int, ...], _Plan] = {}


_SEEN_ONCE = _Statement(None, (), frozenset())
_NOT_HERE = _Statement(None, (), frozenset())  # SQLAlchemy runs it, always
#: statement object -> what is known of it; weak: a statement built per call goes with it
_statements: weakref.WeakKeyDictionary[Select[Any], _Statement] = weakref.WeakKeyDictionary()


def _prepare(statement: Select[Any] | Update, dialect: Any, column_keys: list[str] | None = None) -> _Statement | None:
    try:
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
    except CompileError:
        return None  # SQLAlchemy says what is wrong when it runs it
    if compiled.literal_execute_params or compiled.escaped_bind_names or compiled.positiontup is None:
        return None
    if compiled.insert_prefetch or compiled.update_prefetch:
        return None  # a default SQLAlchemy computes in Python for each row
    expanding = []
    for bind in compiled.post_compile_params:
        if not bind.expanding or bind.literal_execute or bind.type._is_tuple_type:
            return None
        expanding.append(bind.key)
    keys = [column.keyname for column in compiled._result_columns]  # noqa: SLF001 - what the cursor result reads
    if len(set(keys)) != len(keys) or (not keys and column_keys is None):
        return None  # ambiguous names (a join's two `id`s): SQLAlchemy's result says how each is meant
    names = list(compiled.bind_names.values())  # (`binds` holds an anonymous parameter under two keys)
    if len(set(names)) != len(names):
        return None
    return _Statement(compiled, tuple(expanding), frozenset(names))


def _plan(entry: _Statement, lengths: tuple[int, ...], dialect: Any) -> _Plan:
    compiled = entry.compiled
    sql: str = compiled.string
    expanded = dict(zip(entry.expanding, lengths, strict=True))
    processors: dict[str, _Processor] = compiled._bind_processors  # noqa: SLF001 - the dialect's own conversions
    binds: list[tuple[str, int, _Processor]] = []
    for name in compiled.positiontup:
        count = expanded.get(name)
        if count is None:
            binds.append((name, -1, processors.get(name)))
            continue
        sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join("?" * count))
        binds.extend((name, index, processors.get(name)) for index in range(count))
    columns = compiled._result_columns  # noqa: SLF001
    result_processors = tuple(column.type._cached_result_processor(dialect, None) for column in columns)
    return _Plan(sql, tuple(binds), SimpleResultMetaData([column.keyname for column in columns]),
                 result_processors if any(result_processors) else None)


def execute_select(session: InlineSession, statement: Any, params: Mapping[str, Any] | None) -> Result[Any] | None:
    """Run `statement` (a Core SELECT) with `params` on SQLite's connection of `session`'s transaction; None when
    SQLAlchemy must run it instead."""
    global statements_run  # noqa: PLW0603 - a counter for tests
    if type(statement) is not Select:
        return None
    bind = session.sync_session
    if bind.dispatch.before_cursor_execute:
        return None  # someone watches the statements: let them see this one
    dialect = bind.dialect
    entry = _statements.get(statement)
    if entry is None:
        # the first time, SQLAlchemy runs it (from its cache of compiled forms): a statement built per call is
        # never seen again, and compiling it here every time would cost more than it saves
        _statements[statement] = _SEEN_ONCE
        return None
    if entry is _SEEN_ONCE:
        entry = _statements[statement] = _prepare(statement, dialect) or _NOT_HERE
    if entry is _NOT_HERE:
        return None
    given = params or {}
    lists = [given.get(name) for name in entry.expanding]
    if any(type(values) not in (list, tuple) for values in lists):
        return None  # a list missing, or another collection: SQLAlchemy's way (or its error)
    lengths = tuple(len(values) for values in lists)  # type: ignore[arg-type]
    if 0 in lengths:
        return None  # an empty `IN`: SQLAlchemy renders it its own way
    plan = entry.plans.get(lengths)
    if plan is None:
        plan = entry.plans[lengths] = _plan(entry, lengths, dialect)
    # a value the statement holds itself (`status == "stocked"`), or a default: as SQLAlchemy would bind it
    values = given if entry.names <= given.keys() else entry.compiled.construct_params(given)
    parameters = []
    for name, index, process in plan.binds:
        value = values[name] if index < 0 else values[name][index]
        parameters.append(value if process is None or value is None else process(value))
    from backflush_shared.persistence.fast_insert import raw_connection  # it imports the session's module

    try:
        rows = raw_connection(session).execute(plan.sql, parameters).fetchall()
    except sqlite3.Error:
        # SQLAlchemy runs it again (a read changes nothing) and raises the error its way, which callers catch
        return None
    statements_run += 1
    if plan.processors is not None:
        pairs = plan.processors
        rows = [tuple([value if process is None or value is None else process(value)
                       for process, value in zip(pairs, row, strict=True)]) for row in rows]
    return IteratorResult(plan.metadata, iter(rows))


class WriteResult:
    """What callers read of an UPDATE's result: how many rows it changed (a conditional write checks it)."""

    __slots__ = ("rowcount",)

    def __init__(self, rowcount: int) -> None:
        self.rowcount = rowcount


#: UPDATE statement object -> the keys its parameters name (its SET clause) -> what is known of it
_updates: weakref.WeakKeyDictionary[Update, dict[frozenset[str], _Statement]] = weakref.WeakKeyDictionary()


def execute_update(session: InlineSession, statement: Any, params: Any) -> WriteResult | None:
    """Run `statement` (a Core UPDATE, SET from the parameters' keys) for each of `params` (a dict or a list of
    dicts with the same keys) on SQLite's connection, as one `executemany`; None when SQLAlchemy must run it."""
    global statements_run  # noqa: PLW0603 - a counter for tests
    if type(statement) is not Update or statement._returning:  # noqa: SLF001
        return None
    rows = [params] if type(params) is dict else params
    if type(rows) is not list or not rows or type(rows[0]) is not dict:
        return None
    keys = rows[0].keys()
    if any(type(row) is not dict or row.keys() != keys for row in rows):
        return None
    bind = session.sync_session
    if bind.dispatch.before_cursor_execute:
        return None  # someone watches the statements: let them see this one
    shapes = _updates.get(statement)
    if shapes is None:
        _updates[statement] = {}  # the first time, SQLAlchemy's (see execute_select)
        return None
    shape = frozenset(keys)
    entry = shapes.get(shape)
    if entry is None:
        entry = shapes[shape] = _prepare(statement, bind.dialect, list(keys)) or _NOT_HERE
    if entry is _NOT_HERE or (entry.expanding and len(rows) > 1):
        return None
    if not entry.names <= keys:  # a value the statement holds itself (`status == "waiting"`), as SQLAlchemy binds it
        rows = [entry.compiled.construct_params(row) for row in rows]
    lists = [rows[0][name] for name in entry.expanding]
    if any(type(values) not in (list, tuple) or not values for values in lists):
        return None
    lengths = tuple(len(values) for values in lists)
    plan = entry.plans.get(lengths)
    if plan is None:
        plan = entry.plans[lengths] = _plan(entry, lengths, bind.dialect)
    parameters = [[value if process is None or value is None else process(value)
                   for value, process in ((row[name] if index < 0 else row[name][index], process)
                                          for name, index, process in plan.binds)] for row in rows]
    from backflush_shared.persistence.fast_insert import raw_connection

    raw = raw_connection(session)
    try:
        cursor = raw.executemany(plan.sql, parameters) if len(parameters) > 1 else raw.execute(plan.sql, parameters[0])
    except sqlite3.Error as error:
        # not run again (an executemany may have changed some rows): SQLAlchemy's error for it, as callers expect
        raise DBAPIError.instance(plan.sql, parameters, error, sqlite3.Error, dialect=bind.dialect) from error
    statements_run += 1
    return WriteResult(cursor.rowcount)
