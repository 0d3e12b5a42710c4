"""`backflush demo`: both flows on a local broker, the three services as separate processes, readable results.

The order mix (worked out by hand in the README's walkthrough):
- D-PRE-1   pre, 10 CHAIR-ERGO: quality check passes, flushed at release, racked, allocated, closed;
- D-PRE-QC  pre, 5 CHAIR-TASK: its inspection plan fails it: rejected with the reason, nothing flushed;
- D-POST-1  post, 20 CHAIR-ERGO: completed 8 + 7 + 5, stored as consignment, shipped, signed for, closed;
- D-POST-X  post, 10 CHAIR-ERGO: 4 completed, then cancelled: every flush reversed, consignment released;
- D-PRE-2   pre, 15 CHAIR-ERGO: short of seat assemblies, parks, and completes after a receipt of 20;
- D-STOCK-1 stock, 5 SEAT-ASSY: nothing in finished-goods stock, so it waits; line L1 reports run D-RUN-1 of 8
            SEAT-ASSY (its whole BOM flushed at once, its lot racked for sale): 5 ship, are signed for, closed;
- D-CONTRACT-1 pre, 5 CHAIR-ERGO for Nordic Brands, built from the 4 BASE-STAR-5 it consigned (lot NB-BS-1) and 2
            of ours (own components allowed): racked, allocated, closed.

`backflush demo --compose` runs the same mix against a fresh `docker compose up` deployment instead: events go to
the broker's published port, and the state is read inside the containers (deployment_view.ComposeView).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shlex
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from backflush_shared.cli_text import safe
from backflush_shared.contracts import completions as c
from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.topics import Writer
from backflush_shared.messaging.security import KafkaSecurity
from backflush_shared.deployment_view import (
    ComponentStock,
    ComposeView,
    DatabaseView,
    DeploymentView,
    DistributorSnapshot,
    ManufacturerSnapshot,
    OrderRow,
    ParkedRow,
    WarehouseSnapshot,
)
from backflush_shared.errors import BackflushError
from backflush_shared.messaging.publish import publish

console = Console()

EXPECTED_END = {
    "D-PRE-1": "closed",
    "D-PRE-QC": "rejected",
    "D-POST-1": "closed",
    "D-POST-X": "cancelled",
    "D-PRE-2": "closed",
    "D-STOCK-1": "closed",
    "D-CONTRACT-1": "closed",
}
#: The brand owner of the contract-manufacturing order, and the lot it consigns.
CONTRACT_OWNER = "Nordic Brands"
CONSIGNED = md.ComponentsConsigned(receipt_id="NB-CONSIGN-1", owner=CONTRACT_OWNER, item="BASE-STAR-5", lot="NB-BS-1",
                                   quantity=Decimal(4))
#: Its lot at the end: (received, consumed, on hand). D-CONTRACT-1 needs 6 bases (5 x 1.02 = 5.1 -> 6): the owner's 4
#: first, then 2 of ours.
EXPECTED_CONSIGNED = {(CONTRACT_OWNER, "BASE-STAR-5", "NB-BS-1"): (Decimal(4), Decimal(4), Decimal(0))}
#: The states an order does not leave.
END_STATES = frozenset({"closed", "rejected", "cancelled"})


# Worked out by hand in the README's walkthrough: what the orders and the run consume, net of D-POST-X's reversal.
EXPECTED_CONSUMED = {
    "BASE-STAR-5": Decimal(54),  # 11 (D-PRE-1) + 21 (D-POST-1) + 16 (D-PRE-2) + 6 (D-CONTRACT-1: 4 NB-BS-1 + 2 ours)
    "GAS-LIFT-100": Decimal(54),
    "CASTOR-50": Decimal(265),  # 53 + 106 + 79 + 27 (D-CONTRACT-1: 5.1 x 5.15 = 26.265)
    # 125 + 250 + 188 + 49 (D-RUN-1: 8 x 6 x 1.02 = 48.96) + 63 (D-CONTRACT-1: 5 x 8 x 1.05 + 5.1 x 4 = 62.4)
    "SCREW-M6": Decimal(675),
    "SEAT-ASSY": Decimal(50),  # 10 + 20 + 15 + 5
    "BACKREST-MESH": Decimal(50),
    "ARMREST-PAIR": Decimal(50),
    # D-RUN-1's pre lines: 8 SEAT-ASSY x 1 x 1.01 = 8.08 -> 9; x 1.25 x 1.05 = 10.5 kg; x 0.8 x 1.10 = 7.04 m
    "SEAT-SHELL": Decimal(9),
    "FOAM-PU": Decimal("10.5"),
    "FABRIC-MESH": Decimal("7.04"),
}


class DemoError(BackflushError):
    pass


class DeploymentNotFreshError(DemoError):
    """The demo's figures are worked out for an empty deployment; one that has orders or stock would differ."""


