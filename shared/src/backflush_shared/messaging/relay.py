"""The outbox relay: publishes committed outbox rows, in order, with an idempotent producer."""

from __future__ import annotations

import asyncio
import contextlib

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
        total = 0
        while True:
            async with self.database.reading() as session:
                pending = await self.outbox.pending(session, self.batch_size)
            if not pending:
                return total
            await self._send(pending)
            async with self.database.transaction() as session:
                await self.outbox.mark_published(session, [row.id for row in pending])
            total += len(pending)
            self.published += len(pending)

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
                await self.publish_pending()
                failures = 0
            except Exception as error:  # noqa: BLE001 - the relay must outlive a broker or database hiccup
                failures += 1
                delay = min(0.2 * 2**failures, 5.0)
                log.warning("outbox relay failed; retrying", error=str(error), error_type=type(error).__name__,
                            retry_in_seconds=delay)
                await asyncio.sleep(delay)
                continue
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(),
                                       timeout=BUSY_POLL_SECONDS if self._busy else self.idle_poll_seconds)
