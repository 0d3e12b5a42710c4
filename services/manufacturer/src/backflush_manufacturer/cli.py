"""The manufacturer's commands: BOM explosion from files, master data to Kafka, and views of its database.

- `backflush bom explode` and `backflush master-data load` read master-data files (YAML or CSV);
- `backflush stock`, `trace`, `exceptions`, `variance` and `production-orders` read the manufacturer's database;
- `backflush exceptions retry`, `master-data load` and `complete` publish events to the running manufacturer.

A refusal (unknown item, a bad file, a quantity the unit cannot hold) is one line on stderr, `error: ...`, and exit
code 2; a lookup that finds nothing (no such lot, order or entry) exits 1.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import NoReturn, TypeVar

import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.table import Table
from rich.tree import Tree
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.cli import fail
from backflush_shared.cli_text import safe
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.completions import (
    CompletionCancellationRequested,
    CompletionReported,
    RunCancellationRequested,
    RunQuantityReported,
)
from backflush_shared.contracts.envelope import Envelope
from backflush_shared.contracts.master_data import (
    ComponentsConsigned,
    ParkedBackflushRetryRequested,
    StockProductionOrderPlaced,
)
from backflush_shared.errors import BackflushError
from backflush_shared.messaging.publish import publish
from backflush_shared.persistence.database import Database, missing_sqlite_file
from backflush_shared.persistence.database import read_once as _read

from backflush_manufacturer import queries
from backflush_manufacturer import runs as run_queries
from backflush_manufacturer.adapters.repository import ParkedEntry
from backflush_manufacturer.domain.bom import FlushPoint
from backflush_manufacturer.domain.consignment import period_bounds
from backflush_manufacturer.domain.errors import format_path
from backflush_manufacturer.domain.explosion import Requirement, explode, requirements_as_json
from backflush_manufacturer.domain.ledger import NEGATIVE_LOT
from backflush_manufacturer.domain.units import Unit
from backflush_manufacturer.master_data_events import events_from
from backflush_manufacturer.master_data_files import load_master_data

T = TypeVar("T")

out = Console()

BOOTSTRAP = typer.Option("127.0.0.1:9092", "--bootstrap-servers", envvar="BACKFLUSH_BOOTSTRAP_SERVERS",
                         help="The Kafka broker(s) the manufacturer consumes from.")
PREFIX = typer.Option("", "--topic-prefix", envvar="BACKFLUSH_TOPIC_PREFIX")
DATABASE = typer.Option(
    "sqlite+aiosqlite:///var/manufacturer.db", "--database", envvar="BACKFLUSH_MANUFACTURER_DATABASE_URL",
    help="The manufacturer's database (its ledger, production orders and exception queue).",
)

FLUSH_TITLES = {
    FlushPoint.PRE: "pre: at release, once the quality check has passed",
    FlushPoint.POST: "post: at completion, for the quantity completed",
    FlushPoint.MANUAL: "manual: never flushed; issued by an explicit event",
}

#: How often `exceptions retry` looks at the entry while it waits for the manufacturer to process the retry.
POLL_SECONDS = 0.25


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"


# -- helpers shared by the commands ------------------------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    fail(message)  # the root command's one-line error, exit code 2 (it prints the message as text)
    raise typer.Exit(2)  # not reached: says so to the type checker


def _one_line(error: BaseException) -> str:
    # A file error's notes say where in which file: part of the one line, not a traceback.
    notes = getattr(error, "__notes__", None) or []
    return f"{error} ({'; '.join(notes)})" if notes else str(error)


@contextmanager
def _refusals() -> Iterator[None]:
    """A refusal is one line on stderr and exit code 2 (checked here so that notes are kept and tests see it)."""
    try:
        yield
    except BackflushError as error:
        _fail(_one_line(error))
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        _fail(f"{error.title}: {where}: {first['msg']}")


def _order_of_completion_lot(lot: str) -> str | None:
    """`SO-20-C8` -> `SO-20`: a completion lot names its order, unless it was shortened (`start.digest-C8`)."""
    head, separator, tail = lot.rpartition("-C")
    if not separator or not head or not tail or not tail[0].isdigit() or "." in head:
        return None
    return head


def _quantity(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        _fail(f"{option} must be a decimal number, got {text!r}")
    if not value.is_finite():
        _fail(f"{option} must be a finite decimal number, got {text!r}")
    return value


def _qty(quantity: Decimal, unit: Unit | None) -> str:
    """A quantity at its unit's precision (`93.500` kg, `526` pcs); as it is when the unit is unknown."""
    return unit.format(quantity) if unit is not None else format(quantity, "f")


