"""The idempotent inbox: an event's id is recorded in the same transaction as its effect."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.messaging.codec import ConsumedEvent
from backflush_shared.persistence.fast_insert import insert_rows, select_in


class Claim(StrEnum):
    NEW = "new"  # never seen: apply it
    DUPLICATE = "duplicate"  # seen with the same content: a redelivery, skip it
    CONFLICT = "conflict"  # seen with other content under the same id: refuse it
    RETRY = "retry"  # refused before, replayed from its dead letter: apply it again


class Inbox:
    def __init__(self, table: Table) -> None:
        self.table = table
        # built once: a statement built per call costs SQLAlchemy more than SQLite takes to run it
        self._known = select(table.c.content_hash, table.c.outcome).where(table.c.event_id == bindparam("event_id"))
        self._insert = insert(table)
        self._known_many = select(table.c.event_id, table.c.content_hash, table.c.outcome).where(
            table.c.event_id.in_(bindparam("event_ids", expanding=True)))

    async def claim(self, session: AsyncSession, consumed: ConsumedEvent, outcome: str = "applied", *,
                    retry_refused: bool = False) -> Claim:
        """Record the event as processed unless it already was; tell which case it is.

        With `retry_refused` (a record replayed from its dead letter), an event this service refused before is
        claimed again: its row now points at the replayed record, and the caller applies it once more. An event
        applied before stays a duplicate, so a replay never applies anything twice.
        """
        event_id = consumed.event_id
        known = (await session.execute(self._known, {"event_id": event_id})).one_or_none()
        if known is not None:
            if known.content_hash != consumed.content_hash:
                return Claim.CONFLICT
            if retry_refused and known.outcome == "refused":
                await session.execute(
                    self.table.update().where(self.table.c.event_id == event_id).values(
                        topic=consumed.origin.topic, partition=consumed.origin.partition,
                        offset=consumed.origin.offset, outcome=outcome, processed_at=datetime.now(UTC),
                    )
                )
                return Claim.RETRY
            return Claim.DUPLICATE
        await session.execute(self._insert, dict(
            event_id=event_id,
            event_type=consumed.envelope.event_type,
            content_hash=consumed.content_hash,
            correlation_id=consumed.envelope.correlation_id[:64],
            topic=consumed.origin.topic,
            partition=consumed.origin.partition,
            offset=consumed.origin.offset,
            outcome=outcome,
            processed_at=datetime.now(UTC),
        ))
        return Claim.NEW

    async def set_outcome(self, session: AsyncSession, consumed: ConsumedEvent, outcome: str) -> None:
        await session.execute(
            self.table.update().where(self.table.c.event_id == consumed.event_id).values(outcome=outcome)
        )


class InboxBatch:
    """The inbox decisions of one batch: one query for the ids already known, one insert for the new ones.

    The same rules as `Inbox.claim`, without a round trip per event: within the batch, a second record with an
    id seen earlier in the batch is a duplicate (or a conflict) just as if the first had been committed.
    """

    def __init__(self, inbox: Inbox, known: dict[str, tuple[str, str]]) -> None:
        self.inbox = inbox
        self.known = known  # event id -> (content hash, outcome)
        self.new: dict[str, dict[str, object]] = {}

    @classmethod
    async def load(cls, inbox: Inbox, session: AsyncSession, event_ids: list[str]) -> InboxBatch:
        known: dict[str, tuple[str, str]] = {}
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            raw = select_in(session, inbox.table, ("event_id", "content_hash", "outcome"), "event_id", chunk)
            if raw is not None:  # SQLite: on its connection (see fast_insert.py); the columns are plain text
                known.update({event_id: (content_hash, outcome) for event_id, content_hash, outcome in raw})
                continue
            rows = await session.execute(inbox._known_many, {"event_ids": chunk})
            known.update({row.event_id: (row.content_hash, row.outcome) for row in rows})
        return cls(inbox, known)

    async def claim(self, session: AsyncSession, consumed: ConsumedEvent, *, retry_refused: bool = False) -> Claim:
        event_id = consumed.event_id
        pending = self.new.get(event_id)
        if pending is not None:
            return Claim.DUPLICATE if pending["content_hash"] == consumed.content_hash else Claim.CONFLICT
        if event_id in self.known:
            return await self.inbox.claim(session, consumed, retry_refused=retry_refused)
        self.new[event_id] = {
            "event_id": event_id,
            "event_type": consumed.envelope.event_type,
            "content_hash": consumed.content_hash,
            "correlation_id": consumed.envelope.correlation_id[:64],
            "topic": consumed.origin.topic,
            "partition": consumed.origin.partition,
            "offset": consumed.origin.offset,
            "outcome": "applied",
            "processed_at": datetime.now(UTC),
        }
        return Claim.NEW

    async def set_outcome(self, session: AsyncSession, consumed: ConsumedEvent, outcome: str) -> None:
        pending = self.new.get(consumed.event_id)
        if pending is not None:
            pending["outcome"] = outcome
        else:
            await self.inbox.set_outcome(session, consumed, outcome)

    async def flush(self, session: AsyncSession) -> None:
        if self.new:
            await insert_rows(session, self.inbox.table, list(self.new.values()), self.inbox._insert)
            self.new = {}
