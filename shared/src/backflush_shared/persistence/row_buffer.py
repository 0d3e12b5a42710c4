"""Rows a transaction appends and never reads back while it runs (an order's history): inserted at its commit.

A statement through SQLAlchemy costs about a hundred times what SQLite takes to run it, so an event that appends
two history rows paid for two statements of its own. Buffered, a batch's rows of one table go in ONE executemany,
run just before the transaction commits (in SQLAlchemy's `before_commit`, which may emit SQL), so whoever opens
the transaction needs to do nothing; a rolled-back transaction drops them with its session. The batch processor
drops what a refused event buffered (`mark` / `discard_after`), as it does with the outbox.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from backflush_shared.persistence.fast_insert import insert_rows_sync

_KEY = "backflush_buffered_rows"


def insert_at_commit(session: AsyncSession, table: Table, row: dict[str, Any]) -> None:
    """Insert `row` into `table` when the transaction commits (in the order rows were buffered, per table)."""
    buffered = session.info.get(_KEY)
    if buffered is None:
        buffered = session.info[_KEY] = []
    buffered.append((table, row))


def mark(session: AsyncSession) -> int:
    return len(session.info.get(_KEY) or ())


def discard_after(session: AsyncSession, position: int) -> None:
    """Drop what was buffered after `position` (the handler that buffered it was refused)."""
    buffered = session.info.get(_KEY)
    if buffered:
        del buffered[position:]


def _insert_buffered(sync_session: Any) -> None:
    if sync_session.in_nested_transaction():
        return  # releasing a savepoint: the rows go with the outer transaction
    buffered = sync_session.info.pop(_KEY, None)
    if not buffered:
        return
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for table, row in buffered:
        by_table.setdefault(table, []).append(row)
    for table, rows in by_table.items():
        if not insert_rows_sync(sync_session, table, rows):  # SQLite: on its connection (see fast_insert.py)
            sync_session.execute(insert(table), rows)


# Once for every session (a no-op for those that buffered nothing): a listener per session cost about 50 µs to
# register, at every batch.
event.listen(Session, "before_commit", _insert_buffered)