@dataclass
class DemoResult:
    """What the demo saw at the end, and whether it agrees with the README's walkthrough."""

    end_states: dict[str, str]
    #: Seconds from placing each order to first seeing it in its end state (to the poll's resolution).
    took: dict[str, float]
    consumed: dict[str, str]
    seconds: float
    ok: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass
class Demo:
    view: DeploymentView
    bootstrap_servers: str
    topic_prefix: str = ""
    step: str = "starting"
    started: float = 0.0
    poll_s: float = 0.3
    placed_at: dict[str, float] = field(default_factory=dict)
    ended_at: dict[str, float] = field(default_factory=dict)
    last_orders: list[OrderRow] = field(default_factory=list)
    #: On a broker with ACLs (the compose deployment): the settings of the principal that may write each writer's
    #: topics. Empty: every event is sent with the environment's settings (the plaintext local broker).
    speakers: Mapping[Writer, KafkaSecurity] = field(default_factory=dict)

    async def publish(self, *events: Event) -> None:
        by_writer: dict[Writer | None, list[Event]] = {}
        for event in events:
            by_writer.setdefault(event.topic.writer if self.speakers else None, []).append(event)
        for writer, written in by_writer.items():
            await publish(self.bootstrap_servers, written, topic_prefix=self.topic_prefix, source="/backflush/demo",
                          security=self.speakers.get(writer) if writer is not None else None)
        now = time.monotonic()
        for event in events:
            if isinstance(event, o.OrderPlaced):
                self.placed_at.setdefault(event.order_id, now)

    async def orders(self) -> list[OrderRow]:
        rows = (await self.view.snapshot("distributor", DistributorSnapshot)).orders
        now = time.monotonic()
        for row in rows:
            if row.state in END_STATES:
                self.ended_at.setdefault(row.order_id, now)
        self.last_orders = rows
        return rows

    async def manufacturer(self) -> ManufacturerSnapshot:
        return await self.view.snapshot("manufacturer", ManufacturerSnapshot)

    async def component_stock(self) -> dict[str, ComponentStock]:
        """On hand at MAIN per component, with what was received and consumed (net of reversals) so far."""
        return (await self.manufacturer()).component_stock

    async def exception_queue(self) -> list[ParkedRow]:
        return (await self.manufacturer()).parked

    def took(self, order_id: str) -> float | None:
        if order_id in self.placed_at and order_id in self.ended_at:
            return max(0.0, self.ended_at[order_id] - self.placed_at[order_id])
        return None

    async def wait(self, what: str, check: Callable[[], Awaitable[bool]], live: Live, timeout: float = 90) -> None:
        self.step = what
        deadline = time.monotonic() + timeout
        last_error = ""
        while time.monotonic() < deadline:
            try:
                if await check():
                    live.update(self.render())
                    return
                last_error = ""
            except Exception as error:  # noqa: BLE001 - the tables appear once a service has migrated
                last_error = f" (last read failed: {error})"
            live.update(self.render())
            await asyncio.sleep(self.poll_s)
        raise DemoError(f"the demo did not see '{what}' within {timeout:.0f} s{last_error}; the services' logs: "
                        f"{self.view.logs_hint}")

    async def state_is(self, expected: dict[str, str | tuple[str, str]]) -> bool:
        rows = {r.order_id: r for r in await self.orders()}
        for order_id, want in expected.items():
            row = rows.get(order_id)
            if row is None:
                return False
            state, waiting = want if isinstance(want, tuple) else (want, None)
            if row.state != state or (waiting is not None and row.waiting_for != waiting):
                return False
        return True

    def render(self) -> Group:
        table = Table(title="orders", expand=False)
        for column in ("order", "flow", "qty", "item", "state", "waiting for"):
            table.add_column(column)
        for r in self.last_orders:
            table.add_row(safe(r.order_id), safe(r.flow), format(r.quantity, "f"), safe(r.item), safe(r.state),
                          safe(r.waiting_for or ""))
        elapsed = time.monotonic() - self.started
        return Group(Text(f"[{elapsed:5.1f}s] {self.step} ...", style="bold cyan"), table)


