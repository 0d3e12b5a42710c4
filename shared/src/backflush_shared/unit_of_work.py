"""The unit of work every use case is applied on: one database transaction and what it keeps until its commit.

The batch processor opens one per batch of records: the session of its transaction, the records it will write
to the outbox (`outgoing`), the rows it appends and never reads back (an order's history, inserted at its commit
in one statement per table), what use cases keep in memory for the transaction (`caches`: a working ledger, the
locations read, the orders locked) and what must run when it commits. Use cases and repositories receive it
explicitly; nothing of theirs lives in the session's `info`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import NamedTuple
from typing import Any

import structlog
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.contracts.base import Event
from backflush_shared.messaging.codec import ConsumedEvent
from backflush_shared.persistence.database import Database
from backflush_shared.persistence.fast_insert import insert_rows
from backflush_shared.persistence.outbox import Outbox, OutboxBuffer

_quiet = structlog.get_logger("backflush.unit_of_work")

#: Run inside the transaction, just before it commits (may read or write through the session).
BeforeCommit = Callable[["UnitOfWork"], Awaitable[None]]
#: Run once the transaction has committed (in memory only: adopting what the transaction made true).
AfterCommit = Callable[["UnitOfWork"], None]


class Mark(NamedTuple):
    """How much a unit of work had buffered before an event: what to keep when that event is refused."""

    outgoing: int
    rows: int


_INSERTS: dict[Table, Any] = {}  # one INSERT statement per table, built once


@dataclass(eq=False)
class UnitOfWork:
    """One transaction: its session, its outbox, what use cases keep for it, and the event being applied."""

    session: AsyncSession
    #: where emitted events go (None for a unit of work that only reads, e.g. a report's)
    outbox: Outbox | None = None
    #: what use cases and repositories keep in memory for this transaction, by key; dropped when a refused
    #: event's savepoint rolls back (what was kept may hold its effects), so that they read it again
    caches: dict[str, Any] = field(default_factory=dict)
    #: the event being applied, as consumed (its envelope is what emitted events are caused by)
    consumed: ConsumedEvent | None = None
    log: Any = _quiet
    _before_commit: dict[str, BeforeCommit] = field(default_factory=dict)
    _after_commit: dict[str, AfterCommit] = field(default_factory=dict)
    _rows: list[tuple[Table, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        #: the records this transaction writes to the outbox, in one statement when it commits
        self.outgoing: OutboxBuffer | None = self.outbox.buffer(self.session) if self.outbox is not None else None

    @property
    def event(self) -> Event:
        assert self.consumed is not None, "no event is being applied in this unit of work"
        return self.consumed.event

    def applying(self, consumed: ConsumedEvent, log: Any) -> None:
        """From now on the unit of work applies `consumed` (the processor sets this before each handler)."""
        self.consumed, self.log = consumed, log

    async def emit(self, event: Event, *, correlation_id: str | None = None) -> None:
        """Publish `event` through the outbox, with this transaction, caused by the event being applied."""
        assert self.outgoing is not None, "this unit of work has no outbox: it may only read"
        await self.outgoing.emit(event, caused_by=self.consumed, correlation_id=correlation_id)

    @property
    def defers_writes(self) -> bool:
        """Whether a repository may keep a write in `caches` for a before-commit action to make: not inside a
        savepoint (a batch run with one per event, after a refusal), where a refused event's `forget_caches` would
        drop the other events' waiting writes with its own."""
        return not self.session.in_nested_transaction()

    def insert_at_commit(self, table: Table, row: dict[str, Any]) -> None:
        """Insert `row` into `table` when the unit of work commits (rows nothing reads back before: an order's
        history), with the other rows of its table in one statement, in the order they were added."""
        self._rows.append((table, row))

    def mark(self) -> Mark:
        """What is buffered now: `discard_after` drops what comes after (a refused event's records and rows)."""
        return Mark(len(self.outgoing) if self.outgoing is not None else 0, len(self._rows))

    def discard_after(self, mark: Mark) -> None:
        if self.outgoing is not None:
            self.outgoing.discard_after(mark.outgoing)
        del self._rows[mark.rows:]

    def forget_caches(self) -> None:
        """A savepoint rolled back: what was kept in memory may hold its effects, and what was to run at commit
        may have been registered by them."""
        self.caches.clear()
        self._before_commit.clear()
        self._after_commit.clear()

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A savepoint around one event: when the block raises, what it did is rolled back and the unit of work
        forgets what it kept (which may hold the rolled-back effects), so that the next event reads it again."""
        try:
            async with self.session.begin_nested():
                yield
        except BaseException:
            self.forget_caches()
            raise

    def before_commit(self, key: str, action: BeforeCommit) -> None:
        """Run `action` once, inside the transaction, just before it commits (registering a key again replaces)."""
        self._before_commit[key] = action

    def after_commit(self, key: str, action: AfterCommit) -> None:
        """Run `action` once the transaction has committed (never when it rolls back)."""
        self._after_commit[key] = action

    async def committing(self) -> None:
        """The processor calls this last thing inside the transaction (then flushes `outgoing`)."""
        for action in list(self._before_commit.values()):
            await action(self)
        rows, self._rows = self._rows, []
        by_table: dict[Table, list[dict[str, Any]]] = {}
        for table, row in rows:
            by_table.setdefault(table, []).append(row)
        for table, table_rows in by_table.items():
            statement = _INSERTS.get(table)
            if statement is None:
                statement = _INSERTS[table] = insert(table)
            await insert_rows(self.session, table, table_rows, statement)

    def committed(self) -> None:
        """The processor calls this right after the commit."""
        actions, self._after_commit = list(self._after_commit.values()), {}
        for action in actions:
            action(self)


@asynccontextmanager
async def unit_of_work(database: Database, outbox: Outbox | None = None) -> AsyncIterator[UnitOfWork]:
    """A unit of work of its own transaction, outside the batch processor (commands, tests): what it emitted is
    written to the outbox and its commit actions run, as the processor does for a batch."""
    async with database.transaction() as session:
        uow = UnitOfWork(session, outbox)
        yield uow
        await uow.committing()
        if uow.outgoing is not None:
            await uow.outgoing.flush()
    uow.committed()
