"""Dead letters for people: `backflush dlq list` shows them, `backflush dlq replay` re-injects them.

Both read every `.dlq` topic from its start with no consumer group and commit nothing, so they never disturb the
services or each other.

**Replay rule.** `dlq replay` puts a dead letter's record back on its original topic with its original key, value
and headers (every `dlq_*` header removed) plus `dlq_replay_of=<dead letter id>`:

- What is replayed: by default every dead letter a service *refused* (e.g. an event for an order it did not know
  yet) or gave up on after repeated failures; a record that could not be read (not JSON, invalid, unknown type or
  version, missing headers, too large, on the wrong topic or from the wrong source) or reused an event id is
  replayed only when named with `--id` or with
  `--unreadable` (after an upgrade that reads it): replaying it unchanged would only dead-letter it again.
- One record is replayed once per original record: when several services dead-lettered the same record (a
  completion before its order is refused by the manufacturer and by the distributor), one copy goes back, and
  every service reads it.
- After the replayed records are acknowledged, a marker per dead letter is written to the `dead-letter-replays`
  topic (with the deployment's prefix); a later replay skips every dead letter that has a marker, so replaying
  twice publishes nothing the second time.
- What the replayed record does is decided by each service's inbox, so effects stay exactly-once even if a
  replay is interrupted between the records and their markers: an event the service applied before is a
  duplicate and skipped; an event it *refused* before is applied again only because the record carries
  `dlq_replay_of` (an ordinary redelivery of a refused event stays skipped); an event refused again becomes a new
  dead letter (its id names the replayed record's offset, and it keeps `dlq_replay_of`), which can be replayed in
  turn once its cause is fixed; a record that was unreadable is read again (useful after an upgrade that knows
  its schema version), and dead-lettered again if it still cannot be read.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from backflush_shared.cli_text import safe
from backflush_shared.contracts.topics import DEAD_LETTER_SUFFIX, Topic, TopicNames
from backflush_shared.errors import BackflushError
from backflush_shared.messaging import dead_letter as dl
from backflush_shared.messaging.codec import READ_ERRORS
from backflush_shared.messaging.processor import HEADER_REPLAY_OF

#: The topic (after the deployment's prefix) that remembers which dead letters were replayed.
REPLAY_MARKER_TOPIC = "dead-letter-replays"
HEADER_REPLAYED = "dlq_replayed"

#: Dead letters of records that no replay can change: they are replayed only when asked for by id or with
#: `--unreadable` (after an upgrade that reads them). Every refusal of `messaging.codec.decode` (unreadable,
#: misaddressed, or from the wrong source), and the inbox's event-id conflict.
UNREADABLE_ERRORS = READ_ERRORS | {"event-id-conflict"}

out = Console()


class DeadLetterError(BackflushError):
    """The dead-letter topics could not be read or written."""


@dataclass(frozen=True)
class DeadLetter:
    """One record of a `.dlq` topic, with what its headers say about it."""

    dlq_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int = 0
    _by_name: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, raw in self.headers:
            self._by_name.setdefault(name, raw.decode(errors="replace"))

    def header(self, name: str) -> str | None:
        return self._by_name.get(name)

    @property
    def id(self) -> str:
        return self.header(dl.HEADER_ID) or f"dlq:?:{self.dlq_topic}:{self.partition}:{self.offset}"

    @property
    def original_topic(self) -> str:
        return self.header(dl.HEADER_ORIGINAL_TOPIC) or self.dlq_topic.removesuffix(DEAD_LETTER_SUFFIX)

    @property
    def original_partition(self) -> int | None:
        return _int(self.header(dl.HEADER_ORIGINAL_PARTITION))

    @property
    def original_offset(self) -> int | None:
        return _int(self.header(dl.HEADER_ORIGINAL_OFFSET))

    @property
    def original(self) -> tuple[str, int | None, int | None]:
        """The record this dead letter set aside; several services may have dead-lettered the same one."""
        return (self.original_topic, self.original_partition, self.original_offset)

    @property
    def error_type(self) -> str:
        return self.header(dl.HEADER_ERROR_TYPE) or ""

    @property
    def error_message(self) -> str:
        return self.header(dl.HEADER_ERROR_MESSAGE) or ""

    @property
    def attempts(self) -> int | None:
        return _int(self.header(dl.HEADER_ATTEMPTS))

    @property
    def failed_by(self) -> str:
        return self.header(dl.HEADER_FAILED_BY) or ""

    @property
    def failed_at(self) -> str:
        return self.header(dl.HEADER_FAILED_AT) or ""

    @property
    def unreadable(self) -> bool:
        """A record no service could read (or an event id reused): replaying it as it is cannot succeed."""
        return self.error_type in UNREADABLE_ERRORS

    @property
    def replay_of(self) -> str | None:
        """Set when the dead-lettered record was itself a replay of an earlier dead letter."""
        return self.header(HEADER_REPLAY_OF)

    @property
    def key_text(self) -> str:
        return self.key.decode(errors="replace") if self.key else ""

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers (every `dlq_*` header removed) and the replay marker."""
        kept = [(name, value) for name, value in self.headers if not name.startswith("dlq_")]
        return kept + [(HEADER_REPLAY_OF, self.id.encode())]

    def as_json(self, *, replayed: bool | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "dlq_topic": self.dlq_topic,
            "dlq_partition": self.partition,
            "dlq_offset": self.offset,
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "key": self.key_text,
            "event_id": self.header("ce_id"),
            "event_type": self.header("ce_type"),
            "error_type": self.error_type,
            "error_message": self.error_message,
            "attempts": self.attempts,
            "failed_by": self.failed_by,
            "failed_at": self.failed_at,
            "replay_of": self.replay_of,
        }
        if replayed is not None:
            data["replayed"] = replayed
        return data


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def dead_letter_topics(topic_prefix: str, only: Iterable[str] = ()) -> list[str]:
    """The `.dlq` topics to read: all of them, or those of the named topics (`orders`, `completions.dlq`, ...)."""
    names = TopicNames(topic_prefix)
    wanted = [name.strip() for name in only if name.strip()]
    if not wanted:
        return [names.dead_letter(topic) for topic in Topic]
    result = []
    for name in wanted:
        logical = name.removeprefix(topic_prefix).removesuffix(DEAD_LETTER_SUFFIX)
        try:
            topic = Topic(logical)
        except ValueError:
            known = ", ".join(topic.value for topic in Topic)
            raise DeadLetterError(f"unknown topic {name!r}; known: {known}") from None
        result.append(names.dead_letter(topic))
    return list(dict.fromkeys(result))


