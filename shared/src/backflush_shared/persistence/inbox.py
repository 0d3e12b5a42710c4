"""The idempotent inbox: an event's id is recorded in the same transaction as its effect."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.messaging.codec import ConsumedEvent


class Claim(StrEnum):
    NEW = "new"  # never seen: apply it
    DUPLICATE = "duplicate"  # seen with the same content: a redelivery, skip it
    CONFLICT = "conflict"  # seen with other content under the same id: refuse it
    RETRY = "retry"  # refused before, replayed from its dead letter: apply it again


class Inbox:
    def __init__(self, table: Table) -> None:
        self.table = table

    async def claim(self, session: AsyncSession, consumed: ConsumedEvent, outcome: str = "applied", *,
                    retry_refused: bool = False) -> Claim:
        """Record the event as processed unless it already was; tell which case it is.

        With `retry_refused` (a record replayed from its dead letter), an event this service refused before is
        claimed again: its row now points at the replayed record, and the caller applies it once more. An event
        applied before stays a duplicate, so a replay never applies anything twice.
        """
        event_id = str(consumed.envelope.event_id)
        known = (
            await session.execute(
                select(self.table.c.content_hash, self.table.c.outcome).where(self.table.c.event_id == event_id)
            )
        ).one_or_none()
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
        await session.execute(
            insert(self.table).values(
                event_id=event_id,
                event_type=consumed.envelope.event_type,
                content_hash=consumed.content_hash,
                correlation_id=consumed.envelope.correlation_id[:64],
                topic=consumed.origin.topic,
                partition=consumed.origin.partition,
                offset=consumed.origin.offset,
                outcome=outcome,
                processed_at=datetime.now(UTC),
            )
        )
        return Claim.NEW

    async def set_outcome(self, session: AsyncSession, consumed: ConsumedEvent, outcome: str) -> None:
        await session.execute(
            self.table.update().where(self.table.c.event_id == str(consumed.envelope.event_id)).values(outcome=outcome)
        )
