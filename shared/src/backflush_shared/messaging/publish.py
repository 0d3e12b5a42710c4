"""Publishing events from outside a service (the command line, tests, the demo): no outbox, one producer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from backflush_shared.contracts.base import Event
from backflush_shared.contracts.envelope import Envelope
from backflush_shared.contracts.topics import TopicNames
from backflush_shared.messaging.codec import EncodedRecord, encode
from backflush_shared.messaging.security import KafkaSecurity, kafka_options


def source_for(event: Event, *, otherwise: str) -> str:
    """The source `event` must carry: its topic's writer's when that is a service (consumers refuse any other,
    'source-mismatch'), else `otherwise` (an intake takes any source)."""
    return event.topic.writer.source or otherwise


def envelope_for(event: Event, source: str) -> Envelope:
    return Envelope.new(event_type=event.event_type, schema_version=event.schema_version,
                        correlation_id=event.correlation_key(), source=source)


class EventPublisher:
    """An idempotent producer for events that start a flow (orders placed, receipts, signatures)."""

    def __init__(self, bootstrap_servers: str, *, topic_prefix: str = "", source: str = "/backflush/cli",
                 security: KafkaSecurity | None = None) -> None:
        self.topics = TopicNames(topic_prefix)
        self.source = source
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True, linger_ms=0,
                                          **kafka_options(security))  # None: the environment's settings

    async def __aenter__(self) -> EventPublisher:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()  # refused (e.g. not authorized): leave no half-started producer behind
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self._producer.stop()

    async def publish(self, events: Sequence[Event]) -> list[Envelope]:
        envelopes = [envelope_for(event, self.source) for event in events]
        records = [encode(event, envelope, self.topics(event.topic)) for event, envelope in zip(events, envelopes)]
        await self.send_records(records)
        return envelopes

    async def send_records(self, records: Sequence[EncodedRecord]) -> None:
        acknowledgements = [
            await self._producer.send(record.topic, value=record.value, key=record.key, headers=record.headers)
            for record in records
        ]
        await asyncio.gather(*acknowledgements)


async def publish(bootstrap_servers: str, events: Sequence[Event], *, topic_prefix: str = "",
                  source: str = "/backflush/cli", security: KafkaSecurity | None = None) -> list[Envelope]:
    async with EventPublisher(bootstrap_servers, topic_prefix=topic_prefix, source=source,
                              security=security) as publisher:
        return await publisher.publish(events)
