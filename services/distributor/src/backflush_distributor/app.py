"""The distributor: accepts orders from order holders, forwards them, and keeps each order's lifecycle."""

from __future__ import annotations

from pathlib import Path

from backflush_shared.service import ServiceDefinition

from backflush_distributor import handlers
from backflush_distributor.adapters import tables


def _cli():  # type: ignore[no-untyped-def]
    from backflush_distributor.cli import build_cli

    return build_cli()


SERVICE = ServiceDefinition(
    name="distributor",
    description=(
        "Accepts orders from order holders on `orders.intake`, validates and forwards them to the manufacturer with their "
        "order-processing information, directs pre-sale goods into distribution-center racks, places final orders "
        "on consignment stock, and answers 'where is my order' from every event it sees."
    ),
    metadata=tables.metadata,
    inbox_table=tables.inbox,
    outbox_table=tables.outbox,
    migrations=Path(__file__).parent / "migrations",
    build_handlers=handlers.build_handlers,
    load_batch=handlers.load_batch,
    publishes=handlers.PUBLISHES,
    cli=_cli,
)
