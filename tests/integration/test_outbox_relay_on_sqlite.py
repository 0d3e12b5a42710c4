"""The outbox relay on SQLite: rows handed over by the batch processor leave without being read back; rows nobody
handed over (a command, another process) still leave, from the table, within about a second."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.contracts.topics import TopicNames
from backflush_shared.messaging.admin import ensure_topics
from backflush_shared.messaging.codec import EncodedRecord
from backflush_shared.messaging.relay import OutboxRelay
from backflush_shared.persistence.database import Database
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.persistence.outbox import Outbox, PendingRecord
from backflush_warehouse.app import SERVICE as WAREHOUSE


class CountingOutbox(Outbox):
    """The warehouse's outbox, counting how often the relay reads the table for pending rows."""

    reads = 0

    async def pending(self, session: AsyncSession, limit: int) -> list[PendingRecord]:
        self.reads += 1
        return await super().pending(session, limit)


async def _database(tmp_path: Path) -> Database:
    url = f"sqlite+aiosqlite:///{tmp_path / 'warehouse.db'}"
    await upgrade_to_head_async(url, WAREHOUSE.migrations)
    return Database(url)


def _record(topic: str, n: int) -> EncodedRecord:
    return EncodedRecord(topic, f"k{n % 3}".encode(), f"v{n}".encode(), [("ce_id", f"id-{uuid.uuid4()}".encode())])


async def _write(database: Database, outbox: Outbox, records: list[EncodedRecord], *,
                 returning: bool) -> list[PendingRecord]:
    async with database.transaction() as session:
        outgoing = outbox.buffer(session)
        for record in records:
            await outgoing.add(record)
        return await outgoing.flush(returning=returning)


async def _until_all_marked(database: Database, outbox: Outbox, seconds: float) -> None:
    for _ in range(int(seconds * 20)):
        async with database.reading() as session:
            if await outbox.count_unpublished(session) == 0:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox rows still unpublished after {seconds} s")


async def _read_all(bootstrap_servers: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    values: list[bytes] = []
    try:
        while batch := await consumer.getmany(timeout_ms=2000):
            for records in batch.values():
                values += [record.value for record in records if record.value is not None]
        return values
    finally:
        await consumer.stop()


async def test_rows_handed_over_leave_in_order_once_each_without_a_table_read_per_batch(tmp_path: Path,
                                                                                        kafka: Any) -> None:
    database = await _database(tmp_path)
    outbox = CountingOutbox(WAREHOUSE.outbox_table, TopicNames(""), source="/backflush/warehouse")
    topic = f"relay-handover-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka.bootstrap_servers, [topic], partitions=1, replication=1)
    # no look at the table on a timer during the test (however slow the machine): marks every 10 rows sent, and
    # the rest when it stops
    relay = OutboxRelay(database, outbox, kafka.bootstrap_servers, batch_size=10, idle_poll_seconds=600)
    batches = 40
    stopped = False
    try:
        await relay.start()
        for _ in range(100):  # its first look at the (empty) table, at start
            if outbox.reads:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        for n in range(batches):  # what the processor does at batches of one event: commit, then hand over
            relay.hand_over(await _write(database, outbox, [_record(topic, n)], returning=True))
            await asyncio.sleep(0.01)
        for _ in range(200):
            if relay.published == batches:
                break
            await asyncio.sleep(0.05)
        await relay.stop()
        stopped = True
        await _until_all_marked(database, outbox, 1)
    finally:
        if not stopped:
            await relay.stop()
        await database.close()

    assert await _read_all(kafka.bootstrap_servers, topic) == [f"v{n}".encode() for n in range(batches)]
    # once, at the start; not once per batch
    assert outbox.reads == 1, f"the relay read the table {outbox.reads} times for {batches} batches handed over"


async def test_rows_nobody_handed_over_still_leave_within_about_a_second(tmp_path: Path, kafka: Any) -> None:
    database = await _database(tmp_path)
    outbox = Outbox(WAREHOUSE.outbox_table, TopicNames(""), source="/backflush/warehouse")
    topic = f"relay-unannounced-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka.bootstrap_servers, [topic], partitions=1, replication=1)
    relay = OutboxRelay(database, outbox, kafka.bootstrap_servers)
    try:
        await relay.start()
        relay.hand_over(await _write(database, outbox, [_record(topic, 0)], returning=True))
        await _write(database, outbox, [_record(topic, 1), _record(topic, 2)], returning=False)  # e.g. a command
        relay.hand_over(await _write(database, outbox, [_record(topic, 3)], returning=True))
        await _until_all_marked(database, outbox, 5)
    finally:
        await relay.stop()
        await database.close()

    assert await _read_all(kafka.bootstrap_servers, topic) == [b"v0", b"v1", b"v2", b"v3"]
