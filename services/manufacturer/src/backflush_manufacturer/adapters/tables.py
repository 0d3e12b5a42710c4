"""The manufacturer's tables: master data, the append-only stock ledger, production orders, the exception queue."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, Integer, MetaData, String, Table, Text, false

from backflush_shared.persistence.messaging_tables import add_messaging_tables
from backflush_shared.persistence.types import DecimalText

metadata = MetaData()
inbox, outbox = add_messaging_tables(metadata)

items = Table(
    "items",
    metadata,
    Column("item", String(64), primary_key=True),
    Column("description", String(200), nullable=False),
    Column("unit", String(16), nullable=False),
    Column("decimals", Integer, nullable=False),
    Column("phantom", Boolean, nullable=False),
    Column("negative_stock_policy", String(8), nullable=True, comment="Overrides the global policy."),
    Column("supply_location", String(64), nullable=True, comment="Where flushes take it from; null: MAIN."),
)

bom_lines = Table(
    "bom_lines",
    metadata,
    Column("parent", String(64), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("component", String(64), nullable=False),
    Column("quantity_per", DecimalText, nullable=False),
    Column("scrap_factor", DecimalText, nullable=False),
    Column("flush", String(8), nullable=False),
)

inspection_plans = Table(
    "inspection_plans",
    metadata,
    Column("item", String(64), primary_key=True),
    Column("rule", String(16), nullable=False),
    Column("remark", String(200), nullable=False),
)

master_data_version = Table(
    "master_data_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False, comment="Bumped by every master-data change; caches key on it."),
)

ledger_movements = Table(
    "ledger_movements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True, comment="Append order: FIFO follows it."),
    Column("item", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("quantity", DecimalText, nullable=False, comment="Signed: receipts positive, consumption negative."),
    Column("reason", String(32), nullable=False),
    Column("event_id", String(120), nullable=False, comment="The event that caused the movement."),
    Column("production_order", String(64), nullable=True),
    Column("flush_id", String(120), nullable=True),
    Column("into_item", String(64), nullable=True),
    Column("into_lot", String(64), nullable=True),
    Column("posted_at", DateTime(timezone=True), nullable=False),
    Column("owner", String(120), nullable=True, comment="The brand owner of a consigned lot; null: our own stock."),
    Index("ix_ledger_item", "item"),
    Index("ix_ledger_production_order", "production_order"),
    Index("ix_ledger_lot", "lot"),
)

production_orders = Table(
    "production_orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("item", String(64), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("flow", String(8), nullable=False),
    Column("status", String(32), nullable=False),
    Column("processing", Text, nullable=False, comment="JSON of the order-processing information."),
    Column("completed", DecimalText, nullable=False),
    Column("certificate", Text, nullable=True, comment="JSON of the quality certificate, once passed."),
    Column("reason", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("components_owner", String(120), nullable=True,
           comment="Contract manufacturing: the brand owner whose consigned lots the order consumes."),
    Column("own_components_allowed", Boolean, nullable=False, server_default=false(),
           comment="With an owner: our own stock may cover what the owner's lots cannot."),
)

finished_lots = Table(
    "finished_lots",
    metadata,
    Column("lot", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("item", String(64), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("produced_at", DateTime(timezone=True), nullable=False),
    Column("shipped_at", DateTime(timezone=True), nullable=True),
    Column("cancelled_at", DateTime(timezone=True), nullable=True,
           comment="Its completion was cancelled: the lot is no longer produced."),
)

parked_flushes = Table(
    "parked_flushes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True, comment="Arrival order: reprocessing follows it."),
    Column("flush_id", String(120), nullable=False, unique=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("step", String(16), nullable=False, comment="release | completion: what to do once it posts"),
    Column("request", Text, nullable=False, comment="JSON of the flush request and its planned requirements."),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False, comment="waiting | posted | cancelled"),
    Column("parked_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    Column("cause_event_id", String(36), nullable=False),
    Index("ix_parked_status", "status", "id"),
)
