"""`backflush order ...`, `backflush orders`, `backflush sign`: place orders and follow them."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from backflush_shared.cli import fail
from backflush_shared.cli_text import safe
from backflush_shared.contracts import completions as c
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.common import Flow, Priority
from backflush_shared.messaging.publish import publish
from backflush_shared.persistence.database import read_once as _read

from backflush_distributor import queries

out = Console()

BOOTSTRAP = typer.Option("127.0.0.1:9092", "--bootstrap-servers", envvar="BACKFLUSH_BOOTSTRAP_SERVERS")
PREFIX = typer.Option("", "--topic-prefix", envvar="BACKFLUSH_TOPIC_PREFIX")
DATABASE = typer.Option(
    "sqlite+aiosqlite:///var/distributor.db", "--database", envvar="BACKFLUSH_DISTRIBUTOR_DATABASE_URL",
    help="The distributor's database (it answers 'where is my order').",
)


def _age(since: datetime | None) -> str:
    if since is None:
        return ""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    seconds = int((datetime.now(UTC) - since).total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def build_cli() -> typer.Typer:
    app = typer.Typer()
    order_app = typer.Typer(help="Place, cancel and follow orders.", no_args_is_help=True)

    @order_app.command("place")
    def place(
        item: str = typer.Option(..., help="The finished item ordered."),
        quantity: Decimal = typer.Option(..., "--quantity", "--qty", min=0, help="How many (in the item's unit)."),
        flow: Flow = typer.Option(..., help="pre: quality check before sale; post: consignment after completion; "
                                            "stock: sold from finished-goods stock at the warehouse."),
        partial: bool = typer.Option(False, "--partial", help="Stock flow: the holder accepts partial deliveries."),
        contract: bool = typer.Option(False, "--contract-manufacturing",
                                      help="Build it from components the holder consigned (pre and post flows)."),
        own_allowed: bool = typer.Option(False, "--own-components-allowed",
                                         help="With --contract-manufacturing: our own stock may cover what the "
                                              "holder's lots cannot (sold to the holder)."),
        holder: str = typer.Option(..., "--holder", help="The order holder (customer)."),
        ship_to: str = typer.Option("Main Street 1, Springfield", help="Delivery address."),
        due: str = typer.Option("", help="Due date YYYY-MM-DD (default: in 14 days)."),
        priority: Priority = typer.Option(Priority.NORMAL),
        order_id: str = typer.Option("", "--id", help="Order id (default: a new one)."),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
    ) -> None:
        """Publish an OrderPlaced event on the holders' intake, `orders.intake`."""
        try:
            event = o.OrderPlaced(
                order_id=order_id or f"SO-{uuid.uuid4().hex[:8].upper()}",
                order_holder=holder,
                flow=flow,
                item=item,
                quantity=quantity,
                ship_to=ship_to,
                due_date=date.fromisoformat(due) if due else date.today() + timedelta(days=14),
                priority=priority,
                partial_deliveries=partial,
                contract_manufacturing=contract,
                own_components_allowed=own_allowed,
            )
        except ValidationError as error:
            fail("; ".join(str(e["msg"]) for e in error.errors()))
        [envelope] = asyncio.run(publish(bootstrap_servers, [event], topic_prefix=topic_prefix))
        out.print(f"placed order [bold]{safe(event.order_id)}[/] ({flow.value}, {quantity} x {safe(item)}) "
                  f"as event {envelope.event_id}")

    @order_app.command("cancel")
    def cancel(
        order_id: str = typer.Argument(...),
        reason: str = typer.Option("cancelled by the order holder"),
        by: str = typer.Option("order holder", "--by"),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
    ) -> None:
        """Ask for an order's cancellation; every service undoes its part. A stock order's cancel is the
        warehouse's to decide (it may have shipped first): the order says so until it answers."""
        event = o.OrderCancellationRequested(order_id=order_id, reason=reason, requested_by=by)
        asyncio.run(publish(bootstrap_servers, [event], topic_prefix=topic_prefix))
        out.print(f"cancellation of {safe(order_id)} requested")

    @order_app.command("deliver")
    def deliver(
        order_id: str = typer.Argument(...),
        holder: str = typer.Option(..., "--holder", help="The order holder calling off its goods."),
        ship_to: str = typer.Option("Main Street 1, Springfield", help="Delivery address."),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
    ) -> None:
        """Call off a pre-product order's racked goods: the distributor checks the holder and that they are racked,
        then the warehouse ships them and frees the rack space (a refusal is dead-lettered with its reason)."""
        event = o.DeliveryRequested(order_id=order_id, order_holder=holder, ship_to=ship_to)
        asyncio.run(publish(bootstrap_servers, [event], topic_prefix=topic_prefix))
        out.print(f"delivery of {safe(order_id)} requested")

    @order_app.command("status")
    def status(order_id: str = typer.Argument(...), database: str = DATABASE,
               as_json: bool = typer.Option(False, "--json")) -> None:
        """An order's state, what it waits for, and its event history across the three services."""
        story = asyncio.run(_read(database, lambda s: queries.order_story(s, order_id)))
        if story is None:
            out.print(f"[red]no order {safe(order_id)}[/] (not placed, or not yet seen by the distributor)")
            raise typer.Exit(1)
        if as_json:
            out.print_json(json.dumps(story, default=str))
            return
        order = story["order"]
        waiting = order["waiting_for"]
        out.print(
            f"[bold]{safe(order['order_id'])}[/]  {order['flow']}  {order['quantity']} x {safe(order['item'])}  "
            f"for {safe(order['order_holder'])}\nstate: [bold]{safe(order['state'])}[/]"
            + (f"   waiting for: {safe(waiting)} (since {_age(order['waiting_since'])} ago)" if waiting else "")
        )
        history = Table(title="event history (all services)")
        for column in ("occurred at", "source", "event", "details"):
            history.add_column(column)
        for event in story["events"]:
            history.add_row(str(event["occurred_at"])[:23], safe(event["source"].rsplit("/", 1)[-1]),
                            safe(event["event_type"].removeprefix("backflush.")), safe(event["summary"][:80]))
        out.print(history)

    @app.command("orders")
    def list_orders(database: str = DATABASE, state: str = typer.Option("", help="Only orders in this state.")) -> None:
        """Every order, its state, and what it waits for."""
        rows = asyncio.run(_read(database, lambda s: queries.list_orders(s, state or None)))
        table = Table(title=f"{len(rows)} orders")
        for column in ("order", "flow", "item", "qty", "holder", "state", "waiting for / reason", "since"):
            table.add_column(column, justify="right" if column == "qty" else "left")
        for r in rows:
            table.add_row(safe(r.order_id), safe(r.flow), safe(r.item), format(r.quantity, "f"), safe(r.order_holder),
                          safe(r.state), safe(r.waiting_for or r.reason or ""), _age(r.waiting_since))
        out.print(table)

    @app.command("sign")
    def sign(
        order_id: str = typer.Argument(...),
        by: str = typer.Option(..., "--by", help="Who signs for the goods."),
        bootstrap_servers: str = BOOTSTRAP,
        topic_prefix: str = PREFIX,
    ) -> None:
        """Record the order holder's signature for a delivered (shipped) order."""
        event = c.DeliverySigned(order_id=order_id, signed_by=by, signed_at=datetime.now(UTC))
        asyncio.run(publish(bootstrap_servers, [event], topic_prefix=topic_prefix))
        out.print(f"signature of {safe(by)} for {safe(order_id)} sent")

    app.add_typer(order_app, name="order")
    return app