async def require_fresh(demo: Demo) -> None:
    """Refuse a deployment that already has orders or stock: the walkthrough's figures start from nothing."""
    orders = await demo.orders()
    if orders:
        raise DeploymentNotFreshError(
            f"this deployment already has {len(orders)} orders ({orders[0].order_id} first); the demo's figures "
            "start from an empty one: `docker compose down --volumes`, then `docker compose up --detach --wait`")
    received = {item: entry.received for item, entry in (await demo.component_stock()).items() if entry.received}
    if received:
        raise DeploymentNotFreshError(
            f"this deployment already holds component stock ({', '.join(sorted(received))}); the demo's figures "
            "start from an empty one: `docker compose down --volumes`, then `docker compose up --detach --wait`")


async def run_demo(view: DeploymentView, bootstrap_servers: str, sample_data: Path, *, topic_prefix: str = "",
                   fresh_check: bool = False, poll_s: float = 0.3,
                   speakers: Mapping[Writer, KafkaSecurity] | None = None) -> DemoResult:
    from backflush_manufacturer.master_data_events import events_from
    from backflush_manufacturer.master_data_files import load_master_data

    demo = Demo(view, bootstrap_servers, topic_prefix, started=time.monotonic(), poll_s=poll_s,
                speakers=dict(speakers or {}))
    due = dt.date.today() + dt.timedelta(days=14)

    def order(order_id: str, flow: str, item: str, quantity: int, holder: str, **terms: bool) -> o.OrderPlaced:
        return o.OrderPlaced(order_id=order_id, order_holder=holder, flow=flow, item=item,
                             quantity=Decimal(quantity), ship_to="12 Harbour Street, Rotterdam", due_date=due, **terms)

    master = events_from(load_master_data(sample_data))
    if fresh_check:
        await require_fresh(demo)
    with Live(demo.render(), console=console, refresh_per_second=4, transient=False) as live:
        await demo.publish(*master)
        received_items = {e.item for e in master if isinstance(e, md.ComponentsReceived)}

        async def stocked() -> bool:
            stock = await demo.component_stock()
            return all(item in stock and stock[item].received > 0 for item in received_items)
        await demo.wait(f"loading master data ({len(master)} events: items, BOMs, inspection plans, stock)",
                        stocked, live)
        before = await demo.component_stock()

        await demo.publish(
            order("D-PRE-1", "pre", "CHAIR-ERGO", 10, "Acme Offices"),
            order("D-PRE-QC", "pre", "CHAIR-TASK", 5, "Acme Offices"),
            order("D-POST-1", "post", "CHAIR-ERGO", 20, "Bluebird Hotels"),
            order("D-POST-X", "post", "CHAIR-ERGO", 10, "Cobalt Cowork"),
        )

        async def phase_one() -> bool:
            if not await demo.state_is({"D-PRE-1": "closed", "D-PRE-QC": "rejected"}):
                return False
            statuses = (await demo.manufacturer()).production_orders
            return all(statuses.get(i) == "released" for i in ("D-POST-1", "D-POST-X"))
        await demo.wait("pre-product orders through quality check, flush, racks and allocation", phase_one, live)

        await demo.publish(c.CompletionReported(order_id="D-POST-1", quantity=Decimal(8)),
                           c.CompletionReported(order_id="D-POST-1", quantity=Decimal(7)),
                           c.CompletionReported(order_id="D-POST-X", quantity=Decimal(4)))
        await demo.wait("partial completions: 8 and 7 of D-POST-1, 4 of D-POST-X",
                        lambda: demo.state_is({"D-POST-1": ("in-production", "completion of the remaining 5"),
                                               "D-POST-X": ("in-production", "completion of the remaining 6")}),
                        live)

        await demo.publish(o.OrderCancellationRequested(order_id="D-POST-X", reason="project postponed",
                                                        requested_by="Cobalt Cowork"),
                           c.CompletionReported(order_id="D-POST-1", quantity=Decimal(5)))
        await demo.wait("D-POST-X cancelled midway; D-POST-1's last 5 completed, final order, shipment",
                        lambda: demo.state_is({"D-POST-X": "cancelled", "D-POST-1": ("shipped", "signature")}),
                        live)

        await demo.publish(order("D-PRE-2", "pre", "CHAIR-ERGO", 15, "Delta Design"))
        await demo.wait("D-PRE-2 short of seat assemblies: its completion flush parks whole",
                        lambda: demo.state_is({"D-PRE-2": ("waiting-for-components", "component stock")}), live)
        exceptions_while_parked = await demo.exception_queue()

        await demo.publish(md.ComponentsReceived(receipt_id="PO-4711", item="SEAT-ASSY", lot="SA-2412-02",
                                                 quantity=Decimal(20)))
        await demo.wait("receipt of 20 seat assemblies releases the parked flush",
                        lambda: demo.state_is({"D-PRE-2": "closed"}), live)

        await demo.publish(CONSIGNED, order("D-CONTRACT-1", "pre", "CHAIR-ERGO", 5, CONTRACT_OWNER,
                                            contract_manufacturing=True, own_components_allowed=True))
        await demo.wait(f"D-CONTRACT-1 for {CONTRACT_OWNER}: its 4 consigned bases first, then 2 of ours",
                        lambda: demo.state_is({"D-CONTRACT-1": "closed"}), live)

        await demo.publish(order("D-STOCK-1", "stock", "SEAT-ASSY", 5, "Echo Studios"))
        await demo.wait("D-STOCK-1 from stock: nothing in finished-goods stock yet, it waits",
                        lambda: demo.state_is({"D-STOCK-1": ("waiting-for-stock",
                                                             "finished-goods stock: 5 units needed, 0 free")}), live)
        await demo.publish(c.RunQuantityReported(run_id="D-RUN-1", line="L1", item="SEAT-ASSY", quantity=Decimal(8),
                                                 period=due.isoformat(), lot="SA-RUN-1"))
        await demo.wait("line L1 reports run D-RUN-1 of 8 seat assemblies: racked for sale, D-STOCK-1 ships",
                        lambda: demo.state_is({"D-STOCK-1": ("shipped", "signature")}), live)

        await demo.publish(c.DeliverySigned(order_id="D-POST-1", signed_by="R. Bluebird",
                                            signed_at=dt.datetime.now(dt.UTC)),
                           c.DeliverySigned(order_id="D-STOCK-1", signed_by="E. Echo",
                                            signed_at=dt.datetime.now(dt.UTC)))
        await demo.wait("the order holders sign for D-POST-1 and D-STOCK-1", lambda: demo.state_is(EXPECTED_END), live)
        demo.step = "done"
        live.update(demo.render())

    if not console.is_terminal:
        console.line()  # the live table's last frame ends without a newline when the output is not a terminal
    await print_results(demo, before, exceptions_while_parked)
    rows = {r.order_id: r.state for r in await demo.orders()}
    wrong = {k: rows.get(k) for k, v in EXPECTED_END.items() if rows.get(k) != v}
    after = await demo.component_stock()
    consumed = {item: entry.consumed - before[item].consumed for item, entry in after.items()
                if entry.consumed - before[item].consumed}
    consigned = {(lot.owner, lot.item, lot.lot): (lot.received, lot.consumed, lot.on_hand)
                 for lot in (await demo.manufacturer()).consigned}
    seconds = time.monotonic() - demo.started
    result = DemoResult(
        end_states=rows,
        took={order_id: round(took, 1) for order_id in rows if (took := demo.took(order_id)) is not None},
        consumed={item: format(quantity, "f") for item, quantity in consumed.items()},
        seconds=round(seconds, 1),
        ok=not wrong and consumed == EXPECTED_CONSUMED and consigned == EXPECTED_CONSIGNED,
    )
    if not result.ok:
        console.print(f"[bold red]the results differ from the README's walkthrough:[/] end states {safe(wrong)}, "
                      f"consumed {safe(consumed)} instead of {safe(EXPECTED_CONSUMED)}, consigned lots "
                      f"{safe(consigned)} instead of {safe(EXPECTED_CONSIGNED)}")
    else:
        console.print(f"[bold green]demo finished in {seconds:.1f} s:[/] every order ended, "
                      "and every component was consumed, as the README's walkthrough says.")
    return result


