"""The consume -> apply -> publish path, one database transaction per batch of records.

For each batch: decode every record (skipping, unread, other services' events); in ONE transaction claim each
event in the inbox, apply it through the service's handler (inside a savepoint only when the batch holds an
event that is refused, see `process`), and write the resulting events (and any dead letters) to the outbox; commit;
only then may the caller commit the Kafka offsets. A redelivered batch finds its events in the inbox and changes
nothing, so exactly-once effects hold without a transaction per message (see PERFORMANCE.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.contracts.base import Event
from backflush_shared.contracts.envelope import HEADER_TYPE
from backflush_shared.contracts.registry import model_for
from backflush_shared.contracts.topics import TopicNames
from backflush_shared.errors import BackflushError
from backflush_shared.messaging.codec import (
    DEFAULT_MAX_VALUE_BYTES,
    ConsumedEvent,
    ConsumerRecordLike,
    RecordOrigin,
    RejectedRecord,
    decode,
    summarise,
)
from backflush_shared.messaging.dead_letter import dead_letter_id, dead_letter_record
from backflush_shared.persistence.database import Database, is_sqlite
from backflush_shared.persistence.fast_insert import insert_rows
from backflush_shared.persistence.inbox import Claim, Inbox, InboxBatch
from backflush_shared.persistence.outbox import Outbox, PendingRecord
from backflush_shared.unit_of_work import Mark, UnitOfWork

log = structlog.get_logger("backflush.processor")

#: Set by `backflush dlq replay` on a record it re-injects: the id of the dead letter it replays. An event this
#: service refused before is applied again only when it arrives with this header (see `Inbox.claim`).
HEADER_REPLAY_OF = "dlq_replay_of"

#: The dead letter's error type of an event our own handler could not turn into valid events: a bug to fix.
INTERNAL_VALIDATION_ERROR = "internal-validation-error"

#: A use case: applies one event (of the type it is registered for) on the batch's unit of work.
Handler = Callable[[UnitOfWork, Any], Awaitable[None]]
#: What a service loads for a whole batch before its handlers run (see `ServiceDefinition.load_batch`): the unit
#: of work and the batch's events that its handlers are about to apply, in batch order.
BatchLoader = Callable[[UnitOfWork, Sequence[ConsumedEvent]], Awaitable[None]]


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    refused: int = 0
    dead_lettered: int = 0
    ignored: int = 0
    wrote_outbox: bool = False
    outcomes: list[str] = field(default_factory=list)


class BatchProcessor:
    def __init__(
        self,
        *,
        service: str,
        database: Database,
        inbox: Inbox,
        outbox: Outbox,
        topics: TopicNames,
        handlers: Mapping[type[Event], Handler],
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        on_committed: Callable[[], None] | None = None,
        hand_over: Callable[[list[PendingRecord]], None] | None = None,
        consumed_ranges: Table | None = None,
        group_of: Callable[[str], str] | None = None,
        load_batch: BatchLoader | None = None,
    ) -> None:
        self.service = service
        self.database = database
        self.inbox = inbox
        self.outbox = outbox
        self.topics = topics
        self.handlers = dict(handlers)
        self.handled_types = {model.event_type for model in handlers}
        self._foreign_types: dict[bytes, bool] = {}  # raw ce_type -> another service's event (see _not_ours)
        self.max_value_bytes = max_value_bytes
        self.on_committed = on_committed
        #: SQLite: given the outbox rows a batch wrote, right after its commit, so the relay need not read them back
        self.hand_over = hand_over if is_sqlite(database.url) else None
        #: where each transaction accounts for the offsets it took care of, and the consumer group of a topic
        self.consumed_ranges = consumed_ranges
        # built once: at batches of one event, building a statement per batch cost more than SQLite running it
        self._insert_ranges = insert(consumed_ranges) if consumed_ranges is not None else None
        self.group_of = group_of
        self.load_batch = load_batch
        #: the accounting of batches holding only other services' events, written with the next transaction
        self.deferred = DeferredRanges()

    async def process(self, records: Sequence[ConsumerRecordLike], *, attempts: int = 1) -> BatchResult:
        """Apply a batch in one transaction. Raises on infrastructure errors (nothing is then committed).

        The batch first runs without a savepoint per event (two statements and SQLAlchemy's nested-transaction
        work for every event, when almost every event is applied). The first refusal rolls that run back, and the
        batch runs again with a savepoint around each handler, so that only the refused event's effects go."""
        try:
            return await self._process(records, attempts=attempts, isolated=False)
        except _RefusedWithoutSavepoint:
            return await self._process(records, attempts=attempts, isolated=True)

    async def _process(self, records: Sequence[ConsumerRecordLike], *, attempts: int,
                       isolated: bool) -> BatchResult:
        result = BatchResult()
        decoded = [None if self._not_ours(record) else
                   decode(record, max_value_bytes=self.max_value_bytes, topics=self.topics) for record in records]
        if decoded and all(item is None for item in decoded) and self.deferred.enabled and (
                self._insert_ranges is None or self.group_of is None or self.deferred.add(records)):
            # only other services' events: nothing to write but their accounting, which waits for the next
            # transaction (their offsets wait with it: see `DeferredRanges`)
            result.ignored = len(records)
            return result
        async with self.database.transaction() as session:
            uow = UnitOfWork(session, self.outbox)
            inbox = await InboxBatch.load(self.inbox, session, [
                item.event_id for item in decoded
                if isinstance(item, ConsumedEvent) and type(item.event) in self.handlers
            ])
            if self.load_batch is not None:
                await self.load_batch(uow, [
                    item for item in decoded if isinstance(item, ConsumedEvent) and type(item.event) in self.handlers
                    and item.event_id not in inbox.known  # a duplicate changes nothing
                ])
            ranges = _Ranges()
            for record, item in zip(records, decoded, strict=True):
                applied, dead_lettered = result.applied, result.dead_lettered
                if item is None:
                    result.ignored += 1  # another service's event on a topic we share, left unread
                elif isinstance(item, RejectedRecord):
                    await self._reject(uow, item, result, attempts)
                else:
                    await self._apply(uow, inbox, item, result, isolated)
                ranges.add(record, result.applied - applied, result.dead_lettered - dead_lettered)
            await uow.committing()
            accounted = await self._account(session, ranges)
            # the batch's inbox rows and outgoing records, each in one statement
            await inbox.flush(session)
            assert uow.outgoing is not None
            written = await uow.outgoing.flush(returning=self.hand_over is not None)
        uow.committed()
        self.deferred.written(accounted)
        self._committed(written, result.wrote_outbox)
        return result

    def _committed(self, written: list[PendingRecord], wrote_outbox: bool) -> None:
        """Right after a commit, in the same step of the event loop (the relay relies on it): the relay learns of
        the rows written, or, where rows are not handed over, that there may be some."""
        if self.hand_over is not None:
            if written:
                self.hand_over(written)
        elif wrote_outbox and self.on_committed is not None:
            self.on_committed()

    def _not_ours(self, record: ConsumerRecordLike) -> bool:
        """A record whose one `ce_type` header names a known event type no handler of ours takes.

        Such a record is ignored whatever else is in it -- an invalid one is its consumer's to dead-letter (see
        `_reject`) -- so its headers and value are not decoded at all: on a shared topic most records are
        another service's, and reading them cost more than applying ours."""
        event_type: bytes | None = None
        for name, value in record.headers or ():
            if name == HEADER_TYPE:
                if event_type is not None:
                    return False  # named twice: decode says which record this is (a dead letter of ours)
                event_type = bytes(value or b"")
        if event_type is None:
            return False
        verdict = self._foreign_types.get(event_type)
        if verdict is None:
            try:
                text = event_type.decode()
            except UnicodeDecodeError:
                verdict = False
            else:
                verdict = text not in self.handled_types and _is_known_type(text)
            if len(self._foreign_types) < 1024:  # arbitrary header values must not grow it without bound
                self._foreign_types[event_type] = verdict
        return verdict

    async def dead_letter_unprocessable(self, record: ConsumerRecordLike, error: BaseException, attempts: int) -> None:
        """Set aside a record whose processing kept failing, so that the partition moves on."""
        origin = RecordOrigin.of(record)
        async with self.database.transaction() as session:
            uow = UnitOfWork(session, self.outbox)
            await self._write_dead_letter(uow, origin, type(error).__name__, str(error) or repr(error), attempts)
            ranges = _Ranges()
            ranges.add(record, 0, 1)
            accounted = await self._account(session, ranges)
            assert uow.outgoing is not None
            written = await uow.outgoing.flush(returning=self.hand_over is not None)
        self.deferred.written(accounted)
        self._committed(written, True)

    async def account_deferred(self) -> None:
        """Write the deferred accounting in a transaction of its own, when none came to carry it."""
        if not self.deferred:
            return
        async with self.database.transaction() as session:
            accounted = await self._account(session, _Ranges())
        self.deferred.written(accounted)

    async def _account(self, session: AsyncSession, ranges: _Ranges) -> list[DeferredRange]:
        """One row per partition of what this transaction took care of: `backflush audit` finds lost offsets.

        The deferred ranges go with it; returned, so that they are dropped once this transaction committed."""
        deferred = self.deferred.pending()
        if self._insert_ranges is None or self.group_of is None or not (ranges.by_partition or deferred):
            return []
        now = datetime.now(UTC)
        await insert_rows(session, self.consumed_ranges, [
            {"group_id": self.group_of(topic), "topic": topic, "partition": partition, "first_offset": r.first,
             "last_offset": r.last, "records": r.records, "applied": r.applied, "dead_lettered": r.dead_lettered,
             "recorded_at": now}
            for (topic, partition), r in ranges.by_partition.items()
        ] + [
            {"group_id": self.group_of(r.topic), "topic": r.topic, "partition": r.partition, "first_offset": r.first,
             "last_offset": r.last, "records": r.records, "applied": 0, "dead_lettered": 0, "recorded_at": now}
            for r in deferred
        ], self._insert_ranges)
        return deferred

    async def _apply(self, uow: UnitOfWork, inbox: InboxBatch, consumed: ConsumedEvent,
                     result: BatchResult, isolated: bool = True) -> None:
        session = uow.session
        handler = self.handlers.get(type(consumed.event))
        if handler is None:
            result.ignored += 1  # another service's event on a topic we share
            return
        event_log = log.bind(order_id=consumed.envelope.correlation_id, event_id=consumed.event_id,
                             event_type=consumed.envelope.event_type)
        replay_of = _header(consumed.origin.headers, HEADER_REPLAY_OF)
        claim = await inbox.claim(session, consumed, retry_refused=replay_of is not None)
        if claim is Claim.RETRY:
            event_log.info("refused event replayed from its dead letter: applying it again", replay_of=replay_of)
        if claim is Claim.DUPLICATE:
            result.duplicates += 1
            event_log.info("duplicate event skipped")
            return
        if claim is Claim.CONFLICT:
            event_log.warning("event id reused with different content: dead-lettered")
            await self._write_dead_letter(
                uow, consumed.origin, "event-id-conflict",
                f"event id {consumed.envelope.event_id} was already processed with different content", 1,
            )
            result.dead_lettered += 1
            result.wrote_outbox = True
            return
        before = uow.mark()
        uow.applying(consumed, event_log)
        if not isolated:
            try:
                await handler(uow, consumed.event)
            except (BackflushError, ValidationError) as refusal:
                # its effects so far are in the transaction with the batch's: only a rollback removes them
                raise _RefusedWithoutSavepoint from refusal
            result.applied += 1
            result.wrote_outbox = True
            return
        try:
            async with uow.savepoint():
                await handler(uow, consumed.event)
        except BackflushError as refusal:
            event_log.warning("event refused", error_type=type(refusal).__name__, reason=str(refusal))
            await self._refuse(uow, inbox, consumed, result, before, type(refusal).__name__, str(refusal))
            return
        except ValidationError as defect:
            # Our own code built an invalid event (or value): a defect that fails the same way on every attempt,
            # so it is refused loudly at once instead of retried as if the database had hiccupped.
            reason = summarise(defect)
            event_log.error("event refused: our own code failed validation", error_type=INTERNAL_VALIDATION_ERROR,
                            reason=reason, model=defect.title)
            await self._refuse(uow, inbox, consumed, result, before, INTERNAL_VALIDATION_ERROR,
                               f"{defect.title}: {reason}")
            return
        result.applied += 1
        result.wrote_outbox = True  # handlers usually emit; a spare wake-up costs one empty query

    async def _refuse(self, uow: UnitOfWork, inbox: InboxBatch, consumed: ConsumedEvent, result: BatchResult,
                      before: Mark, error_type: str, reason: str) -> None:
        # The handler's effects rolled back with its savepoint (and the unit of work forgot what it kept); what it
        # emitted and buffered goes too. The inbox keeps the event as refused, so a redelivery is not refused twice.
        uow.discard_after(before)
        await inbox.set_outcome(uow.session, consumed, "refused")
        await self._write_dead_letter(uow, consumed.origin, error_type, reason, 1)
        result.refused += 1
        result.dead_lettered += 1
        result.wrote_outbox = True

    async def _reject(self, uow: UnitOfWork, rejected: RejectedRecord, result: BatchResult, attempts: int) -> None:
        # An invalid event of a type that only other services handle is theirs to dead-letter, not ours.
        if rejected.event_type and rejected.event_type not in self.handled_types and _is_known_type(rejected.event_type):
            result.ignored += 1
            return
        log.warning("unreadable record dead-lettered", topic=rejected.origin.topic, partition=rejected.origin.partition,
                    offset=rejected.origin.offset, error_type=rejected.error_type, reason=rejected.reason,
                    event_id=rejected.event_id)
        await self._write_dead_letter(uow, rejected.origin, rejected.error_type, rejected.reason, attempts)
        result.dead_lettered += 1
        result.wrote_outbox = True

    async def _write_dead_letter(self, uow: UnitOfWork, origin: RecordOrigin, error_type: str, reason: str,
                                 attempts: int) -> None:
        record = dead_letter_record(self.topics, origin, error_type=error_type, reason=reason,
                                    failed_by=self.service, attempts=attempts)
        assert uow.outgoing is not None
        await uow.outgoing.add(record, dedupe_id=dead_letter_id(self.service, origin))


