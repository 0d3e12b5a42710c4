"""The distributor's tables: orders with their milestones, every state transition, every event seen."""

from __future__ import annotations

from sqlalchemy import Column, Date, DateTime, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

from backflush_shared.persistence.messaging_tables import add_messaging_tables
from backflush_shared.persistence.types import DecimalText

metadata = MetaData()
inbox, outbox = add_messaging_tables(metadata)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("flow", String(8), nullable=False),
    Column("item", String(64), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("order_holder", String(120), nullable=False),
    Column("ship_to", String(200), nullable=False),
    Column("due_date", Date, nullable=False),
    Column("priority", String(16), nullable=False),
    Column("placed_fingerprint", String(64), nullable=False, comment="What the order said when placed."),
    Column("milestones", Text, nullable=False, comment="JSON of the lifecycle's milestones."),
    Column("state", String(32), nullable=False),
    Column("waiting_for", String(200), nullable=True),
    Column("waiting_since", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_orders_state", "state"),
)

order_transitions = Table(
    "order_transitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("state", String(32), nullable=False),
    Column("waiting_for", String(200), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("cause_event_type", String(120), nullable=False),
    Column("cause_event_id", String(36), nullable=False),
)

order_events = Table(
    "order_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(120), nullable=False),
    Column("source", String(120), nullable=False),
    Column("topic", String(200), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("summary", Text, nullable=False),
    UniqueConstraint("event_id", name="uq_order_events_event_id"),
)

storage_capacity = Table(
    "storage_capacity",
    metadata,
    Column("kind", String(16), primary_key=True, comment="rack | consignment"),
    Column("capacity", DecimalText, nullable=False, comment="Units all locations of this kind hold together."),
    Column("announced_at", DateTime(timezone=True), nullable=False),
    Column("cause_event_id", String(36), nullable=False, comment="The warehouse's announcement."),
)
