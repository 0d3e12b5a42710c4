"""The broker the test suite runs against is a real Apache Kafka 4.x, and the local JVM broker survives a restart."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from backflush_shared.local_kafka import LocalKafka, kafka_version
from support.broker import Broker

pytestmark = pytest.mark.kafka


async def _create_topic(bootstrap_servers: str, partitions: int = 1) -> str:
    topic = f"test-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    return topic


async def _produce(bootstrap_servers: str, topic: str, key: bytes, value: bytes) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, key=key, value=value)
    finally:
        await producer.stop()
    return int(sent.offset)


async def _consume_one(consumer: AIOKafkaConsumer, timeout: float = 30.0) -> ConsumerRecord[bytes, bytes]:
    # The first group on a fresh broker waits for the offsets topic (one GroupCoordinatorNotAvailable, retried by
    # aiokafka): poll until the group has joined and the record arrives, rather than asserting on the first poll.
    async with asyncio.timeout(timeout):
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=1)
            for records in batches.values():
                if records:
                    return records[0]


async def test_round_trip_through_the_session_broker(kafka: Broker) -> None:
    topic = await _create_topic(kafka.bootstrap_servers)
    offset = await _produce(kafka.bootstrap_servers, topic, key=b"order-17", value=b'{"qty": 3}')

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=f"group-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await _consume_one(consumer)
        assert (record.key, record.value, record.offset) == (b"order-17", b'{"qty": 3}', offset)
        await consumer.commit()
        assert await consumer.committed(TopicPartition(topic, 0)) == offset + 1
    finally:
        await consumer.stop()


def test_session_broker_is_kafka_4(kafka: Broker) -> None:
    assert re.match(r"4\.\d+", kafka.version), (
        f"{kafka.describe()}: an external broker's version must be declared in BACKFLUSH_KAFKA_BROKER_VERSION"
    )
    if kafka.kind == "local-jvm":
        assert kafka.version == kafka_version()


async def test_local_broker_keeps_its_data_across_a_restart() -> None:
    broker = LocalKafka()
    await broker.astart()
    try:
        address, pid = broker.bootstrap_servers, broker.pid
        topic = await _create_topic(address)
        await _produce(address, topic, key=b"before", value=b"restart")

        await broker.arestart()
        assert broker.bootstrap_servers == address
        assert broker.pid != pid

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=address,
            group_id=f"group-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            record = await _consume_one(consumer)
            assert (record.key, record.value) == (b"before", b"restart")
        finally:
            await consumer.stop()
    finally:
        await broker.astop()
    assert not broker.is_running()
