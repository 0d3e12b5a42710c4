"""Between events and Kafka records: encoding for the outbox and the command line, decoding for consumers.

Decoding never raises: a record is either a `ConsumedEvent` or a `RejectedRecord` with the reason, so that one
bad record in a batch is dead-lettered while the rest of the batch is applied.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from backflush_shared.contracts.base import Event
from backflush_shared.contracts.envelope import HEADER_ID, HEADER_TYPE, REQUIRED_HEADERS, Envelope
from backflush_shared.contracts.registry import known_versions, model_for
from backflush_shared.contracts.topics import TopicNames

#: The largest value we accept; bigger records are dead-lettered unread (the broker's default limit is 1 MiB).
DEFAULT_MAX_VALUE_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def encode(event: Event, envelope: Envelope, topic: str) -> EncodedRecord:
    return EncodedRecord(
        topic=topic,
        key=event.record_key().encode(),
        value=event.wire_json(),
        headers=envelope.to_headers(),
    )


class ConsumerRecordLike(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Any  # a sequence of (name, bytes) pairs


@dataclass(frozen=True, slots=True)
class RecordOrigin:
    """Where a record was read, for dead letters and logs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, record: ConsumerRecordLike) -> RecordOrigin:
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            # a list built in place, and bytes kept as they are (aiokafka's are): a generator copying each value
            # cost more per record than the rest of this method
            headers=tuple([(name, value if value.__class__ is bytes else bytes(value or b""))
                           for name, value in (record.headers or ())]),
        )


@dataclass(frozen=True, slots=True)
class ConsumedEvent:
    envelope: Envelope
    event: Event
    origin: RecordOrigin
    content_hash: str
    #: `str(envelope.event_id)`, formed once: the inbox, the logs and the history each asked for it (a UUID formats
    #: itself anew each time, in Python)
    event_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "event_id", str(self.envelope.event_id))

    @property
    def order_id(self) -> str:
        return self.envelope.correlation_id


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    origin: RecordOrigin
    error_type: str
    reason: str
    event_id: str | None = None
    event_type: str | None = None


def content_hash(event_type: str, schema_version: int, value: bytes) -> str:
    """What makes two deliveries of one event id the same event: its type, version and value."""
    digest = hashlib.sha256()
    digest.update(f"{event_type}\x00{schema_version}\x00".encode())
    digest.update(value)
    return digest.hexdigest()


#: Every reason `decode` gives for refusing a record: each is a fault of the record as it was sent (its headers,
#: its value, its schema version, its topic or its source), so reading it again unchanged refuses it again.
READ_ERRORS: frozenset[str] = frozenset({
    "malformed-header", "duplicate-header", "missing-headers", "invalid-envelope", "empty-value", "too-large",
    "unknown-schema-version", "unknown-event-type", "wrong-topic", "source-mismatch", "not-json", "too-deep",
    "invalid-event", "correlation-mismatch",
})


