"""Who may change a shared row: locks and conflicts when several instances share one PostgreSQL database.

SQLite has one writer per file (`Database.transaction` queues this process's transactions, `BEGIN IMMEDIATE`
every other's), so everything here is a no-op there. On PostgreSQL at READ COMMITTED two transactions may read
the same rows and both write what they decided from them; what several events may change (an item's lots, a rack
location, the parked-flush queue) is changed only under a transaction-scoped advisory lock taken before it is read.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

_TAKEN = "backflush_advisory_locks"

#: PostgreSQL's SQLSTATEs of a transaction that lost a race and may simply run again: a deadlock was broken by
#: aborting it (40P01), or a serializable snapshot could not be kept (40001).
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


class ConcurrentUpdateError(RuntimeError):
    """A conditional write found the row already changed by another transaction: run the batch again.

    Not a `BackflushError` on purpose: it is no refusal of the event, only a lost race, so the processor lets it
    roll the batch back and the service retries it (see `is_retryable_conflict`)."""


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_xact_lock` (the same in every process and every run)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def lock_for_transaction(session: AsyncSession, *names: str) -> None:
    """Hold an advisory lock on each name until the transaction ends (PostgreSQL; nothing on SQLite).

    Names are taken in sorted order, so two transactions locking the same names in one call never deadlock.
    A name this transaction holds costs nothing. PostgreSQL releases a lock taken inside a savepoint when that
    savepoint rolls back (a refused event), so a lock counts as held only while the transaction or savepoint it
    was taken in is still active: the next event of the batch takes it again (taking a held lock again is free,
    they nest)."""
    if not is_postgres(session):
        return
    sync = session.sync_session
    held: dict[str, Any] = session.info.setdefault(_TAKEN, {})  # name -> the (nested) transaction it was taken in
    for name in sorted(set(names)):
        taken_in = held.get(name)
        if taken_in is not None and taken_in.is_active:
            continue
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)})
        held[name] = sync.get_nested_transaction() or sync.get_transaction()


def is_retryable_conflict(error: BaseException) -> bool:
    """A lost race between transactions (deadlock, serialization failure, failed conditional write)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConcurrentUpdateError):
            return True
        if isinstance(current, DBAPIError) and _sqlstate(current.orig) in RETRYABLE_SQLSTATES:
            return True
        if _sqlstate(current) in RETRYABLE_SQLSTATES:
            return True
        current = current.__cause__ or current.__context__
    return False


def _sqlstate(error: Any) -> str | None:
    value = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return value if isinstance(value, str) else None