def _signed(quantity: Decimal, unit: Unit | None) -> str:
    return ("+" if quantity > 0 else "") + _qty(quantity, unit)


def _age(since: datetime, now: datetime | None = None) -> str:
    """`45s`, `3m`, `2h`, `4d`: how long ago, in the largest whole unit."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)  # SQLite hands back the naive UTC time the service wrote
    seconds = max(0, int(((now or datetime.now(UTC)) - since).total_seconds()))
    for size, suffix in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


def _table(title: str, columns: Sequence[str], *, numeric: Collection[str] = (),
           wrapping: Collection[str] = ()) -> Table:
    """A light table that fits 80 columns: codes and figures never wrap, free text (reasons, paths) does."""
    table = Table(title=title, title_justify="left", title_style="bold", box=box.MINIMAL, show_edge=False,
                  pad_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left", no_wrap=column not in wrapping,
                         overflow="fold")
    return table


def _require_database(url: str) -> None:
    path = missing_sqlite_file(url)
    if path:
        _fail(f"no manufacturer database at {path}: start the manufacturer (`backflush serve manufacturer`) "
             "or pass --database")


def _query(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one read-only query against the manufacturer's database; a database failure is one error line."""
    _require_database(url)
    with _refusals():
        try:
            return asyncio.run(_read(url, work))
        except DBAPIError as error:
            _fail(f"cannot read the manufacturer's database {url}: {error.orig} "
                 "(the manufacturer creates its schema when it starts)")


def _publish(bootstrap_servers: str, events: Sequence[Event], topic_prefix: str) -> list[Envelope]:
    try:
        return asyncio.run(publish(bootstrap_servers, events, topic_prefix=topic_prefix))
    except (KafkaError, OSError) as error:
        _fail(f"cannot publish to Kafka at {bootstrap_servers}: {error}")


# -- bom explode ---------------------------------------------------------------------------------------------------


def _explosion_tables(requirements: Sequence[Requirement]) -> list[Table]:
    tables = []
    for flush in FlushPoint:
        lines = [r for r in requirements if r.flush is flush]
        if not lines:
            continue
        table = _table(FLUSH_TITLES[flush], ("component", "quantity", "unit", "BOM path"), numeric={"quantity"},
                       wrapping={"BOM path"})
        for r in lines:
            # the path below the item asked for: a phantom shows as the level the component was flushed through
            paths = "; ".join(format_path(path[1:]) for path in r.paths)
            table.add_row(safe(r.item), r.unit.format(r.quantity), safe(r.unit.code), safe(paths))
        tables.append(table)
    return tables


# -- trace ---------------------------------------------------------------------------------------------------------


def _add_nodes(branch: Tree, nodes: Sequence[queries.TraceNode], *, down: bool) -> None:
    for node in nodes:
        quantity = safe(f"{_qty(node.quantity, node.unit)} {node.unit or ''}".rstrip())
        order = f", order {safe(node.production_order)}" if node.production_order else ""
        lot = f"{safe(node.item)} lot [bold]{safe(node.lot)}[/]"
        # down: how much of that component lot went in; up: how much of the traced lot that finished lot took
        label = f"{lot}: {quantity}{order}" if down else f"{lot} (took {quantity}{order})"
        _add_nodes(branch.add(label), node.children, down=down)


