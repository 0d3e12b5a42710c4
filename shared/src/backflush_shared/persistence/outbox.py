"""The transactional outbox: outgoing records are rows written in the transaction that caused them."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Integer, Table, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.contracts.base import Event
from backflush_shared.contracts.envelope import Envelope
from backflush_shared.contracts.topics import TopicNames
from backflush_shared.messaging.codec import ConsumedEvent, EncodedRecord, encode
from backflush_shared.persistence.fast_insert import insert_rows, insert_rows_returning_ids


@dataclass(frozen=True, slots=True)
class PendingRecord:
    id: int
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _headers_to_text(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[name, base64.b64encode(value).decode()] for name, value in headers])


def _headers_from_text(text: str) -> list[tuple[str, bytes]]:
    return [(name, base64.b64decode(value)) for name, value in json.loads(text)]


class Outbox:
    """A service's outbox table: what its transactions write (through an `OutboxBuffer` each) and what the relay
    reads back, sends and marks published."""

    def __init__(self, table: Table, topics: TopicNames, source: str) -> None:
        self.table = table
        self.topics = topics
        self.source = source
        # built once (see Inbox): the relay runs these after every batch
        self._insert = insert(table)
        self._insert_returning = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        self._pending = (select(table.c.id, table.c.topic, table.c.record_key, table.c.value, table.c.headers)
                         .where(table.c.published_at.is_(None)).order_by(table.c.id).limit(bindparam("limit", type_=Integer)))
        self._mark = (update(table).where(table.c.id.in_(bindparam("ids", expanding=True)))
                      .values(published_at=bindparam("now", type_=table.c.published_at.type)))
        self._last_id = select(func.max(table.c.id))
        self._dedupe = select(table.c.id).where(table.c.event_id == bindparam("event_id"))

    def buffer(self, session: AsyncSession) -> OutboxBuffer:
        """What one transaction (`session`) writes to this outbox, kept until its `flush`."""
        return OutboxBuffer(self, session)

    async def pending(self, session: AsyncSession, limit: int) -> list[PendingRecord]:
        rows = (await session.execute(self._pending, {"limit": limit})).all()
        return [PendingRecord(row.id, row.topic, row.record_key, row.value, _headers_from_text(row.headers)) for row in rows]

    async def mark_published(self, session: AsyncSession, ids: Sequence[int]) -> None:
        now = datetime.now(UTC)
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            await session.execute(self._mark, {"ids": chunk, "now": now})

    async def last_id(self, session: AsyncSession) -> int | None:
        """The highest id in the table (published or not), None when it is empty."""
        return (await session.execute(self._last_id)).scalar_one_or_none()

    async def count_unpublished(self, session: AsyncSession) -> int:
        return int(
            (await session.execute(select(func.count()).where(self.table.c.published_at.is_(None)))).scalar_one()
        )


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode(errors="replace")
    return None


class OutboxBuffer:
    """The records one transaction writes to the outbox, kept in memory and written in one statement by `flush`.

    Whoever opens the transaction flushes before it commits (the batch processor does, for its unit of work);
    what a refused event emitted is dropped with `discard_after`.
    """

    def __init__(self, outbox: Outbox, session: AsyncSession) -> None:
        self.outbox = outbox
        self.session = session
        self._rows: list[dict[str, object]] = []
        #: the buffered records' headers as bytes, in the buffer's order: what the relay sends when handed them
        self._headers: list[Sequence[tuple[str, bytes]]] = []

    async def emit(self, event: Event, *, caused_by: ConsumedEvent | None = None,
                   correlation_id: str | None = None) -> Envelope:
        """Write an event to be published once the surrounding transaction commits."""
        outbox = self.outbox
        envelope = Envelope.new(
            event_type=event.event_type,
            schema_version=event.schema_version,
            # the order an event is about is its correlation id, whatever caused it (a receipt may release many orders)
            correlation_id=correlation_id or event.correlation_key(),
            source=outbox.source,
            causation_id=caused_by.envelope.event_id if caused_by else None,
        )
        await self.add(encode(event, envelope, outbox.topics(event.topic)), envelope)
        return envelope

    async def add(self, record: EncodedRecord, envelope: Envelope | None = None, *,
                  dedupe_id: str | None = None) -> None:
        """Buffer one record. With `dedupe_id`, a record already written under that id is not written again."""
        now = datetime.now(UTC)
        if dedupe_id is not None:
            if any(row["event_id"] == dedupe_id for row in self._rows):
                return
            exists = (await self.session.execute(self.outbox._dedupe, {"event_id": dedupe_id})).scalar_one_or_none()
            if exists is not None:
                return
        event_id = dedupe_id or (str(envelope.event_id) if envelope else _header(record.headers, "ce_id") or f"raw:{uuid.uuid4().hex}")
        self._headers.append(record.headers)
        self._rows.append(
            dict(
                event_id=event_id,
                event_type=(envelope.event_type if envelope else _header(record.headers, "ce_type") or "unknown")[:120],
                correlation_id=(envelope.correlation_id if envelope else record.key.decode(errors="replace"))[:64],
                topic=record.topic,
                record_key=record.key,
                value=record.value,
                headers=_headers_to_text(record.headers),
                created_at=now,
            )
        )

    def __len__(self) -> int:
        return len(self._rows)

    def discard_after(self, mark: int) -> None:
        """Drop what was buffered after `mark` (`len` then; a handler's savepoint rolled back)."""
        del self._rows[mark:]
        del self._headers[mark:]

    async def flush(self, *, returning: bool = False) -> list[PendingRecord]:
        """Write the buffered records in one statement. With `returning`, also give them back as the relay sends
        them (with their ids, in id order), so that it can send them without reading them back."""
        rows, headers = self._rows, self._headers
        self._rows, self._headers = [], []
        if not rows:
            return []
        outbox, session = self.outbox, self.session
        if not returning:
            await insert_rows(session, outbox.table, rows, outbox._insert)
            return []
        ids = insert_rows_returning_ids(session, outbox.table, rows)
        if ids is None:
            ids = (await session.execute(outbox._insert_returning, rows)).scalars().all()
        return [PendingRecord(id_, row["topic"], row["record_key"], row["value"], list(raw))  # type: ignore[arg-type]
                for id_, row, raw in zip(ids, rows, headers, strict=True)]
