"""The unit of work every use case is applied on: one database transaction and what it keeps until its commit.

The batch processor opens one per batch of records: the session of its transaction, the outbox its events go to,
what use cases keep in memory for the transaction (`caches`: a working ledger, the locations read, the orders
locked) and what must run when it commits. Use cases and repositories receive it explicitly; nothing of theirs
lives in the session's `info`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.contracts.base import Event
from backflush_shared.messaging.codec import ConsumedEvent
from backflush_shared.persistence.database import Database
from backflush_shared.persistence.outbox import Outbox

_quiet = structlog.get_logger("backflush.unit_of_work")

#: Run inside the transaction, just before it commits (may read or write through the session).
BeforeCommit = Callable[["UnitOfWork"], Awaitable[None]]
#: Run once the transaction has committed (in memory only: adopting what the transaction made true).
AfterCommit = Callable[["UnitOfWork"], None]


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

    @property
    def event(self) -> Event:
        assert self.consumed is not None, "no event is being applied in this unit of work"
        return self.consumed.event

    def applying(self, consumed: ConsumedEvent, log: Any) -> None:
        """From now on the unit of work applies `consumed` (the processor sets this before each handler)."""
        self.consumed, self.log = consumed, log

    async def emit(self, event: Event, *, correlation_id: str | None = None) -> None:
        """Publish `event` through the outbox, with this transaction, caused by the event being applied."""
        assert self.outbox is not None, "this unit of work has no outbox: it may only read"
        await self.outbox.emit(self.session, event, caused_by=self.consumed, correlation_id=correlation_id)

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
        """The processor calls this last thing inside the transaction."""
        for action in list(self._before_commit.values()):
            await action(self)

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
        if outbox is not None:
            await outbox.flush(session)
    uow.committed()
