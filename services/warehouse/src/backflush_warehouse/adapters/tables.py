"""The warehouse's tables: locations, stored units per owner, waiting put-aways, shipments, signatures."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, MetaData, String, Table, Text

from backflush_shared.persistence.messaging_tables import add_messaging_tables
from backflush_shared.persistence.types import DecimalText

metadata = MetaData()
inbox, outbox = add_messaging_tables(metadata)

locations = Table(
    "locations",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("capacity", DecimalText, nullable=False),
    Column("position", Integer, nullable=False, comment="Put-away fills locations in this order."),
    Column("used", DecimalText, nullable=False, server_default="0",
           comment="Units stored now; kept with every placement and release so put-away never scans stock."),
)

stock_units = Table(
    "stock_units",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False),
    Column("item", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("owner", String(120), nullable=False),
    Column("status", String(16), nullable=False, comment="stored | shipped | delivered | released"),
    Column("placed_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_stock_units_order", "order_id"),
    Index("ix_stock_units_location_status", "location", "status"),
)

waiting_put_aways = Table(
    "waiting_put_aways",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("item", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("owner", String(120), nullable=False),
    Column("cause_event_id", String(36), nullable=False),
    Column("since", DateTime(timezone=True), nullable=False),
)

shipments = Table(
    "shipments",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("item", String(64), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("ship_to", String(200), nullable=False),
    Column("order_holder", String(120), nullable=False),
    Column("lots", Text, nullable=False),
    Column("shipped_at", DateTime(timezone=True), nullable=False),
    Column("signed_by", String(120), nullable=True),
    Column("signed_at", DateTime(timezone=True), nullable=True),
)

ownership_transfers = Table(
    "ownership_transfers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("item", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("from_owner", String(120), nullable=False),
    Column("to_owner", String(120), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

cancelled_orders = Table(
    "cancelled_orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

#: Lots of completions the manufacturer cancelled: their GoodsTurnedOver travels on another topic and may arrive
#: after the CompletionCancelled, and must then not be put away.
cancelled_lots = Table(
    "cancelled_lots",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("lot", String(64), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
)

# -- finished-goods stock for sale (issue 17): runs' lots racked unallocated, stock orders served from them ---------

#: A run's lot handed over as stock for sale; its units are the `stock_units` rows whose `order_id` is the run id.
finished_stock = Table(
    "finished_stock",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("item", String(64), nullable=False, index=True),
    Column("lot", String(64), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("owner", String(120), nullable=False),
    Column("status", String(16), nullable=False, comment="stocked | withdrawn"),
    Column("stocked_at", DateTime(timezone=True), nullable=False),
)

#: Orders of the stock flow, in arrival order (`seq`): served first in, first out from finished-goods stock.
stock_orders = Table(
    "stock_orders",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False, unique=True),
    Column("item", String(64), nullable=False, index=True),
    Column("quantity", DecimalText, nullable=False),
    Column("order_holder", String(120), nullable=False),
    Column("ship_to", String(200), nullable=False),
    Column("partial", Boolean, nullable=False, comment="The holder accepts partial deliveries."),
    Column("shipped", DecimalText, nullable=False, comment="Units shipped to it so far (in parts if partial)."),
    Column("status", String(16), nullable=False, comment="waiting | shipped | cancelled"),
    Column("told", String(80), nullable=True, comment="The figures last told in FinishedStockAwaited."),
    Column("since", DateTime(timezone=True), nullable=False),
)

#: Which run lot's units went to which stock order (the audit checks none is allocated above what was racked).
stock_allocations = Table(
    "stock_allocations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("item", String(64), nullable=False),
    Column("lot", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
