"""Reading what is on a topic, for assertions."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from backflush_shared.messaging.security import KafkaSecurity


@dataclass(frozen=True)
class Record:
    topic: str
    key: str | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def event_type(self) -> str | None:
        return self.headers.get("ce_type")


async def read_topic(bootstrap_servers: str, topic: str, *, until: int = 1, timeout: float = 30.0,
                     key: str | None = None) -> list[Record]:
    """Every record on `topic` from the start, waiting until at least `until` (matching `key`) are there."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                for r in partition_records:
                    records.append(Record(r.topic, r.key.decode(errors="replace") if r.key else None, r.value,
                                          {k: v.decode(errors="replace") for k, v in (r.headers or ())}))
            matching = [r for r in records if key is None or r.key == key]
            if len(matching) >= until:
                # one more short poll so that records published together arrive together
                await asyncio.sleep(0.3)
                for partition_records in (await consumer.getmany(timeout_ms=300)).values():
                    for r in partition_records:
                        records.append(Record(r.topic, r.key.decode(errors="replace") if r.key else None, r.value,
                                              {k: v.decode(errors="replace") for k, v in (r.headers or ())}))
                break
    finally:
        await consumer.stop()
    return [r for r in records if key is None or r.key == key]


async def read_to_end(bootstrap_servers: str, topic: str, *, timeout: float = 60.0,
                      security: KafkaSecurity | None = None) -> list[Record]:
    """Every record on `topic` up to its end offsets as they are now: all of them, not what arrived in time.
    `security`: a secure broker's client settings (None: plaintext)."""
    options = security.kafka_options() if security is not None else {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
                                **options)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within {timeout:.0f} s")
            for partition_records in (await consumer.getmany(timeout_ms=500)).values():
                records += [Record(r.topic, r.key.decode(errors="replace") if r.key else None, r.value,
                                   {k: v.decode(errors="replace") for k, v in (r.headers or ())})
                            for r in partition_records]
        return records
    finally:
        await consumer.stop()
