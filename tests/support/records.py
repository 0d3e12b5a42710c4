"""Hand-made Kafka records (good, broken, reused ids), dead letters, service logs and the command line, for tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from backflush_shared.contracts.base import Event
from backflush_shared.contracts.envelope import Envelope
from backflush_shared.local_stack import LocalStack
from backflush_shared.messaging.codec import EncodedRecord, encode
from backflush_shared.messaging.publish import EventPublisher, source_for
from support.stack import eventually
from support.topics import Record, read_topic


def record_of(
    stack: LocalStack,
    event: Event,
    *,
    value: bytes | None = None,
    key: str | None = None,
    event_id: uuid.UUID | None = None,
    header_changes: Mapping[str, str] | None = None,
    drop_headers: Iterable[str] = (),
    no_headers: bool = False,
) -> EncodedRecord:
    """`event` as the record a well-behaved publisher would send, then broken as asked.

    `value` replaces the JSON value; `event_id` fixes the envelope's id (to reuse one); `header_changes` replaces
    header values; `drop_headers` leaves headers out; `no_headers` sends none at all.
    """
    envelope = Envelope.new(event_type=event.event_type, schema_version=event.schema_version,
                            correlation_id=event.correlation_key(),
                            source=source_for(event, otherwise="/backflush/tests"))
    if event_id is not None:
        envelope = envelope.model_copy(update={"event_id": event_id})
    encoded = encode(event, envelope, f"{stack.topic_prefix}{event.topic.value}")
    changes = dict(header_changes or {})
    dropped = set(drop_headers)
    headers = [] if no_headers else [
        (name, changes[name].encode() if name in changes else raw)
        for name, raw in encoded.headers if name not in dropped
    ]
    return EncodedRecord(encoded.topic, (key or event.record_key()).encode(),
                         encoded.value if value is None else value, headers)


def json_with(event: Event, **changes: Any) -> bytes:
    """The event's JSON value with some fields changed (None removes a field): what a buggy publisher sends."""
    data = event.model_dump(mode="json")
    for name, change in changes.items():
        if change is None:
            data.pop(name, None)
        else:
            data[name] = change
    return json.dumps(data).encode()


async def send(stack: LocalStack, *records: EncodedRecord) -> None:
    async with EventPublisher(stack.bootstrap_servers, topic_prefix=stack.topic_prefix) as publisher:
        await publisher.send_records(list(records))


async def dead_letters(stack: LocalStack, topic: str, *, key: str, until: int = 1) -> list[dict[str, str]]:
    """The headers of the dead letters of `key` on `topic`'s dead-letter twin, waiting for `until` of them."""
    records = await read_topic(stack.bootstrap_servers, f"{stack.topic_prefix}{topic}.dlq", key=key, until=until)
    return [r.headers for r in records]


async def dead_letters_by_service(stack: LocalStack, topic: str, *, key: str,
                                  services: Iterable[str]) -> dict[str, dict[str, str]]:
    """One dead letter of `key` per service in `services`, by service; fails if a service's is missing."""
    wanted = sorted(services)
    letters = await dead_letters(stack, topic, key=key, until=len(wanted))
    by_service = {h["dlq_failed_by"]: h for h in letters}
    assert sorted(by_service) == wanted, f"{key}: dead-lettered by {sorted(by_service)}, expected {wanted}"
    return by_service


async def records_on(stack: LocalStack, topic: str, *, key: str, event_type: str, until: int = 1) -> list[Record]:
    """The records of one event type for `key` on `topic` (waits until `until` of that type are there)."""
    async def found() -> list[Record] | None:
        records = await read_topic(stack.bootstrap_servers, f"{stack.topic_prefix}{topic}", key=key, timeout=5)
        matching = [r for r in records if r.event_type == event_type]
        return matching if len(matching) >= until else None
    return await eventually(found, what=f"{until} x {event_type} for {key} on {topic}", stack=stack)


def log_entries(stack: LocalStack, service: str) -> list[dict[str, Any]]:
    """The service's JSON log lines (lines that are not JSON are skipped)."""
    entries = []
    path = stack.processes[service].log_path
    for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


async def wait_logged(stack: LocalStack, service: str, event: str, **fields: Any) -> dict[str, Any]:
    """The first log entry of `service` with this `event` text and these field values, waiting for it."""
    async def found() -> dict[str, Any] | None:
        for entry in log_entries(stack, service):
            if entry.get("event") == event and all(str(entry.get(k)) == str(v) for k, v in fields.items()):
                return entry
        return None
    return await eventually(found, timeout=20, what=f"{service} logging {event!r} with {fields}", stack=stack)


def backflush(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the `backflush` command line in a subprocess, as a person would; a wide terminal for the tables."""
    return subprocess.run(
        [sys.executable, "-m", "backflush_shared", *args],
        env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1", **(env or {})},
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def broker_args(stack: LocalStack) -> list[str]:
    return ["--bootstrap-servers", stack.bootstrap_servers, "--topic-prefix", stack.topic_prefix]


def database_args(stack: LocalStack) -> list[str]:
    return [arg for service in ("manufacturer", "distributor", "warehouse")
            for arg in (f"--{service}-database", stack.database_url(service))]
