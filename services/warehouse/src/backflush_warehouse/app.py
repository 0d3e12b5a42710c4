"""The warehouse: racks and consignment storage, put-away, picking, shipping, signed proof of delivery."""

from __future__ import annotations

from pathlib import Path

from backflush_shared.service import ServiceDefinition

from backflush_warehouse import handlers
from backflush_warehouse.adapters import tables
from backflush_warehouse.layout import apply_layout
from backflush_warehouse.settings import WarehouseSettings


def _cli():  # type: ignore[no-untyped-def]
    from backflush_warehouse.cli import build_cli

    return build_cli()


SERVICE = ServiceDefinition(
    name="warehouse",
    description=(
        "Puts pre-product goods away into distribution-center racks and post-product goods into consignment "
        "storage, keeping the owner of every unit; confirms rack locations and inventory checks; picks and ships "
        "on the final order; records the order holder's signature and moves ownership."
    ),
    metadata=tables.metadata,
    inbox_table=tables.inbox,
    outbox_table=tables.outbox,
    migrations=Path(__file__).parent / "migrations",
    build_handlers=handlers.build_handlers,
    publishes=handlers.PUBLISHES,
    cli=_cli,
    settings_class=WarehouseSettings,
    on_prepare=apply_layout,
    load_batch=handlers.load_batch,
)
