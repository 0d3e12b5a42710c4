"""The manufacturer: items and BOMs, the component stock ledger, production orders, the backflush engine."""

from __future__ import annotations

from pathlib import Path

from backflush_shared.service import ServiceDefinition

from backflush_manufacturer import handlers
from backflush_manufacturer.adapters import tables
from backflush_manufacturer.settings import ManufacturerSettings


def _cli():  # type: ignore[no-untyped-def]
    from backflush_manufacturer.cli import build_cli

    return build_cli()


SERVICE = ServiceDefinition(
    name="manufacturer",
    description=(
        "Creates production orders, runs the quality check, backflushes components at release (pre) and at "
        "completion (post) from an append-only stock ledger, parks what stock cannot cover and reprocesses it when "
        "components arrive, forwards pre-sale inventory details, turns finished goods over as consignment stock, "
        "and allocates goods on the returned inventory check."
    ),
    metadata=tables.metadata,
    inbox_table=tables.inbox,
    outbox_table=tables.outbox,
    migrations=Path(__file__).parent / "migrations",
    build_handlers=handlers.build_handlers,
    load_batch=handlers.load_batch,
    publishes=handlers.PUBLISHES,
    cli=_cli,
    settings_class=ManufacturerSettings,
)