async def print_results(demo: Demo, before: dict[str, ComponentStock], parked_earlier: list[ParkedRow]) -> None:
    orders = Table(title="every order's end state")
    for column in ("order", "flow", "item", "qty", "holder", "state", "waiting for", "took"):
        orders.add_column(column, justify="right" if column in ("qty", "took") else "left")
    for r in await demo.orders():
        took = demo.took(r.order_id)
        orders.add_row(safe(r.order_id), safe(r.flow), safe(r.item), format(r.quantity, "f"), safe(r.order_holder),
                       safe(r.state), safe(r.waiting_for or "-"), "-" if took is None else f"{took:.1f} s")
    console.print(orders)

    manufacturer = await demo.manufacturer()
    stock = Table(title="component stock at MAIN (manufacturer's ledger)")
    for column in ("item", "unit", "before", "received", "consumed", "after"):
        stock.add_column(column, justify="left" if column in ("item", "unit") else "right")
    for item, entry in manufacturer.component_stock.items():
        start = before[item] if item in before else ComponentStock(unit=entry.unit)
        stock.add_row(safe(item), safe(entry.unit), format(start.on_hand, "f"), format(entry.received - start.received, "f"),
                      format(entry.consumed - start.consumed, "f"), format(entry.on_hand, "f"))
    console.print(stock)

    if manufacturer.consigned:
        owned = Table(title="consigned components, by brand owner (their property, consumed only by their orders)")
        for column in ("owner", "item", "lot", "received", "consumed", "on hand"):
            owned.add_column(column, justify="left" if column in ("owner", "item", "lot") else "right")
        for lot in manufacturer.consigned:
            owned.add_row(safe(lot.owner), safe(lot.item), safe(lot.lot), format(lot.received, "f"),
                          format(lot.consumed, "f"), format(lot.on_hand, "f"))
        console.print(owned)

    warehouse = await demo.view.snapshot("warehouse", WarehouseSnapshot)
    owners = Table(title="finished goods at the warehouse, by owner")
    for column in ("owner", "storage", "item", "status", "units"):
        owners.add_column(column, justify="right" if column == "units" else "left")
    for row in warehouse.stock_by_owner:
        owners.add_row(safe(row.owner), safe(row.kind), safe(row.item), safe(row.status), format(row.quantity, "f"))
    console.print(owners)

    racks = Table(title="racks and storage locations")
    for column in ("location", "kind", "capacity", "used"):
        racks.add_column(column)
    for use in warehouse.locations:
        racks.add_row(safe(use.code), safe(use.kind), format(use.capacity, "f"), format(use.used, "f"))
    console.print(racks)

    queue = Table(title="exception queue (parked backflushes)")
    for column in ("id", "order", "step", "status", "reason"):
        queue.add_column(column)
    for entry in manufacturer.parked:
        queue.add_row(str(entry.id), safe(entry.order_id), safe(entry.step), safe(entry.status), safe(entry.reason))
    console.print(queue)
    if parked_earlier:
        console.print(Panel.fit(f"while D-PRE-2 waited, the queue said: {safe(parked_earlier[0].reason)}",
                                title="exception queue during the run"))