def _trace_tree(result: queries.LotTrace, item: str) -> Tree:
    tree = Tree(f"[bold]{safe(item)}[/] lot [bold]{safe(result.lot)}[/]")
    made_from, used_in = result.made_from[item], result.used_in[item]
    if made_from:
        _add_nodes(tree.add("made from (component lots that went into it)"), made_from, down=True)
    if used_in:
        _add_nodes(tree.add("went into (finished lots made with it)"), used_in, down=False)
    if not made_from and not used_in:
        tree.add("[dim]no genealogy: not consumed into a finished lot, not made from component lots[/]")
    return tree


def _movements_table(result: queries.LotTrace, item: str) -> Table:
    table = _table(f"movements of {safe(item)} lot {safe(result.lot)}",
                   ("#", "posted at", "location", "quantity", "reason", "order", "event id"),
                   numeric={"#", "quantity"}, wrapping={"event id"})
    for line in result.movements:
        m = line.movement
        if m.item != item:
            continue
        table.add_row(str(line.id), line.posted_at.strftime("%Y-%m-%d %H:%M:%S"), safe(m.location),
                      safe(f"{_signed(m.quantity, line.unit)} {line.unit or ''}".rstrip()), m.reason.value,
                      safe(m.production_order or ""), safe(m.event_id))
    return table


# -- exceptions ----------------------------------------------------------------------------------------------------


def _exceptions_table(entries: Sequence[ParkedEntry], *, title: str) -> Table:
    table = _table(title, ("id", "order", "step", "reason", "age", "status"), numeric={"id", "age"},
                   wrapping={"reason"})
    for entry in entries:
        status = safe(entry.status) if entry.status != "waiting" else "[yellow]waiting[/]"
        table.add_row(str(entry.id), safe(entry.order_id), safe(entry.step), safe(entry.reason), _age(entry.parked_at), status)
    return table