class _RefusedWithoutSavepoint(Exception):
    """A handler refused an event in a batch run without savepoints: roll the run back, run it with them."""


@dataclass
class _Range:
    first: int
    last: int
    records: int = 0
    applied: int = 0
    dead_lettered: int = 0


@dataclass
class _Ranges:
    by_partition: dict[tuple[str, int], _Range] = field(default_factory=dict)

    def add(self, record: ConsumerRecordLike, applied: int, dead_lettered: int) -> None:
        found = self.by_partition.setdefault((record.topic, record.partition), _Range(record.offset, record.offset))
        found.first, found.last = min(found.first, record.offset), max(found.last, record.offset)
        found.records += 1
        found.applied += applied
        found.dead_lettered += dead_lettered


@dataclass(frozen=True)
class DeferredRange:
    """Consecutive offsets of one partition, all other services' events, not yet accounted in the database."""

    topic: str
    partition: int
    first: int
    last: int
    records: int


class DeferredRanges:
    """The accounting of batches that hold only other services' events, kept until a transaction writes it.

    Such a batch changes nothing, so it opens no transaction: its range rides along with the next transaction of
    the service (or the offset timer's, see `OffsetCommits`). Until that commits, `floor` holds the partition's
    Kafka commit back to the range's first offset, so that a crash loses nothing the audit would miss: the
    records are read again and ignored again. A range is frozen once made (a batch that follows on replaces it),
    so a transaction that wrote one drops exactly what it wrote, and a later extension is written again (an
    overlap the audit accepts)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], DeferredRange] = {}
        #: off at shutdown: every batch then accounts for itself
        self.enabled = True

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, records: Sequence[ConsumerRecordLike]) -> bool:
        """Defer these records' accounting; False (and nothing deferred) when a partition's records do not
        follow on from its deferred range (a rewind, a rebalance): the batch then runs a transaction as ever."""
        pending = dict(self._pending)
        for record in records:
            key = (record.topic, record.partition)
            found = pending.get(key)
            if found is None:
                pending[key] = DeferredRange(record.topic, record.partition, record.offset, record.offset, 1)
            elif record.offset == found.last + 1:
                pending[key] = replace(found, last=record.offset, records=found.records + 1)
            else:
                return False
        self._pending = pending
        return True

    def pending(self) -> list[DeferredRange]:
        return list(self._pending.values())

    def written(self, ranges: Sequence[DeferredRange]) -> None:
        """These ranges are in the database now (unless one was extended since: the extension stays)."""
        for written in ranges:
            key = (written.topic, written.partition)
            if self._pending.get(key) is written:
                del self._pending[key]

    def floor(self, topic: str, partition: int) -> int | None:
        """The partition's first offset not yet accounted in the database, if it has one."""
        found = self._pending.get((topic, partition))
        return found.first if found is not None else None


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode(errors="replace")
    return None


def _is_known_type(event_type: str) -> bool:
    return any(model_for(event_type, version) for version in range(1, 10))