def _finish(result: DemoResult, result_json: Path | None) -> int:
    if result_json is not None:
        result_json.parent.mkdir(parents=True, exist_ok=True)
        result_json.write_text(result.to_json())
    return 0 if result.ok else 1


#: The first line of `make demo`: its broker has no authentication, no encryption and no ACLs.
PLAINTEXT_NOTE = ("note: the demo's broker is PLAINTEXT (no authentication, no encryption, no ACLs) on 127.0.0.1 "
                  "only; `make up` runs the deployment with SASL_SSL and ACLs (README, \"Security\")")


def first_line(bootstrap_servers: str | None, security: KafkaSecurity) -> str:
    """What the demo says before anything else: how (in)secure the broker it uses is (issue 16)."""
    if bootstrap_servers is None:
        return PLAINTEXT_NOTE
    if security.security_protocol == "PLAINTEXT":
        return (f"note: the demo connects to {bootstrap_servers} with PLAINTEXT (no authentication, no "
                "encryption); `make up` runs the deployment with SASL_SSL and ACLs (README, \"Security\")")
    return f"note: the demo connects to {bootstrap_servers} with {security.describe()}"


def demo_command(bootstrap_servers: str | None, workdir: Path, sample_data: Path,
                 result_json: Path | None = None) -> int:
    """Start what is needed, run the demo, and stop everything it started, also on Ctrl-C."""
    from backflush_shared.local_kafka import LocalKafka
    from backflush_shared.local_stack import LocalStack

    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    broker: LocalKafka | None = None
    stack: LocalStack | None = None
    try:
        from backflush_shared.messaging.security import security_from_environment

        # Issue 16: the demo's broker is not the deployment; say so before anything else.
        console.print(first_line(bootstrap_servers, security_from_environment()), markup=False, soft_wrap=True)
        if bootstrap_servers is None:
            console.print("starting a local Apache Kafka broker (fetched from Maven Central on first use) ...")
            broker = LocalKafka().start()
            bootstrap_servers = broker.bootstrap_servers
            console.print(f"Kafka {broker.version} serving at {bootstrap_servers}")
        stack = LocalStack(bootstrap_servers=bootstrap_servers, workdir=workdir,
                           topic_prefix=f"demo{int(time.time())}.")
        console.print(f"starting manufacturer, distributor and warehouse as separate processes (logs: {workdir}) ...")
        stack.start()
        view = DatabaseView({name: stack.database_url(name) for name in stack.services}, f"the logs in {workdir}")
        result = asyncio.run(run_demo(view, bootstrap_servers, sample_data, topic_prefix=stack.topic_prefix))
        return _finish(result, result_json)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping everything the demo started[/]")
        return 130
    finally:
        if stack is not None:
            stack.stop()
            console.print("services stopped")
        if broker is not None:
            broker.stop()
            console.print("broker stopped")


