"""The inbox and outbox tables every service has, added to the service's own metadata."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
OutboxId = BigInteger().with_variant(Integer(), "sqlite")


def add_messaging_tables(metadata: MetaData) -> tuple[Table, Table]:
    inbox = Table(
        "inbox",
        metadata,
        Column("event_id", String(36), primary_key=True, comment="The idempotency key of a consumed event."),
        Column("event_type", String(120), nullable=False),
        Column("content_hash", String(64), nullable=False),
        Column("correlation_id", String(64), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("outcome", String(32), nullable=False, comment="applied | refused | ignored"),
        Column("processed_at", DateTime(timezone=True), nullable=False),
    )
    outbox = Table(
        "outbox",
        metadata,
        Column("id", OutboxId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(120), nullable=False),
        Column("correlation_id", String(64), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("record_key", LargeBinary, nullable=True),
        Column("value", LargeBinary, nullable=True),
        Column("headers", Text, nullable=False, comment="JSON list of [name, base64 value]"),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index("ix_outbox_unpublished", "published_at", "id"),
    )
    add_consumed_ranges_table(metadata)
    return inbox, outbox


#: Every consumed offset accounted for: one row per batch and partition, written in the batch's transaction.
CONSUMED_RANGES = "consumed_ranges"


def add_consumed_ranges_table(metadata: MetaData) -> Table:
    """Which offsets of which partition a transaction took care of (applied, duplicate, ignored or dead-lettered).

    `backflush audit` compares their union with the consumer groups' committed offsets on the broker: an offset
    below a committed position that no row covers was lost.
    """
    return Table(
        CONSUMED_RANGES,
        metadata,
        Column("id", OutboxId, primary_key=True, autoincrement=True),
        Column("group_id", String(250), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("first_offset", BigInteger, nullable=False),
        Column("last_offset", BigInteger, nullable=False),
        Column("records", Integer, nullable=False, comment="records read in [first_offset, last_offset]"),
        Column("applied", Integer, nullable=False),
        Column("dead_lettered", Integer, nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Index("ix_consumed_ranges_partition", "group_id", "topic", "partition", "first_offset"),
    )
