"""A consumed Kafka record as the codec reads it, for tests that build one by hand (no broker needed)."""

from __future__ import annotations

from dataclasses import dataclass

from backflush_shared.contracts.base import Event
from backflush_shared.contracts.topics import TopicNames
from backflush_shared.messaging.codec import EncodedRecord, encode
from backflush_shared.messaging.publish import envelope_for, source_for


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @classmethod
    def of(cls, encoded: EncodedRecord, offset: int, partition: int = 0) -> Record:
        """`encoded` as a consumer reads it at `offset` of `partition`."""
        return cls(encoded.topic, partition, offset, encoded.key, encoded.value, list(encoded.headers))

    @classmethod
    def of_event(cls, event: Event, offset: int, topics: TopicNames | None = None) -> Record:
        """`event` as published by its writer (CloudEvents headers, JSON value), read at `offset`."""
        topic = (topics or TopicNames())(event.topic)
        return cls.of(encode(event, envelope_for(event, source_for(event, otherwise="/backflush/tests")), topic),
                      offset)