async def _wait_for_resolution(url: str, entry_id: int, seconds: float) -> str:
    """The entry's status once it is no longer waiting, or `waiting` after `seconds`."""
    database = Database(url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while True:
            async with database.reading() as session:
                entry = await queries.parked_entry(session, entry_id)
            status = entry.status if entry is not None else "gone"
            if status != "waiting" or loop.time() >= deadline:
                return status
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await database.close()


# -- the commands --------------------------------------------------------------------------------------------------


def build_cli() -> typer.Typer:
    app = typer.Typer()
    bom_app = typer.Typer(help="Bills of materials from master-data files.", no_args_is_help=True)
    master_data_app = typer.Typer(help="Master data (items, BOMs, plans, stock) to the manufacturer.",
                                  no_args_is_help=True)
    exceptions_app = typer.Typer(help="The exception queue: backflushes parked for lack of stock (lists it; `retry ID` "
                                      "retries one).",
                                 invoke_without_command=True)

    @bom_app.command("explode")
    def bom_explode(
        item: str = typer.Option(..., "--item", help="The item to produce."),
        qty: str = typer.Option(..., "--qty", help="How much of it, in its unit (a decimal number)."),
        data: Path = typer.Option(..., "--data", envvar="BACKFLUSH_MASTER_DATA",
                                  help="A directory of master-data files (YAML or CSV)."),
        output: Format = typer.Option(Format.TABLE, "--format", help="table for people, json for programs."),
    ) -> None:
        """The components producing QTY of ITEM consumes, per flush point (from files: no broker, no database)."""
        with _refusals():
            master = load_master_data(data)
            quantity = _quantity(qty, "--qty")
            requirements = explode(master.catalogue, item, quantity)
            top = master.catalogue.item(item)
        if output is Format.JSON:
            # plain stdout, not rich: a program reads this, and rich would wrap long lines
            typer.echo(json.dumps(requirements_as_json(requirements), indent=2))
            return
        out.print(f"[bold]{safe(top.code)}[/] x {top.unit.format(quantity)} {safe(top.unit.code)}: "
                  f"{len(requirements)} components to consume", highlight=False)
        for table in _explosion_tables(requirements):
            out.print(table)

    @master_data_app.command("load")
    def master_data_load(
        directory: Path = typer.Argument(..., help="A directory of master-data files (YAML or CSV)."),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
    ) -> None:
        """Publish a directory's items, BOMs, inspection plans and initial stock to the running manufacturer."""
        with _refusals():
            events = events_from(load_master_data(directory))
        envelopes = _publish(bootstrap_servers, events, topic_prefix)
        counts = Counter(type(event).__name__ for event in events)
        out.print(f"published {len(envelopes)} master-data events from {safe(directory)}", highlight=False)
        table = _table("", ("event", "count"), numeric={"count"})
        for name, count in counts.items():
            table.add_row(safe(name), str(count))
        out.print(table)

    @app.command("stock")
    def stock(
        database: str = DATABASE,
        item: str = typer.Option("", "--item", help="Only this item."),
        all_lots: bool = typer.Option(False, "--all-lots", help="Also the lots that are empty now."),
    ) -> None:
        """Stock per item, location and lot (first in, first out): on hand, allocated, available."""
        lines = _query(database, lambda s: queries.stock(s, item or None, all_lots=all_lots))
        if not lines:
            out.print(f"no stock{f' of {safe(item)}' if item else ''} in the ledger")
            raise typer.Exit(1 if item else 0)
        # a brand owner's consigned lots are on our shelves but not ours: the owner column shows whose, when any is
        consigned = any(line.owner for line in lines)
        table = _table("stock, derived from the ledger (lots first in, first out)",
                       ("item", "location", "lot", "on hand", "allocated", "available", "unit")
                       + (("owner",) if consigned else ()),
                       numeric={"on hand", "allocated", "available"})
        for code in dict.fromkeys(line.item for line in lines):
            of_item = [line for line in lines if line.item == code]
            for line in of_item:
                style = "red" if line.lot == NEGATIVE_LOT or line.on_hand < 0 else None
                owner = (safe(line.owner or "own"),) if consigned else ()
                table.add_row(safe(line.item), safe(line.location), safe(line.lot), _qty(line.on_hand, line.unit),
                              _qty(line.allocated, line.unit), _qty(line.available, line.unit),
                              safe(line.unit or ""), *owner, style=style)
            if len(of_item) > 1:
                on_hand, allocated = queries.total(of_item)
                unit = of_item[0].unit
                table.add_row("", "", "total", _qty(on_hand, unit), _qty(allocated, unit),
                              _qty(on_hand - allocated, unit), safe(unit or ""), *(("",) if consigned else ()),
                              style="bold", end_section=True)
        out.print(table)

    @app.command("trace")
    def trace(lot: str = typer.Argument(..., help="A component lot or a finished lot."),
              database: str = DATABASE) -> None:
        """A lot's genealogy both ways (what went into it, what it went into) and its own movements."""
        result = _query(database, lambda s: queries.trace(s, lot))
        if not result.found:
            out.print(f"[red]no lot {safe(lot)}[/] in the manufacturer's ledger")
            raise typer.Exit(1)
        for item in result.items:
            out.print(_trace_tree(result, item))
            if any(line.movement.item == item for line in result.movements):
                out.print(_movements_table(result, item))

    @exceptions_app.callback()
    def exceptions(
        ctx: typer.Context,
        database: str = DATABASE,
        show_all: bool = typer.Option(False, "--all", help="Also the entries that posted or were cancelled."),
    ) -> None:
        """The parked backflushes: what each waits for and since when (`exceptions retry ID` retries one)."""
        if ctx.invoked_subcommand is not None:
            return
        entries = _query(database, lambda s: queries.exceptions(s, include_resolved=show_all))
        waiting = sum(1 for e in entries if e.status == "waiting")
        title = f"exception queue: {waiting} waiting" + (f", {len(entries) - waiting} resolved" if show_all else "")
        out.print(_exceptions_table(entries, title=title))

    @exceptions_app.command("retry")
    def exceptions_retry(
        entry_id: int = typer.Argument(..., min=1, help="The entry id, as `backflush exceptions` lists it."),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
        database: str = DATABASE,
        wait: float = typer.Option(10.0, "--wait", min=0, help="Seconds to wait for the outcome."),
    ) -> None:
        """Ask the manufacturer to try one parked backflush again now, and report whether it posted."""
        entry = _query(database, lambda s: queries.parked_entry(s, entry_id))
        if entry is None:
            out.print(f"[red]no entry {entry_id}[/] in the exception queue")
            raise typer.Exit(1)
        if entry.status != "waiting":
            out.print(f"entry {entry_id} ({safe(entry.order_id)}, {safe(entry.step)}) is {safe(entry.status)}: nothing to retry")
            return
        [envelope] = _publish(bootstrap_servers, [ParkedBackflushRetryRequested(entry_id=entry_id)], topic_prefix)
        out.print(f"retry of entry {entry_id} ({safe(entry.order_id)}, {safe(entry.step)}) requested as event {envelope.event_id}")
        _require_database(database)
        status = asyncio.run(_wait_for_resolution(database, entry_id, wait))
        if status == "posted":
            out.print(f"[green]entry {entry_id} posted[/]: {safe(entry.order_id)} carries on")
            return
        if status != "waiting":
            out.print(f"entry {entry_id} is {safe(status)}")
            raise typer.Exit(1)
        why = _query(database, lambda s: queries.why_waiting(s, entry_id))
        out.print(f"[yellow]entry {entry_id} still waits[/] after {wait:g}s: {safe(why)}")
        raise typer.Exit(1)

    @app.command("variance")
    def variance(order_id: str | None = typer.Argument(None, help="The production order (the order id)."),
                 line: str | None = typer.Option(None, "--line", help="Repetitive production: the runs of this "
                                                                     "line (with --period)."),
                 period: str | None = typer.Option(None, "--period", help="With --line: the runs of this period."),
                 database: str = DATABASE) -> None:
        """Standard (BOM for the completed quantity) against actual consumption, per component: of one production
        order, or (`--line L --period P`) of every run a line reported in a period."""
        if order_id is None:
            if line is None or period is None:
                _fail("give a production order id, or --line LINE --period PERIOD for the runs of a line")
            _run_variance(database, line, period)
            return
        view = _query(database, lambda s: queries.variance(s, order_id))
        if view is None:
            out.print(f"[red]no production order {safe(order_id)}[/]")
            raise typer.Exit(1)
        order = view.order
        out.print(f"[bold]{safe(order.order_id)}[/] {safe(order.item)}: completed {_qty(order.completed, view.unit)} of "
                  f"{_qty(order.quantity, view.unit)} {safe(view.unit or '')} ({safe(order.status)})", highlight=False)
        if not view.lines:
            out.print(f"nothing charged to {safe(order.order_id)} yet, and nothing completed")
            return
        table = _table("standard against actual, per component",
                       ("component", "standard", "actual", "variance", "%", "unit"),
                       numeric={"standard", "actual", "variance", "%"})
        for line in view.lines:
            percent = "" if line.percent is None else f"{line.percent:+}"
            style = "red" if line.variance > 0 else None
            table.add_row(safe(line.item), line.unit.format(line.standard), line.unit.format(line.actual),
                          _signed(line.variance, line.unit), percent, safe(line.unit.code), style=style)
        out.print(table)
        if order.flow in ("post", "stock") and order.completed < order.quantity:
            # the standard follows the completed quantity, but release flushed the pre lines for the whole order
            out.print(f"[dim]note: pre lines flushed at release for all {_qty(order.quantity, view.unit)}; the "
                      "standard covers the completed quantity only, so they show over-consumption until the order "
                      "completes[/]")

    @app.command("complete")
    def complete(
        order_id: str = typer.Argument(..., help="A post-product production order (or `cancel`, see below)."),
        completion_id: str | None = typer.Argument(
            None, help="After `cancel`: the completion's finished lot (ORDER-C8) or the event id `complete` printed."),
        qty: str | None = typer.Option(None, "--qty", help="The quantity completed now (partial completions add up)."),
        order: str | None = typer.Option(None, "--order", help="With `cancel`: the production order (needed when "
                                                               "the completion is named by its event id)."),
        reason: str = typer.Option("", "--reason", help="With `cancel`: why the completion is reversed."),
        by: str = typer.Option("shop-floor", "--by", help="Who reports it."),
        stock: bool = typer.Option(False, "--stock", help="The order is a make-to-stock production order "
                                                          "(`backflush make-to-stock`), not a customer's."),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
    ) -> None:
        """Report a (partial) completion of a post-product order: its post lines flush for this quantity.

        `backflush complete cancel COMPLETION-ID` reverses one completion reported by mistake (the order's latest):
        its flush, its finished lot and the completed quantity; the order stays open."""
        if order_id == "cancel" and completion_id is not None:
            target = order or _order_of_completion_lot(completion_id)
            if target is None:
                _fail(f"cannot tell the order of completion {completion_id}: give --order ORDER-ID")
            with _refusals():
                request = CompletionCancellationRequested(order_id=target, completion_id=completion_id,
                                                          reason=reason, requested_by=by, make_to_stock=stock)
            [sent] = _publish(bootstrap_servers, [request], topic_prefix)
            out.print(f"cancellation of completion {safe(completion_id)} of {safe(target)} requested by {safe(by)} "
                      f"as event {sent.event_id}")
            return
        if completion_id is not None:
            _fail(f"unexpected argument {completion_id!r}: only `complete cancel COMPLETION-ID` takes two")
        if qty is None:
            _fail("missing option --qty: the quantity completed now")
        quantity = _quantity(qty, "--qty")
        with _refusals():
            event = CompletionReported(order_id=order_id, quantity=quantity, reported_by=by, make_to_stock=stock)
        [envelope] = _publish(bootstrap_servers, [event], topic_prefix)
        out.print(f"completion of {format(quantity, 'f')} for {safe(order_id)} reported by {safe(by)} as event {envelope.event_id}")

    @app.command("make-to-stock")
    def make_to_stock(
        order_id: str = typer.Argument(..., help="The new production order's id."),
        item: str = typer.Argument(..., help="The item to make for stock (e.g. a subassembly its parents consume)."),
        qty: str = typer.Argument(..., help="The quantity to make."),
        due: str | None = typer.Option(None, "--due", help="Due date, YYYY-MM-DD."),
        by: str = typer.Option("planner", "--by", help="Who places it."),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
    ) -> None:
        """Place a make-to-stock production order: no customer order behind it. Report its completions with
        `backflush complete ORDER --qty N --stock`; each finished lot is received into component stock at the item's
        supply location, where its parents' flushes take it from. A refusal is dead-lettered with the reason."""
        quantity = _quantity(qty, "QTY")
        try:
            due_date = date.fromisoformat(due) if due is not None else None
        except ValueError:
            _fail(f"--due must be a date, YYYY-MM-DD: {due!r}")
        with _refusals():
            event = StockProductionOrderPlaced(order_id=order_id, item=item, quantity=quantity, due_date=due_date,
                                               placed_by=by)
        [envelope] = _publish(bootstrap_servers, [event], topic_prefix)
        out.print(f"make-to-stock order {safe(order_id)} for {format(quantity, 'f')} {safe(item)} placed by {safe(by)} "
                  f"as event {envelope.event_id}", highlight=False)

    run_app = typer.Typer(help="Repetitive production: runs a line reports without production orders.",
                          no_args_is_help=True)

    @run_app.command("report")
    def run_report(
        item: str = typer.Argument(..., help="The item the line produced."),
        qty: str = typer.Argument(..., help="The quantity produced."),
        line: str = typer.Option(..., "--line", help="The production line."),
        period: str = typer.Option(..., "--period", help="The period, e.g. 2026-W49 or 2026-12-07."),
        lot: str = typer.Option(..., "--lot", help="The finished lot the run produced."),
        run_id: str | None = typer.Option(None, "--run", help="The run's id (default LINE:PERIOD:LOT)."),
        by: str = typer.Option("shop-floor", "--by", help="Who reports it."),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
    ) -> None:
        """Report a run: every pre and post line of the item's BOM is flushed for the quantity at once, and the lot
        goes to the warehouse as finished-goods stock for sale. A refusal comes back as RunReportRefused."""
        quantity = _quantity(qty, "QTY")
        with _refusals():
            event = RunQuantityReported(run_id=run_id or f"{line}:{period}:{lot}", line=line, item=item,
                                        quantity=quantity, period=period, lot=lot, reported_by=by)
        [envelope] = _publish(bootstrap_servers, [event], topic_prefix)
        out.print(f"run {safe(event.run_id)}: {format(quantity, 'f')} {safe(item)} on line {safe(line)} in "
                  f"{safe(period)}, lot {safe(lot)}, reported by {safe(by)} as event {envelope.event_id}",
                  highlight=False)

    @run_app.command("cancel")
    def run_cancel(
        run_id: str = typer.Argument(..., help="The run to reverse."),
        reason: str = typer.Option("", "--reason", help="Why the run is reversed."),
        by: str = typer.Option("shop-floor", "--by", help="Who asks."),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
    ) -> None:
        """Reverse a run reported by mistake: once the warehouse has withdrawn its lot (whole and unallocated),
        its flush goes back to the original lots; otherwise the run stands and the refusal says why."""
        with _refusals():
            event = RunCancellationRequested(run_id=run_id, reason=reason, requested_by=by)
        [envelope] = _publish(bootstrap_servers, [event], topic_prefix)
        out.print(f"reversal of run {safe(run_id)} requested by {safe(by)} as event {envelope.event_id}")

    @app.command("runs")
    def runs(line: str | None = typer.Option(None, "--line"), period: str | None = typer.Option(None, "--period"),
             database: str = DATABASE) -> None:
        """The runs lines reported: line, period, item, quantity, lot, status and why."""
        views = _query(database, lambda s: run_queries.runs(s, line=line, period=period))
        table = _table(f"{len(views)} runs", ("run", "line", "period", "item", "quantity", "lot", "status", "reason"),
                       numeric={"quantity"}, wrapping={"reason"})
        for view in views:
            r = view.run
            table.add_row(safe(r.order_id), safe(view.line), safe(view.period), safe(r.item),
                          f"{_qty(r.quantity, view.unit)} {view.unit or ''}".rstrip(), safe(view.lot),
                          safe(r.status), safe(r.reason or ""))
        out.print(table)

    def _run_variance(database: str, line: str, period: str) -> None:
        lines = _query(database, lambda s: run_queries.run_variance(s, line, period))
        if not lines:
            out.print(f"no run of line {safe(line)} in {safe(period)} produced anything")
            raise typer.Exit(1)
        table = _table(f"line {safe(line)}, period {safe(period)}: standard against actual, per component",
                       ("component", "standard", "actual", "variance", "%", "unit"),
                       numeric={"standard", "actual", "variance", "%"})
        for v in lines:
            percent = "" if v.percent is None else f"{v.percent:+}"
            table.add_row(safe(v.item), v.unit.format(v.standard), v.unit.format(v.actual),
                          _signed(v.variance, v.unit), percent, safe(v.unit.code),
                          style="red" if v.variance > 0 else None)
        out.print(table)

    @app.command("consign")
    def consign(
        owner: str = typer.Argument(..., help="The brand owner whose components these are (and stay)."),
        item: str = typer.Argument(..., help="The component."),
        lot: str = typer.Argument(..., help="The owner's lot."),
        qty: str = typer.Argument(..., help="The quantity received, in the item's unit."),
        location: str | None = typer.Option(None, "--location", help="Where it is put (default: the item's supply "
                                                                     "location)."),
        receipt_id: str | None = typer.Option(None, "--receipt", help="The receipt's id (default OWNER:LOT)."),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
    ) -> None:
        """Record a brand owner's components received at our dock (contract manufacturing): the lot stays the
        owner's, and only the owner's orders (`order place --contract-manufacturing`) consume it."""
        quantity = _quantity(qty, "QTY")
        with _refusals():
            # an owner is free text ("Brand A Ltd"); the receipt id derived from it must be an identifier
            derived = re.sub(r"[^A-Za-z0-9._:/-]", "-", f"{owner}:{lot}").lstrip("._:/-")[:64]
            event = ComponentsConsigned(receipt_id=receipt_id or derived, owner=owner, item=item,
                                        lot=lot, quantity=quantity, location=location)
        [envelope] = _publish(bootstrap_servers, [event], topic_prefix)
        out.print(f"{format(quantity, 'f')} {safe(item)} lot {safe(lot)} consigned by {safe(owner)} as event "
                  f"{envelope.event_id}", highlight=False)

    @app.command("consignment-statement")
    def consignment_statement(
        owner: str = typer.Argument(..., help="The brand owner."),
        period: str = typer.Option(..., "--period", help="The month, YYYY-MM."),
        database: str = DATABASE,
    ) -> None:
        """A brand owner's stock per item and lot over a month: opening + received - consumed - scrapped = closing
        (consumed and scrapped net of reversals), each closing checked against the ledger while the month runs."""
        try:
            period_bounds(period)
        except ValueError as error:
            _fail(str(error))
        view = _query(database, lambda s: queries.consignment_statement(s, owner, period))
        if not view.lines:
            out.print(f"no consigned stock of {safe(owner)} in {safe(period)}")
            raise typer.Exit(1)
        table = _table(f"consignment statement: {safe(owner)}, {safe(period)}",
                       ("item", "lot", "opening", "received", "consumed", "scrapped", "closing", "unit"),
                       numeric={"opening", "received", "consumed", "scrapped", "closing"})
        for line in view.lines:
            unit = view.units.get(line.item)
            table.add_row(safe(line.item), safe(line.lot), _qty(line.opening, unit), _qty(line.received, unit),
                          _qty(line.consumed, unit), _qty(line.scrapped, unit), _qty(line.closing, unit),
                          safe(unit.code if unit else ""), style=None if line.reconciles else "red")
        out.print(table)
        if not all(line.reconciles for line in view.lines) or view.ledger_mismatches:
            for item, lot, balance in view.ledger_mismatches:
                out.print(f"[red]{safe(item)} lot {safe(lot)}: the ledger holds {format(balance, 'f')}[/]")
            out.print("[red]the statement does not reconcile[/]")
            raise typer.Exit(1)
        checked = " and with the ledger's balances" if view.ledger_checked else ""
        out.print(f"reconciled: opening + received - consumed - scrapped = closing for every lot{checked}")

    @app.command("production-orders")
    def production_orders(database: str = DATABASE) -> None:
        """The manufacturer's production orders: status, completed and ordered quantity, and why."""
        views = _query(database, queries.production_orders)
        table = _table(f"{len(views)} production orders", ("order", "item", "flow", "status", "completed", "reason"),
                       numeric={"completed"}, wrapping={"reason"})
        for view in views:
            o = view.order
            completed = f"{_qty(o.completed, view.unit)} of {_qty(o.quantity, view.unit)} {view.unit or ''}"
            table.add_row(safe(o.order_id), safe(o.item), safe(o.flow), safe(o.status), safe(completed.rstrip()),
                          safe(o.reason or ""))
        out.print(table)

    app.add_typer(bom_app, name="bom")
    app.add_typer(master_data_app, name="master-data")
    app.add_typer(exceptions_app, name="exceptions")
    app.add_typer(run_app, name="run")
    return app
