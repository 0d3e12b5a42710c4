"""The outbox relay: publishes committed outbox rows, in order, with an idempotent producer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence

import structlog
from aiokafka import AIOKafkaProducer
from sqlalchemy import text

from backflush_shared.messaging.security import KafkaSecurity, kafka_options
from backflush_shared.persistence.database import Database, is_sqlite
from backflush_shared.persistence.locks import advisory_key
from backflush_shared.persistence.outbox import Outbox, PendingRecord

log = structlog.get_logger("backflush.relay")

#: How soon a relay looks again when another instance's relay held the outbox (its own rows may be pending).
BUSY_POLL_SECONDS = 0.05


class OutboxRelay:
    """Sends pending rows as one pipelined burst, awaits every acknowledgement, then marks them published.

    A crash between the broker's acknowledgement and the mark publishes the rows again on restart: consumers'
    inboxes make that harmless (same event id, same content), so nothing committed ever stays unpublished.

    On SQLite (one process per database file) the batch processor hands the rows it just committed to the relay
    (`hand_over`), which sends them without reading them back and marks what it sent at most once a second (or
    every `batch_size` rows), in one transaction: at batches of one event, a read and a marking transaction per
    batch cost the service more than the batch itself. Everything else -- start-up, a failed burst, rows written
    by anything that does not hand them over (`wake`), and the once-a-second look -- reads the pending rows from
    the table as before, after marking what was sent, so a row is never sent twice by one relay's own doing.
    """

    def __init__(self, database: Database, outbox: Outbox, bootstrap_servers: str, *, batch_size: int = 500,
                 idle_poll_seconds: float = 1.0, client_id: str = "backflush-relay",
                 security: KafkaSecurity | None = None) -> None:
        self.database = database
        self.outbox = outbox
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.bootstrap_servers = bootstrap_servers
        self.client_id = client_id
        self.security = security
        self._producer: AIOKafkaProducer | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._busy = False  # the last pass found another instance's relay publishing
        self.published = 0
        # SQLite: rows committed and handed over, not yet sent (in id order); ids sent but not yet marked
        self._handed: deque[PendingRecord] = deque()
        self._sent: list[int] = []
        self._read_table = True  # the next pass reads the table: nothing is known of what is pending there
        self._last_read = 0.0  # time.monotonic() of the last pass that read the table
        self._next_id = 0  # the id the next row handed over must have to be sent without reading the table

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            enable_idempotence=True,  # acks=all, and retries cannot duplicate or reorder a partition's records
            linger_ms=0,  # the burst is already a batch; a lone event must not wait
            max_batch_size=1_048_576,
            request_timeout_ms=30_000,
            **kafka_options(self.security),  # None: the environment's settings
        )

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows, so that they leave at once instead of at the next poll."""
        self._read_table = True  # rows nobody handed over: only the table knows them
        self._wake.set()

    def hand_over(self, records: Sequence[PendingRecord]) -> None:
        """Called right after the commit that wrote `records` (with their ids, in id order), in the same step of
        the event loop, so that they leave at once without being read back; on PostgreSQL, like `wake`."""
        if not is_sqlite(self.database.url):
            self.wake()
            return
        self._handed.extend(records)
        self._wake.set()

    async def start(self) -> None:
        self._producer = self._new_producer()
        await self._producer.start()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=15)
        if self._producer is not None:
            await self._producer.stop()

    async def publish_pending(self) -> int:
        """Publish everything pending now; returns how many records went out."""
        if not is_sqlite(self.database.url):
            return await self._publish_pending_as_leader()
        self._read_table = True
        return await self._publish_sqlite()

    async def _publish_sqlite(self) -> int:
        if time.monotonic() - self._last_read >= self.idle_poll_seconds:
            self._read_table = True  # once a second, whatever was handed over: e.g. a command's rows
        total = 0
        while self._handed and not self._read_table:
            # only rows that follow the last one known, without a gap: a gap is a row nobody handed over (written
            # by a command, or another process), and it must leave first; the table has it, in order
            burst: list[PendingRecord] = []
            while self._handed and len(burst) < self.batch_size and self._handed[0].id == self._next_id:
                burst.append(self._handed.popleft())
                self._next_id = burst[-1].id + 1
            if not burst:
                self._read_table = True
                break
            try:
                await self._send(burst)
            except BaseException:
                self._read_table = True  # the burst may be partly sent: the table says what is left
                raise
            self._sent.extend(row.id for row in burst)
            total += len(burst)
            self.published += len(burst)
            if len(self._sent) >= self.batch_size:
                await self._mark_sent()
        if not self._read_table:
            return total
        await self._mark_sent()  # what was sent must not be read back as pending
        self._last_read = time.monotonic()
        while True:
            # Everything handed over so far was committed before this read (a commit and its hand-over happen in
            # one step of the event loop, and SQLite runs inline): the read returns it, so it is dropped here.
            self._handed.clear()
            async with self.database.reading() as session:
                pending = await self.outbox.pending(session, self.batch_size)
                last_id = None if pending else await self.outbox.last_id(session)
            if not pending:
                self._read_table = False
                self._next_id = (last_id or 0) + 1  # the row handed over next must be the one after it
                return total
            await self._send(pending)
            async with self.database.transaction() as session:
                await self.outbox.mark_published(session, [row.id for row in pending])
            total += len(pending)
            self.published += len(pending)

    async def _mark_sent(self) -> None:
        if not self._sent:
            return
        async with self.database.transaction() as session:
            await self.outbox.mark_published(session, self._sent)
        self._sent = []

    async def _publish_pending_as_leader(self) -> int:
        """PostgreSQL, where every instance of the service runs a relay over the same outbox: each burst is read,
        sent and marked in one transaction that holds the outbox's advisory lock, so one relay at a time publishes
        and the others skip (they find nothing pending once it commits). Claiming rows one by one instead (SKIP
        LOCKED) would let two relays send one key's records in parallel bursts, out of order."""
        total = 0
        while True:
            async with self.database.transaction() as session:
                leader = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                                {"key": advisory_key(f"outbox:{self.outbox.table.name}")})).scalar()
                if not leader:
                    self._busy = True  # another relay publishes now; look again soon, its burst may end before ours
                    return total
                pending = await self.outbox.pending(session, self.batch_size)
                if not pending:
                    return total
                await self._send(pending)
                await self.outbox.mark_published(session, [row.id for row in pending])
            total += len(pending)
            self.published += len(pending)

    async def _send(self, pending: list[PendingRecord]) -> None:
        assert self._producer is not None, "start() the relay first"
        acknowledgements = [
            await self._producer.send(row.topic, value=row.value, key=row.key, headers=row.headers)
            for row in pending
        ]
        await asyncio.gather(*acknowledgements)

    async def _run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()  # before reading, so a commit landing during the burst triggers another pass
            self._busy = False
            try:
                if is_sqlite(self.database.url):
                    await self._publish_sqlite()
                else:
                    await self._publish_pending_as_leader()
                failures = 0
            except Exception as error:  # noqa: BLE001 - the relay must outlive a broker or database hiccup
                failures += 1
                delay = min(0.2 * 2**failures, 5.0)
                log.warning("outbox relay failed; retrying", error=str(error), error_type=type(error).__name__,
                            retry_in_seconds=delay)
                await asyncio.sleep(delay)
                continue
            if self._stopping:
                with contextlib.suppress(Exception):  # not marked: published again at the next start, harmless
                    await self._mark_sent()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(),
                                       timeout=BUSY_POLL_SECONDS if self._busy else self.idle_poll_seconds)