def replay_marker_topic(topic_prefix: str) -> str:
    return f"{topic_prefix}{REPLAY_MARKER_TOPIC}"


async def read_from_start(bootstrap_servers: str, topics: Sequence[str], *, timeout: float = 60.0) -> list[Any]:
    """Every record of `topics` from the start up to their end now; topics that do not exist are empty.

    No consumer group and no commit: reading changes nothing on the broker.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    from backflush_shared.messaging.security import ClientErrors, refusal, security_from_environment

    security = security_from_environment()  # the command line's BACKFLUSH_SECURITY_* settings
    options = security.kafka_options()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000, **options)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", request_timeout_ms=15_000, **options)
    errors = ClientErrors()
    try:
        with errors.attached():
            await admin.start()
            # only topics that exist: asking the broker about others might create them
            existing = set(await admin.list_topics())
            present = [topic for topic in dict.fromkeys(topics) if topic in existing]
            described = await admin.describe_topics(present) if present else []
            await consumer.start()
    except (KafkaError, OSError) as error:
        await admin.close()
        await consumer.stop()
        # refused credentials or an untrusted certificate: say so, not just "cannot reach"
        refused = refusal("\n".join([*errors.messages, str(error)]), bootstrap_servers, security)
        if refused is not None:
            raise refused from None
        raise DeadLetterError(f"cannot reach Kafka at {bootstrap_servers}: {error}") from None
    await admin.close()
    try:
        partitions = [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described if not topic.get("error_code")
            for partition in sorted(topic["partitions"], key=lambda p: p["partition"])
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        pending = set(partitions)
        deadline = time.monotonic() + timeout
        while pending:
            for partition in list(pending):
                if await consumer.position(partition) >= ends[partition]:
                    pending.discard(partition)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise DeadLetterError(f"timed out after {timeout:.0f} s reading {', '.join(topics)}")
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for partition, partition_records in batch.items():
                records.extend(r for r in partition_records if r.offset < ends[partition])
        return sorted(records, key=lambda r: (r.topic, r.timestamp, r.partition, r.offset))
    finally:
        await consumer.stop()


async def read_dead_letters(bootstrap_servers: str, topic_prefix: str = "", topics: Iterable[str] = ()) -> list[DeadLetter]:
    """Every dead letter on the `.dlq` topics (all, or those of `topics`), oldest first per topic."""
    records = await read_from_start(bootstrap_servers, dead_letter_topics(topic_prefix, topics))
    return [
        DeadLetter(r.topic, r.partition, r.offset, r.key, r.value,
                   tuple((name, bytes(value or b"")) for name, value in (r.headers or ())), r.timestamp or 0)
        for r in records
    ]


async def replayed_ids(bootstrap_servers: str, topic_prefix: str = "") -> set[str]:
    """The dead letters a replay already put back on their topics."""
    records = await read_from_start(bootstrap_servers, [replay_marker_topic(topic_prefix)])
    return {r.key.decode(errors="replace") for r in records if r.key}


@dataclass(frozen=True)
class ReplayedRecord:
    """One record put back on its original topic, and the dead letters it answers."""

    dead_letters: tuple[DeadLetter, ...]
    topic: str
    partition: int | None = None
    offset: int | None = None

    @property
    def primary(self) -> DeadLetter:
        return self.dead_letters[0]


@dataclass
class ReplayResult:
    replayed: list[ReplayedRecord] = field(default_factory=list)
    already_replayed: list[DeadLetter] = field(default_factory=list)
    left_unreadable: list[DeadLetter] = field(default_factory=list)
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "replayed": [
                {"dead_letters": [d.id for d in r.dead_letters], "topic": r.topic, "partition": r.partition,
                 "offset": r.offset, "key": r.primary.key_text, "event_id": r.primary.header("ce_id"),
                 "event_type": r.primary.header("ce_type")}
                for r in self.replayed
            ],
            "already_replayed": [d.id for d in self.already_replayed],
            "left_unreadable": [d.id for d in self.left_unreadable],
        }


async def replay(bootstrap_servers: str, topic_prefix: str = "", *, topics: Iterable[str] = (),
                 ids: Iterable[str] = (), unreadable: bool = False, dry_run: bool = False) -> ReplayResult:
    """Re-inject dead letters onto their original topics, each at most once (see the module's replay rule).

    `ids` selects dead letters by id (whatever their kind); without, every refused or failed record is selected,
    and with `unreadable` also those no service could read.
    """
    letters = await read_dead_letters(bootstrap_servers, topic_prefix, topics)
    wanted = list(dict.fromkeys(ids))
    if wanted:
        known = {d.id for d in letters}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise DeadLetterError(f"no dead letter with id {', '.join(unknown)}")
    done = await replayed_ids(bootstrap_servers, topic_prefix)
    result = ReplayResult(dry_run=dry_run)
    groups: dict[tuple[str, int | None, int | None], list[DeadLetter]] = {}
    for letter in letters:
        origin_known = letter.original_partition is not None and letter.original_offset is not None
        key = letter.original if origin_known else (letter.dlq_topic, letter.partition, letter.offset)
        groups.setdefault(key, []).append(letter)
    selected: list[list[DeadLetter]] = []
    for group in groups.values():
        if wanted and not any(d.id in wanted for d in group):
            continue
        if any(d.id in done for d in group):
            result.already_replayed.extend(group)  # the record went back once: once is enough
            continue
        if not wanted and not unreadable and all(d.unreadable for d in group):
            result.left_unreadable.extend(group)
            continue
        selected.append(group)
    if dry_run or not selected:
        result.replayed = [ReplayedRecord(tuple(g), g[0].original_topic) for g in selected]
        return result

    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from backflush_shared.messaging.admin import ensure_topics
    from backflush_shared.messaging.security import kafka_options

    marker_topic = replay_marker_topic(topic_prefix)
    try:
        await ensure_topics(bootstrap_servers, [marker_topic], partitions=1, replication=1)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True, linger_ms=0,
                                    **kafka_options())
        await producer.start()
    except (KafkaError, OSError) as error:
        raise DeadLetterError(f"cannot reach Kafka at {bootstrap_servers}: {error}") from None
    try:
        # the records first, in the order they were dead-lettered; the markers only once every record is acked
        sends = []
        for group in selected:
            letter = group[0]
            sends.append(await producer.send(letter.original_topic, value=letter.value, key=letter.key or None,
                                             headers=letter.replay_headers()))
        acknowledged = await asyncio.gather(*sends)
        at = datetime.now(UTC).isoformat()
        markers = []
        for group, metadata in zip(selected, acknowledged):
            result.replayed.append(ReplayedRecord(tuple(group), metadata.topic, metadata.partition, metadata.offset))
            for letter in group:
                marker = {"dlq_id": letter.id, "replayed_to": metadata.topic, "partition": metadata.partition,
                          "offset": metadata.offset, "replayed_at": at}
                markers.append(await producer.send(marker_topic, key=letter.id.encode(),
                                                   value=json.dumps(marker).encode(),
                                                   headers=[(HEADER_REPLAYED, letter.id.encode())]))
        await asyncio.gather(*markers)
    finally:
        await producer.stop()
    return result


# -- the commands ---------------------------------------------------------------------------------------------


BOOTSTRAP = typer.Option("127.0.0.1:9092", "--bootstrap-servers", envvar="BACKFLUSH_BOOTSTRAP_SERVERS")
PREFIX = typer.Option("", "--topic-prefix", envvar="BACKFLUSH_TOPIC_PREFIX")
TOPICS = typer.Option([], "--topic", help="Only this topic's dead letters (orders, inventory-details, completions, "
                                          "master-data); repeatable.")


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def register_dlq_commands(app: typer.Typer) -> None:
    """Add `backflush dlq list|replay` and, beside them, `backflush audit` (see `audit.py`)."""
    from backflush_shared.audit import register_audit_command

    dlq_app = typer.Typer(help="Dead letters: records a service could not process, and their replay.",
                          no_args_is_help=True)

    @dlq_app.command("list")
    def list_dead_letters(
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
        topic: list[str] = TOPICS,
        as_json: bool = typer.Option(False, "--json", help="One JSON document instead of a table."),
    ) -> None:
        """Every dead letter: where it came from, why it failed, how often it was tried, who set it aside."""

        async def load() -> tuple[list[DeadLetter], set[str]]:
            return (await read_dead_letters(bootstrap_servers, topic_prefix, topic),
                    await replayed_ids(bootstrap_servers, topic_prefix))

        letters, done = _run(load())
        if as_json:
            typer.echo(json.dumps([d.as_json(replayed=d.id in done) for d in letters], indent=2))
            return
        table = Table(title=f"{len(letters)} dead letters")
        for column in ("dead-letter topic", "original (topic/partition/offset)", "key", "error type", "message",
                       "attempts", "failed by", "failed at", "id (replayed)"):
            # ids are what `dlq replay --id` takes: never folded; the message folds instead
            table.add_column(column, overflow="fold", no_wrap=column.startswith("id"),
                             ratio=3 if column == "message" else None)
        for d in letters:
            table.add_row(
                safe(d.dlq_topic), safe(f"{d.original_topic}/{d.original_partition}/{d.original_offset}"),
                safe(d.key_text), safe(d.error_type), safe(_short(d.error_message, 160)), safe(d.attempts or ""),
                safe(d.failed_by), safe(d.failed_at[:19]), safe(d.id + (" (replayed)" if d.id in done else "")),
            )
        out.print(table)

    @dlq_app.command("replay")
    def replay_dead_letters(
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
        topic: list[str] = TOPICS,
        dlq_id: list[str] = typer.Option([], "--id", help="Only this dead letter (see `dlq list`); repeatable."),
        unreadable: bool = typer.Option(False, "--unreadable", help="Also records no service could read (e.g. "
                                        "after an upgrade that knows their schema version)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be replayed; publish nothing."),
        as_json: bool = typer.Option(False, "--json", help="One JSON document instead of a table."),
    ) -> None:
        """Put dead letters back on their original topics, each at most once; the inboxes keep effects single."""
        result = _run(replay(bootstrap_servers, topic_prefix, topics=topic, ids=dlq_id, unreadable=unreadable,
                             dry_run=dry_run))
        if as_json:
            typer.echo(json.dumps(result.as_json(), indent=2))
            return
        verb = "would replay" if dry_run else "replayed"
        table = Table(title=f"{verb} {len(result.replayed)} records")
        for column in ("dead letters", "to topic", "partition/offset", "key", "event type", "error type"):
            table.add_column(column, overflow="fold")
        for r in result.replayed:
            where = "" if r.offset is None else f"{r.partition}/{r.offset}"
            table.add_row("\n".join(safe(d.id) for d in r.dead_letters), safe(r.topic), safe(where),
                          safe(r.primary.key_text), safe(r.primary.header("ce_type") or ""),
                          safe(r.primary.error_type))
        out.print(table)
        if result.already_replayed:
            out.print(f"{len(result.already_replayed)} dead letters were replayed before and are left alone")
        if result.left_unreadable:
            out.print(f"{len(result.left_unreadable)} dead letters of unreadable records left alone "
                      "(name them with --id, or add --unreadable)")

    app.add_typer(dlq_app, name="dlq")
    register_audit_command(app)


def _run(coroutine: Any) -> Any:
    from backflush_shared.cli import fail

    try:
        return asyncio.run(coroutine)
    except DeadLetterError as error:
        fail(str(error))
