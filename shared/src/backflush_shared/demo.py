"""`backflush demo`: both flows on a local broker, the three services as separate processes, readable results.

The order mix (worked out by hand in the README's walkthrough):
- D-PRE-1   pre, 10 CHAIR-ERGO: quality check passes, flushed at release, racked, allocated, closed;
- D-PRE-QC  pre, 5 CHAIR-TASK: its inspection plan fails it: rejected with the reason, nothing flushed;
- D-POST-1  post, 20 CHAIR-ERGO: completed 8 + 7 + 5, stored as consignment, shipped, signed for, closed;
- D-POST-X  post, 10 CHAIR-ERGO: 4 completed, then cancelled: every flush reversed, consignment released;
- D-PRE-2   pre, 15 CHAIR-ERGO: short of seat assemblies, parks, and completes after a receipt of 20.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.errors import BackflushError
from backflush_shared.local_stack import LocalStack
from backflush_shared.messaging.publish import publish
from backflush_shared.persistence.database import Database

console = Console()

EXPECTED_END = {
    "D-PRE-1": "closed",
    "D-PRE-QC": "rejected",
    "D-POST-1": "closed",
    "D-POST-X": "cancelled",
    "D-PRE-2": "closed",
}


# Worked out by hand in the README's walkthrough: what the five orders consume, net of D-POST-X's reversal.
EXPECTED_CONSUMED = {
    "BASE-STAR-5": Decimal(48),  # 11 (D-PRE-1) + 21 (D-POST-1) + 16 (D-PRE-2)
    "GAS-LIFT-100": Decimal(48),
    "CASTOR-50": Decimal(238),  # 53 + 106 + 79
    "SCREW-M6": Decimal(563),  # 125 + 250 + 188
    "SEAT-ASSY": Decimal(45),  # 10 + 20 + 15
    "BACKREST-MESH": Decimal(45),
    "ARMREST-PAIR": Decimal(45),
}


class DemoError(BackflushError):
    pass


@dataclass
class ComponentStock:
    unit: str
    on_hand: Decimal = Decimal(0)
    received: Decimal = Decimal(0)
    consumed: Decimal = Decimal(0)


@dataclass
class Demo:
    stack: LocalStack
    sample_data: Path
    step: str = "starting"
    started: float = 0.0

    async def publish(self, *events: Event) -> None:
        await publish(self.stack.bootstrap_servers, list(events), topic_prefix=self.stack.topic_prefix,
                      source="/backflush/demo")

    async def read(self, service: str, work: Callable[[Any], Awaitable[Any]]) -> Any:
        database = Database(self.stack.database_url(service))
        try:
            async with database.reading() as session:
                return await work(session)
        finally:
            await database.close()

    async def orders(self) -> list[Any]:
        from backflush_distributor import queries

        try:
            return list(await self.read("distributor", queries.list_orders))
        except Exception:  # noqa: BLE001 - the tables appear once the distributor has migrated
            return []

    async def production_status(self, order_id: str) -> str | None:
        from backflush_manufacturer.adapters import repository

        order = await self.read("manufacturer", lambda s: repository.load_order(s, order_id))
        return order.status if order else None

    async def wait(self, what: str, check: Callable[[], Awaitable[bool]], live: Live, timeout: float = 90) -> None:
        self.step = what
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live.update(await self.render())
            with contextlib.suppress(Exception):
                if await check():
                    return
            await asyncio.sleep(0.3)
        raise DemoError(f"the demo did not see '{what}' within {timeout:.0f} s; service logs are in "
                        f"{self.stack.workdir}")

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

    async def render(self) -> Group:
        table = Table(title="orders", expand=False)
        for column in ("order", "flow", "qty", "item", "state", "waiting for"):
            table.add_column(column)
        for r in await self.orders():
            table.add_row(r.order_id, r.flow, format(r.quantity, "f"), r.item, r.state, r.waiting_for or "")
        elapsed = time.monotonic() - self.started
        return Group(Text(f"[{elapsed:5.1f}s] {self.step} ...", style="bold cyan"), table)

    async def component_stock(self) -> dict[str, ComponentStock]:
        """On hand at MAIN per component, with what was received and consumed (net of reversals) so far."""
        from backflush_manufacturer.adapters import repository
        from backflush_manufacturer.domain.ledger import MovementReason

        async def work(session: Any) -> dict[str, ComponentStock]:
            master = await repository.MasterDataCache().get(session)
            stock: dict[str, ComponentStock] = {}
            for code, item in sorted(master.catalogue.items.items()):
                if not item.phantom and not master.catalogue.bom(code) or code == "SEAT-ASSY":
                    stock[code] = ComponentStock(item.unit.code)
            for _id, movement, _at in await repository.all_movements(session):
                entry = stock.get(movement.item)
                if entry is None or movement.location != "MAIN" or movement.is_allocation:
                    continue
                entry.on_hand += movement.quantity
                if movement.reason is MovementReason.RECEIPT:
                    entry.received += movement.quantity
                elif movement.reason is not MovementReason.SETTLEMENT:
                    entry.consumed -= movement.quantity
            return stock

        return dict(await self.read("manufacturer", work))


async def run_demo(stack: LocalStack, sample_data: Path) -> int:
    from backflush_manufacturer.master_data_events import events_from
    from backflush_manufacturer.master_data_files import load_master_data

    demo = Demo(stack, sample_data, started=time.monotonic())
    due = dt.date.today() + dt.timedelta(days=14)

    def order(order_id: str, flow: str, item: str, quantity: int, holder: str) -> o.OrderPlaced:
        return o.OrderPlaced(order_id=order_id, order_holder=holder, flow=flow, item=item,
                             quantity=Decimal(quantity), ship_to="12 Harbour Street, Rotterdam", due_date=due)

    with Live(await demo.render(), console=console, refresh_per_second=4, transient=False) as live:
        master = events_from(load_master_data(sample_data))
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
            return await demo.state_is({"D-PRE-1": "closed", "D-PRE-QC": "rejected"}) and all(
                [await demo.production_status(i) == "released" for i in ("D-POST-1", "D-POST-X")])
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
        exceptions_while_parked = await exception_queue(demo)

        await demo.publish(md.ComponentsReceived(receipt_id="PO-4711", item="SEAT-ASSY", lot="SA-2412-02",
                                                 quantity=Decimal(20)))
        await demo.wait("receipt of 20 seat assemblies releases the parked flush",
                        lambda: demo.state_is({"D-PRE-2": "closed"}), live)

        await demo.publish(c.DeliverySigned(order_id="D-POST-1", signed_by="R. Bluebird",
                                            signed_at=dt.datetime.now(dt.UTC)))
        await demo.wait("the order holder signs for D-POST-1", lambda: demo.state_is(EXPECTED_END), live)
        demo.step = "done"
        live.update(await demo.render())

    await print_results(demo, before, exceptions_while_parked)
    rows = {r.order_id: r.state for r in await demo.orders()}
    wrong = {k: rows.get(k) for k, v in EXPECTED_END.items() if rows.get(k) != v}
    after = await demo.component_stock()
    consumed = {item: entry.consumed - before[item].consumed for item, entry in after.items()
                if entry.consumed - before[item].consumed}
    if wrong or consumed != EXPECTED_CONSUMED:
        console.print(f"[bold red]the results differ from the README's walkthrough:[/] end states {wrong}, "
                      f"consumed {consumed} instead of {EXPECTED_CONSUMED}")
        return 1
    console.print(f"[bold green]demo finished in {time.monotonic() - demo.started:.1f} s:[/] every order ended, "
                  "and every component was consumed, as the README's walkthrough says.")
    return 0


async def exception_queue(demo: Demo) -> list[Any]:
    from backflush_manufacturer.adapters import repository

    return list(await demo.read("manufacturer", repository.all_parked))


async def print_results(demo: Demo, before: dict[str, ComponentStock], parked_earlier: list[Any]) -> None:
    from backflush_distributor import queries as distributor_queries
    from backflush_warehouse import queries as warehouse_queries

    orders = Table(title="every order's end state")
    for column in ("order", "flow", "item", "qty", "holder", "state", "waiting for"):
        orders.add_column(column, justify="right" if column == "qty" else "left")
    for r in await demo.read("distributor", distributor_queries.list_orders):
        orders.add_row(r.order_id, r.flow, r.item, format(r.quantity, "f"), r.order_holder, r.state,
                       r.waiting_for or "-")
    console.print(orders)

    after = await demo.component_stock()
    stock = Table(title="component stock at MAIN (manufacturer's ledger)")
    for column in ("item", "unit", "before", "received", "consumed", "after"):
        stock.add_column(column, justify="left" if column in ("item", "unit") else "right")
    for item, entry in after.items():
        start = before[item] if item in before else ComponentStock(entry.unit)
        stock.add_row(item, entry.unit, format(start.on_hand, "f"), format(entry.received - start.received, "f"),
                      format(entry.consumed - start.consumed, "f"), format(entry.on_hand, "f"))
    console.print(stock)

    owners = Table(title="finished goods at the warehouse, by owner")
    for column in ("owner", "storage", "item", "status", "units"):
        owners.add_column(column, justify="right" if column == "units" else "left")
    for owner, kind, item, status, quantity in await demo.read("warehouse", warehouse_queries.stock_by_owner):
        owners.add_row(owner, kind, item, status, format(quantity, "f"))
    console.print(owners)

    racks = Table(title="racks and storage locations")
    for column in ("location", "kind", "capacity", "used"):
        racks.add_column(column)
    for use in await demo.read("warehouse", warehouse_queries.location_use):
        racks.add_row(use.code, use.kind, format(use.capacity, "f"), format(use.used, "f"))
    console.print(racks)

    queue = Table(title="exception queue (parked backflushes)")
    for column in ("id", "order", "step", "status", "reason"):
        queue.add_column(column)
    for entry in await exception_queue(demo):
        queue.add_row(str(entry.id), entry.order_id, entry.step, entry.status, entry.reason)
    console.print(queue)
    if parked_earlier:
        console.print(Panel.fit(f"while D-PRE-2 waited, the queue said: {parked_earlier[0].reason}",
                                title="exception queue during the run"))


def demo_command(bootstrap_servers: str | None, workdir: Path, sample_data: Path) -> int:
    """Start what is needed, run the demo, and stop everything it started, also on Ctrl-C."""
    from backflush_shared.local_kafka import LocalKafka

    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    broker: LocalKafka | None = None
    stack: LocalStack | None = None
    try:
        if bootstrap_servers is None:
            console.print("starting a local Apache Kafka broker (fetched from Maven Central on first use) ...")
            broker = LocalKafka().start()
            bootstrap_servers = broker.bootstrap_servers
            console.print(f"Kafka {broker.version} serving at {bootstrap_servers}")
        stack = LocalStack(bootstrap_servers=bootstrap_servers, workdir=workdir,
                           topic_prefix=f"demo{int(time.time())}.")
        console.print(f"starting manufacturer, distributor and warehouse as separate processes (logs: {workdir}) ...")
        stack.start()
        return asyncio.run(run_demo(stack, sample_data))
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