def decode(record: ConsumerRecordLike, *, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
           topics: TopicNames | None = None) -> ConsumedEvent | RejectedRecord:
    """Read one record; with `topics`, an event on a topic other than its own is refused ('wrong-topic'), and one
    on a service's topic whose `ce_source` is not that service's ('source-mismatch')."""
    origin = RecordOrigin.of(record)
    try:  # every record we send: each header once, all UTF-8, told in one comprehension
        headers = {name: raw.decode() for name, raw in origin.headers}
    except UnicodeDecodeError:
        headers = {}
    if len(headers) == len(origin.headers):
        unreadable: list[str] = []
        repeated: list[str] = []
    else:  # which header is unreadable or repeated, for the reason
        headers, unreadable = {}, []
        seen: set[str] = set()
        twice: set[str] = set()  # counted by hand: a Counter per record cost more than the rest of this loop
        for name, raw in origin.headers:
            if name in seen:
                twice.add(name)
            seen.add(name)
            try:
                headers[name] = raw.decode()
            except UnicodeDecodeError:
                unreadable.append(name)
        repeated = sorted(twice)

    # a header read twice or not at all names nobody for sure: its name is then not trusted
    event_id = headers.get(HEADER_ID) if HEADER_ID not in repeated else None
    event_type = headers.get(HEADER_TYPE) if HEADER_TYPE not in repeated else None

    def rejected(error_type: str, reason: str) -> RejectedRecord:
        assert error_type in READ_ERRORS, f"{error_type!r} is missing from READ_ERRORS (dlq replay reads it)"
        return RejectedRecord(origin, error_type, reason, event_id=event_id, event_type=event_type)

    if unreadable:
        return rejected("malformed-header", f"header {unreadable[0]!r} is not UTF-8 text")
    if repeated:
        # which of the two a reader takes is a guess: the last wins in one library, the first in another
        return rejected("duplicate-header", f"header {', '.join(map(repr, repeated))} appears more than once")

    missing = [name for name in REQUIRED_HEADERS if not headers.get(name)]
    if missing:
        return rejected("missing-headers", f"missing CloudEvents headers: {', '.join(missing)}")
    try:
        envelope = Envelope.from_headers(headers)
    except ValidationError as error:
        return rejected("invalid-envelope", summarise(error))

    value = origin.value
    if value is None:
        return rejected("empty-value", "the record has no value")
    if len(value) > max_value_bytes:
        return rejected("too-large", f"the value has {len(value)} bytes, over the limit of {max_value_bytes}")

    model = model_for(envelope.event_type, envelope.schema_version)
    if model is None:
        versions = known_versions(envelope.event_type)
        if versions:
            return rejected(
                "unknown-schema-version",
                f"{envelope.event_type} has no schema version {envelope.schema_version} "
                f"(known: {', '.join(map(str, versions))})",
            )
        return rejected("unknown-event-type", f"unknown event type {envelope.event_type!r}")
    if topics is not None:
        logical = topics.logical(origin.topic)
        if logical is not None and logical is not model.topic:
            return rejected("wrong-topic", f"{envelope.event_type} belongs on {topics(model.topic)!r}, "
                                           f"not on {origin.topic!r}")
        expected = model.topic.writer.source
        if logical is not None and expected is not None and envelope.source != expected:
            # a service's topic has that service as its one writer: a record claiming another source is not what
            # it says it is (a misconfigured or forged publisher), so it is refused, never decided upon
            return rejected("source-mismatch", f"{envelope.event_type} on {origin.topic!r} comes only from "
                                               f"{expected!r}, not from {envelope.source!r}")

    try:
        # parsed and validated in one step, as every valid record is; pydantic's parser takes the same JSON as
        # `json.loads` (the last of a repeated key wins in both), so what it accepts is the same event
        event = model.model_validate_json(value)
    except (ValidationError, RecursionError):
        # refused: read it again the way that tells why (not JSON, nested too deep, or which field is invalid);
        # what `json.loads` and `model_validate` take is taken, should pydantic's own parser ever refuse it
        read = _read_in_steps(model, value)
        if isinstance(read, tuple):
            return rejected(*read)
        event = read
    order_id = getattr(event, "order_id", None)
    if order_id is not None and envelope.correlation_id != str(order_id):
        # the correlation id is what logs, the inbox and the tools file the event under: it must be its order
        return rejected("correlation-mismatch", f"ce_correlationid {envelope.correlation_id!r} is not the "
                                                f"event's order id {order_id!r}")

    return ConsumedEvent(
        envelope=envelope,
        event=event,
        origin=origin,
        content_hash=content_hash(envelope.event_type, envelope.schema_version, value),
    )


def _read_in_steps(model: type[Event], value: bytes) -> Event | tuple[str, str]:
    """`value` parsed, then validated as `model`; or the error type and reason of the step that refused it."""
    try:
        payload = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return "not-json", f"the value is not JSON: {error}"
    except RecursionError:
        # the parser recurses once per level: a small record nested thousands deep exhausts the stack
        return "too-deep", "the value is JSON nested too deep to read"
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        return "invalid-event", f"{model.__name__}: {summarise(error)}"
    except RecursionError:
        return "too-deep", "the value is JSON nested too deep to read"


def summarise(error: ValidationError) -> str:
    parts = []
    for issue in error.errors(include_url=False)[:5]:
        location = ".".join(str(part) for part in issue["loc"]) or "(value)"
        parts.append(f"{location}: {issue['msg']}")
    return "; ".join(parts)