def compose_speakers(principals: Path) -> dict[Writer, KafkaSecurity]:
    """Per writer, the settings in `principals/<name>.env` of the principal whose role it is (compose_secrets.py)."""
    from backflush_shared.compose_secrets import principal_security
    from backflush_shared.local_kafka import SECURE_PRINCIPALS

    speakers: dict[Writer, KafkaSecurity] = {}
    for name, role in SECURE_PRINCIPALS.items():
        if role in {writer.value for writer in Writer} and (principals / f"{name}.env").is_file():
            speakers[Writer(role)] = principal_security(principals / f"{name}.env")
    return speakers


def compose_demo_command(bootstrap_servers: str, compose_command: str, project: str, sample_data: Path,
                         result_json: Path | None = None, topic_prefix: str = "",
                         principals: Path | None = None) -> int:
    """The same mix against a running `docker compose up` deployment; it starts and stops nothing. `principals`:
    the host clients' settings of a secure deployment (compose_secrets.py), each event sent as its topic's writer."""
    speakers = compose_speakers(principals) if principals is not None and principals.is_dir() else {}
    compose = shlex.split(compose_command) + (["--project-name", project] if project else [])
    view = ComposeView(compose)
    console.print(f"placing the demo's orders through {bootstrap_servers}; reading the services' state with "
                  f"`{' '.join(compose)} exec` ...")
    try:
        result = asyncio.run(run_demo(view, bootstrap_servers, sample_data, topic_prefix=topic_prefix,
                                      fresh_check=True, poll_s=0.5, speakers=speakers))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: the deployment keeps running (`docker compose down` stops it)[/]")
        return 130
    return _finish(result, result_json)
