"""`backflush racks` and `backflush consignment`: what the warehouse holds and where."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console
from rich.table import Table

from backflush_shared.cli_text import safe
from backflush_shared.persistence.database import read_once as _read

from backflush_warehouse import queries, stock_sales

out = Console()
DATABASE = typer.Option("sqlite+aiosqlite:///var/warehouse.db", "--database",
                        envvar="BACKFLUSH_WAREHOUSE_DATABASE_URL", help="The warehouse's database.")


def build_cli() -> typer.Typer:
    app = typer.Typer()

    @app.command("racks")
    def racks(database: str = DATABASE) -> None:
        """Racks and storage locations: capacity, units stored, free space; put-aways waiting for space."""
        use, waiting = asyncio.run(_read(database, lambda s: _both(s)))
        table = Table(title="locations")
        for column in ("location", "kind", "capacity", "used", "free"):
            table.add_column(column, justify="left" if column in ("location", "kind") else "right")
        for u in use:
            table.add_row(safe(u.code), safe(u.kind), format(u.capacity, "f"), format(u.used, "f"), format(u.capacity - u.used, "f"))
        out.print(table)
        if waiting:
            pending = Table(title="put-aways waiting for space")
            for column in ("order", "item", "qty", "kind", "since"):
                pending.add_column(column)
            for w in waiting:
                pending.add_row(safe(w["order_id"]), safe(w["item"]), safe(w["quantity"]), safe(w["kind"]),
                                safe(str(w["since"])[:19]))
            out.print(pending)

    @app.command("consignment")
    def consignment(database: str = DATABASE) -> None:
        """Finished goods the warehouse holds or delivered, by owner."""
        rows = asyncio.run(_read(database, queries.stock_by_owner))
        table = Table(title="finished goods by owner")
        for column in ("owner", "storage", "item", "status", "units"):
            table.add_column(column, justify="right" if column == "units" else "left")
        for owner, kind, item, status, quantity in rows:
            table.add_row(safe(owner), safe(kind), safe(item), safe(status), format(quantity, "f"))
        out.print(table)

    @app.command("finished-stock")
    def finished_stock(database: str = DATABASE) -> None:
        """Finished-goods stock for sale (runs' lots, first in, first out) and the stock orders served from it."""
        lots, orders = asyncio.run(_read(database, stock_sales.for_sale))
        table = Table(title="finished-goods stock for sale (first in, first out)")
        for column in ("run", "item", "lot", "stocked", "free", "status"):
            table.add_column(column, justify="right" if column in ("stocked", "free") else "left")
        for run_id, item, lot, quantity, free, status in lots:
            table.add_row(safe(run_id), safe(item), safe(lot), format(quantity, "f"), format(free, "f"), safe(status))
        out.print(table)
        queue = Table(title="stock orders (arrival order)")
        for column in ("order", "item", "qty", "status", "since"):
            queue.add_column(column, justify="right" if column == "qty" else "left")
        for order_id, item, quantity, status, since in orders:
            queue.add_row(safe(order_id), safe(item), format(quantity, "f"), safe(status), safe(since))
        out.print(queue)

    return app


async def _both(session):  # type: ignore[no-untyped-def]
    return await queries.location_use(session), await queries.waiting(session)
