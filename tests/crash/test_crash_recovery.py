"""Crash test: 200+ orders of every flow in flight, with repetitive production runs filling finished-goods stock,
while every service is SIGKILLed at random moments (twice each) and the broker is restarted once. At the end nothing
is lost and nothing is doubled, counted.

A broker of its own (it is restarted, so it cannot be the session broker other tests share), the three services
as separate processes. In the SQLite variant the broker has SASL_SSL and ACLs on (issue 16): every service, the
test's publisher (as the holders', the shop floor's and the planner's principals) and its readers authenticate, and
the broker restart keeps the credentials (KRaft's metadata) and the certificates. The random moments come from a seed printed at the start; run again with
`BACKFLUSH_CRASH_SEED=<seed>` to replay the same order mix and the same kill schedule.

The order mix (`support.crash.DEFAULT_MIX`, kinds in `ORDER_KINDS`): 120 pre-product orders, 80 post-product
orders (about half of them completed in two partial completions, a quarter signed for), 4 orders of a chair whose
quality check fails, 4 pre-product orders cancelled as soon as placed, 6 post-product orders cancelled after a first
partial completion; quantities 1 to 5. Seat assemblies cover only 45 % of the chairs at the start, so flushes park
in the exception queue and are released by two receipts that arrive while the orders flow. Beside them, issue 17's
forms: 16 orders sold from finished-goods stock and 8 that accept partial deliveries, every delivery signed for;
their stock comes from runs of seat assemblies reported by line L1 (`plan_runs`): one run reported and reversed
first (its lot withdrawn whole before any stock order exists), then four runs that cover every stock order and 3
spare, the first before the stock orders, the last ones after them, so orders wait for stock and are served as
later runs arrive; 4 more stock orders that their holders cancel as a run is reported (the warehouse accepts or,
having shipped first, refuses). And 18 contract-manufacturing orders of two brand owners, whose lots the driver
consigns (`plan_consignments`): BRAND-A's orders may use our own components, BRAND-B's may not and park on its
shortage until its late lot comes. At the end: every stock order closed (or its cancel accepted, nothing shipped),
run quantities reported = lots stocked at the warehouse minus reversed, no run's lot allocated above what it
racked, owner stock reconciled per lot with the owners' reports, and `backflush audit` clean.

The PostgreSQL variant runs two processes of every service (one database per service on a throw-away server,
topics of 3 partitions shared by the two instances' consumers), kills every process twice and restarts the broker
once, with about half the orders (`POSTGRES_MIX`): twelve processes on two cores.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import secrets
import time
from collections import Counter
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from backflush_manufacturer.adapters import tables as mf_tables
from backflush_manufacturer.master_data_files import load_master_data
from backflush_warehouse.adapters import tables as wh_tables
from backflush_shared.audit import audit
from backflush_shared.contracts import completions as c
from backflush_shared.contracts import orders as o
from backflush_shared.local_kafka import LocalKafka
from backflush_shared.messaging.security import KafkaSecurity
from support.broker import SECURE_USERS, SPEAKER_OF
from support.crash import (
    Chaos,
    ChaosLog,
    Consignment,
    Databases,
    PlannedOrder,
    PlannedRun,
    ReliablePublisher,
    consumer_lag,
    count_log_lines,
    expected_run_consumption,
    in_flight_counter,
    order_placed,
    plan_consignments,
    plan_orders,
    plan_runs,
    plan_seat_stock,
    reckon,
    records_on_topics,
    run_reported,
    say,
    seat_receipt,
    STOCK_ITEM,
    write_master_data,
)
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine
from support.flows import Flows
from support.postgres import provide_postgres
from support.stack import make_stack

from backflush_shared.local_stack import SERVICES

pytestmark = [pytest.mark.crash, pytest.mark.kafka, pytest.mark.e2e, pytest.mark.timeout(600)]

PLACE_PER_SECOND = 12
STOCK_PER_SECOND = 4  # stock orders, placed beside the others
DRIVE_TIMEOUT_S = 150.0  # placing, completing, cancelling, signing: every order driven to its last step
QUIET_TIMEOUT_S = 120.0  # then: every order at its end, every outbox drained, every consumer caught up
WAREHOUSE_LAYOUT = {
    # room for every chair of the mix: waiting for rack space is tested elsewhere
    "BACKFLUSH_RACKS": "DC-A1=400,DC-A2=400,DC-B1=400",
    "BACKFLUSH_CONSIGNMENT_LOCATIONS": "CS-01=400,CS-02=400",
}


class Driver:
    """Plays the order holders and the shop floor: places the orders, reports completions once the manufacturer
    has released an order, cancels, signs for shipped goods, receives seat assemblies, and reports the runs of
    seat assemblies that fill finished-goods stock for the stock orders (one of them reversed first)."""

    def __init__(self, orders: list[PlannedOrder], publisher: ReliablePublisher, dbs: Databases,
                 receipts: tuple[tuple[str, int], ...], runs: list[PlannedRun], lead_order: str | None,
                 consignments: list[Consignment]) -> None:
        self.orders = orders
        self.consignments = consignments
        self.publisher = publisher
        self.dbs = dbs
        self.receipts = receipts
        self.runs = runs
        self.lead_order = lead_order  # the stock order placed alone before any run (`plan_runs`)
        self.placed = 0  # orders placed so far (read by the chaos thread)
        self.receipts_sent = 0
        self.consignments_sent = 0

    async def place_all(self) -> None:
        """Every order but the stock orders (`sell_from_stock` places those), a batch a second."""
        mine = [order for order in self.orders if order.flow != "stock"]
        early = [lot for lot in self.consignments if not lot.late]
        if early:  # the brand owners' lots, at the dock before their orders
            await self.publisher.publish(*(lot.event() for lot in early))
            self.consignments_sent += len(early)
        for start in range(0, len(mine), PLACE_PER_SECOND):
            events: list[Any] = []
            for order in mine[start:start + PLACE_PER_SECOND]:
                events.append(order_placed(order))
                if order.kind == "pre-cancel":  # same key, same partition: the cancellation follows the order
                    events.append(o.OrderCancellationRequested(order_id=order.order_id, reason="ordered twice",
                                                               requested_by=order.holder))
                    order.cancel_sent = True
            await self.publisher.publish(*events)
            self.placed += sum(1 for event in events if isinstance(event, o.OrderPlaced))
            await asyncio.sleep(1.0)
        say(f"all {len(mine)} orders of the make-to-order flows placed")
        for n, (lot, quantity) in enumerate(self.receipts):
            await asyncio.sleep(3.0 if n == 0 else 8.0)
            await self.publisher.publish(seat_receipt(lot, quantity))
            self.receipts_sent += 1
            say(f"received {quantity} SEAT-ASSY, lot {lot}")
        for consignment in (lot for lot in self.consignments if lot.late):
            # only once a flush of the owner's parks on its shortage (its orders' releases need more than its first
            # lot, so one does): this consignment releases it, as our own stock of the item never could
            await self._wait_owner_shortage(consignment.owner)
            await self.publisher.publish(consignment.event())
            self.consignments_sent += 1
            say(f"{consignment.owner} consigned {consignment.quantity} {consignment.item}, lot {consignment.lot}")

    async def sell_from_stock(self) -> None:
        """The run to reverse first, reported and reversed before any stock order exists (a waiting order would
        take its lot, and a lot sold from is never withdrawn); then a run, half the stock orders, a run, the other
        half, and the last runs a few seconds apart: orders wait for stock and are served as later runs arrive."""
        to_reverse = [run for run in self.runs if run.reverse]
        selling = [run for run in self.runs if not run.reverse]
        for run in to_reverse:
            report = run_reported(run)
            [run.event_id, _] = await self.publisher.publish(report, c.RunCancellationRequested(
                run_id=run.run_id, reason="reported on the wrong line", requested_by="crash test"))
            run.reversal_sent = True
        for run in to_reverse:
            await self._wait_run_status(run.run_id, "cancelled")
            say(f"run {run.run_id} reversed")
        stock_orders = [order for order in self.orders if order.flow == "stock"]
        lead = next((order for order in stock_orders if order.order_id == self.lead_order), None)
        if lead is not None:
            # first in line before any stock exists, then a first run one unit short of it: a delivery in parts
            stock_orders.remove(lead)
            await self.publisher.publish(order_placed(lead))
            self.placed += 1
            await self._wait_order_state(lead.order_id, "waiting-for-stock")
        half = len(stock_orders) // 2
        steps: list[PlannedRun | list[PlannedOrder]] = [*selling[:1], stock_orders[:half], *selling[1:2],
                                                         stock_orders[half:], *selling[2:]]
        for step in steps:
            if isinstance(step, PlannedRun):
                [step.event_id] = await self.publisher.publish(run_reported(step))
                say(f"line L1 reported run {step.run_id} of {step.quantity} {STOCK_ITEM}")
                if lead is not None and step is selling[0]:
                    # Runs are keyed by run id, so two runs' stock may reach the warehouse in either order (a kill
                    # can hold the first back until the second is in): the lead order is served in parts only if
                    # the short run's stock is in first, so the next run waits for it (seed 658893).
                    await self._wait_stocked_at_warehouse(step.run_id)
                await self._cancel_waiting_stock_orders()  # racing the run just reported, which may serve them
                await asyncio.sleep(3.0)
                continue
            for start in range(0, len(step), STOCK_PER_SECOND):
                batch = step[start:start + STOCK_PER_SECOND]
                await self.publisher.publish(*(order_placed(order) for order in batch))
                self.placed += len(batch)
                await asyncio.sleep(1.0)
        while any(order.kind == "stock-cancel" and not order.cancel_sent for order in self.orders):
            await self._cancel_waiting_stock_orders()  # the last ones as soon as the distributor knows them
            await asyncio.sleep(0.5)
        say(f"all {len(stock_orders) + (lead is not None)} stock orders placed and {len(selling)} runs reported")

    async def _cancel_waiting_stock_orders(self) -> None:
        """The holders of the stock-cancel orders placed so far cancel them: those still waiting are cancelled,
        those the run just reported serves first are shipped and the warehouse refuses the cancel."""
        placed = await self._placed_order_ids()
        cancels = [order for order in self.orders if order.kind == "stock-cancel" and not order.cancel_sent
                   and order.order_id in placed]
        if cancels:
            await self.publisher.publish(*(o.OrderCancellationRequested(
                order_id=order.order_id, reason="bought elsewhere", requested_by=order.holder) for order in cancels))
            for order in cancels:
                order.cancel_sent = True
            say(f"holders cancelled stock orders {[order.order_id for order in cancels]}")

    async def _placed_order_ids(self) -> set[str]:
        while True:  # bounded by the driver's deadline (`run` cancels this task)
            try:
                return set(await self.dbs.orders())
            except Exception as error:  # noqa: BLE001 - a database mid-restart: look again shortly
                say(f"driver could not read the orders yet: {type(error).__name__}: {error}")
            await asyncio.sleep(0.5)

    async def _wait_owner_shortage(self, owner: str) -> None:
        while True:  # bounded by the driver's deadline (`run` cancels this task)
            try:
                parked = await self.dbs.rows("manufacturer", mf_tables.parked_flushes)
                if any(f"of {owner}'s consigned stock" in p["reason"] for p in parked):
                    return
            except Exception as error:  # noqa: BLE001 - a database mid-restart: look again shortly
                say(f"driver could not read the parked flushes yet: {type(error).__name__}: {error}")
            await asyncio.sleep(0.5)

    async def _wait_run_status(self, run_id: str, status: str) -> None:
        while True:  # bounded by the driver's deadline (`run` cancels this task)
            try:
                run = (await self.dbs.production()).get(run_id) or {}
            except Exception as error:  # noqa: BLE001 - a database mid-restart: look again shortly
                say(f"driver could not read the runs yet: {type(error).__name__}: {error}")
                run = {}
            if run.get("status") == status:
                return
            if run.get("status") == "rejected" or (run.get("reason") or "").startswith("reversal refused"):
                raise AssertionError(f"run {run_id} ended {run['status']} ({run['reason']}), expected {status}")
            await asyncio.sleep(0.5)

    async def _wait_stocked_at_warehouse(self, run_id: str) -> None:
        while True:  # bounded by the driver's deadline (`run` cancels this task)
            try:
                if await self.dbs.rows("warehouse", wh_tables.finished_stock, wh_tables.finished_stock.c.run_id == run_id):
                    return
            except Exception as error:  # noqa: BLE001 - a database mid-restart: look again shortly
                say(f"driver could not read the warehouse's stock yet: {type(error).__name__}: {error}")
            await asyncio.sleep(0.5)

    async def _wait_order_state(self, order_id: str, state: str) -> None:
        while True:  # bounded by the driver's deadline (`run` cancels this task)
            try:
                if ((await self.dbs.orders()).get(order_id) or {}).get("state") == state:
                    return
            except Exception as error:  # noqa: BLE001 - a database mid-restart: look again shortly
                say(f"driver could not read the orders yet: {type(error).__name__}: {error}")
            await asyncio.sleep(0.5)

    def pending(self) -> list[str]:
        left = []
        for order in self.orders:
            if order.splits and not order.completions:
                left.append(f"{order.order_id} completion")
            if (order.cancelled or order.kind == "stock-cancel") and not order.cancel_sent:
                left.append(f"{order.order_id} cancel")
            if order.sign and not order.signed:
                left.append(f"{order.order_id} signature")
        if self.receipts_sent < len(self.receipts):
            left.append("receipts")
        if self.consignments_sent < len(self.consignments):
            left.append("consignments")
        left += [f"{run.run_id} report" for run in self.runs if run.event_id is None]
        return left

    async def react(self) -> None:
        production = await self.dbs.production()
        rows = await self.dbs.orders()
        for order in self.orders:
            made = production.get(order.order_id)
            if order.splits and not order.completions and made and made["status"] == "released":
                before = 0
                events = []
                for quantity in order.splits:
                    events.append(c.CompletionReported(order_id=order.order_id, quantity=Decimal(quantity)))
                ids = await self.publisher.publish(*events)
                for event_id, quantity in zip(ids, order.splits):
                    order.completions.append((event_id, quantity, before))
                    before += quantity
            if order.form == "post-cancel" and order.completions and not order.cancel_sent and made \
                    and made["completed"] > 0:
                await self.publisher.publish(o.OrderCancellationRequested(
                    order_id=order.order_id, reason="project postponed", requested_by=order.holder))
                order.cancel_sent = True
            row = rows.get(order.order_id)
            if order.flow == "stock":
                await self._sign_stock_delivery(order, row)
            elif order.sign and not order.signed and row and row["state"] == "shipped":
                await self.publisher.publish(c.DeliverySigned(order_id=order.order_id, signed_by=f"for {order.holder}",
                                                              signed_at=dt.datetime.now(dt.UTC)))
                order.signed = True

    async def _sign_stock_delivery(self, order: PlannedOrder, row: dict[str, Any] | None) -> None:
        """Sign once for each delivery the distributor shows shipped and not yet signed for (a delivery in parts:
        each part on its own; parts shipped before a signature are signed for together)."""
        if row is not None and row["state"] in ("closed", "cancelled"):
            # a signature covers every unit shipped when the warehouse reads it, a later part the distributor had
            # not heard of when it was sent included (a stock order whose cancel the warehouse accepted: nothing to sign)
            order.signed = True
        if row is None or row["state"] != "shipped":
            return
        shipped = int(Decimal(str(json.loads(row["milestones"]).get("stock_shipped") or 0)))
        if shipped <= (order.signatures[-1] if order.signatures else 0):
            return  # this delivery was signed for already; the distributor has not heard yet
        await self.publisher.publish(c.DeliverySigned(order_id=order.order_id, signed_by=f"for {order.holder}",
                                                      signed_at=dt.datetime.now(dt.UTC)))
        order.signatures.append(shipped)
        order.signed = shipped >= order.quantity

    async def run(self, timeout: float) -> None:
        tasks = [asyncio.create_task(self.place_all()), asyncio.create_task(self.sell_from_stock())]
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    await self.react()
                except Exception as error:  # noqa: BLE001 - a database mid-restart: look again shortly
                    say(f"driver could not read yet: {type(error).__name__}: {error}")
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        await task  # surfaces a failed publish
                if all(task.done() for task in tasks) and not self.pending():
                    return
                await asyncio.sleep(0.5)
            raise AssertionError(f"the driver could not finish within {timeout:.0f} s; still to do: "
                                 f"{self.pending()[:20]}")
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()


async def wait_quiet(orders: list[PlannedOrder], dbs: Databases, bootstrap: str, prefix: str, chaos: ChaosLog,
                     timeout: float, security: KafkaSecurity | None = None) -> tuple[bool, str]:
    """Every order at its end, the manufacturer told of every signature, outboxes drained, consumers caught up."""
    deadline = time.monotonic() + timeout
    last = "nothing read yet"
    while time.monotonic() < deadline:
        try:
            rows = await dbs.orders()
            ends = {order_id: (row["state"], row["waiting_for"]) for order_id, row in rows.items()}
            not_there = [order.order_id for order in orders if ends.get(order.order_id) not in order.expected_ends]
            production = await dbs.production()
            undelivered = [order.order_id for order in orders if order.sign and order.flow != "stock"
                           and (production.get(order.order_id) or {}).get("status") != "delivered"]
            unpublished = await dbs.unpublished()
            lag = await consumer_lag(bootstrap, prefix, security) if not not_there and not undelivered else {}
            last = (f"{len(not_there)} orders not at their end {not_there[:5]}, {len(undelivered)} signatures not "
                    f"at the manufacturer, unpublished {unpublished}, lag {sum(lag.values())}, chaos done "
                    f"{chaos.done}")
            if chaos.done and not not_there and not undelivered and not any(unpublished.values()) \
                    and lag and not any(lag.values()):
                return True, last
        except Exception as error:  # noqa: BLE001 - keep polling until the deadline
            last = f"{type(error).__name__}: {error}"
        await asyncio.sleep(1.0)
    return False, last


async def run_audit(urls: dict[str, str], bootstrap_servers: str,
                    security: KafkaSecurity | None = None) -> list[tuple[bool, str]]:
    """`backflush audit --bootstrap-servers`, as its command runs it: every finding must be ok, every offset the
    consumer groups committed past accounted for in the databases despite the kills."""
    findings = await audit(urls, bootstrap_servers=bootstrap_servers, security=security)
    return [(f.ok, f"audit {'ok  ' if f.ok else 'FAIL'} {f.check}: {f.detail}") for f in findings]


async def test_nothing_lost_nothing_doubled_through_kills_and_a_broker_restart_with_sasl_ssl_and_acls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await crash_run(tmp_path, capsys, secure=True)


@pytest.mark.postgres
async def test_two_instances_of_every_service_on_postgresql_lose_and_double_nothing_through_kills(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same chaos (every process SIGKILLed twice, the broker restarted) with two processes per service
    sharing one PostgreSQL database per service and the topics' three partitions; fewer orders, same mix."""
    with provide_postgres("crash") as server_url:
        urls = {}
        for name in SERVICES:
            urls[name] = await _create_database(server_url, name)
        await crash_run(tmp_path, capsys, database_urls=urls, instances=2, order_mix=POSTGRES_MIX)


#: Half the SQLite run's orders: twelve processes share two cores, and each is killed twice.
POSTGRES_MIX = {"pre": 60, "qc": 4, "pre-cancel": 4, "post": 40, "post-cancel": 6, "stock": 8, "stock-partial": 4,
                "stock-cancel": 3, "cm-pre": 4, "cm-post": 4, "cm-post-cancel": 2}


async def _create_database(server_url: str, name: str) -> str:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")  # CREATE DATABASE needs no transaction
    try:
        async with engine.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def crash_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *,
                    database_urls: dict[str, str] | None = None, instances: int = 1,
                    order_mix: dict[str, int] | None = None, secure: bool = False) -> None:
    started = time.monotonic()
    seed = int(os.environ.get("BACKFLUSH_CRASH_SEED") or random.SystemRandom().randrange(1, 1_000_000))
    say(f"seed {seed} (replay with BACKFLUSH_CRASH_SEED={seed})")
    rng = random.Random(seed)
    orders = plan_orders(rng, order_mix)
    runs, lead_order = plan_runs(orders, rng)
    stock = plan_seat_stock(orders)
    data = write_master_data(tmp_path / "master-data", stock)
    master = load_master_data(data)
    consignments = plan_consignments(master.catalogue, orders)
    received = {(r.item, r.lot): r.quantity for r in master.receipts}
    received.update({("SEAT-ASSY", lot): Decimal(quantity) for lot, quantity in stock.later_receipts})
    received.update({(lot.item, lot.lot): Decimal(lot.quantity) for lot in consignments})
    # the runs must never park for want of components: nothing in the test would ever release them
    for item, need in expected_run_consumption(master.catalogue, runs, reversed_too=True).items():
        have = sum((q for (i, _lot), q in received.items() if i == item), Decimal(0))
        assert need <= have, f"the runs need {need} {item}, the crash test receives {have}: raise AMPLE_STOCK"

    broker = LocalKafka(run_dir=tmp_path / "kafka", keep_data=True,
                        scram_users={user: secrets.token_hex(12) for user in SECURE_USERS} if secure else None)
    await broker.astart()
    extra_env: dict[str, dict[str, str]] = {name: broker.client_env(name) if secure else {} for name in SERVICES}
    extra_env["warehouse"] = {**extra_env["warehouse"], **WAREHOUSE_LAYOUT}
    stack = make_stack(broker.bootstrap_servers, tmp_path / "stack", extra_env=extra_env,
                       database_urls=database_urls or {}, instances=instances)
    reader = broker.security_for("tests") if secure else None
    speakers = {writer: broker.security_for(name) for writer, name in SPEAKER_OF.items()} if secure else {}
    if secure:
        # the topics (3 partitions, as the services would make them) and every principal's ACLs, as the super user
        await broker.agrant(SECURE_USERS, topic_prefix=stack.topic_prefix, partitions=3)
    dbs: Databases | None = None
    publisher = ReliablePublisher(broker.bootstrap_servers, stack.topic_prefix, speakers)
    chaos: Chaos | None = None
    chaos_task: asyncio.Future[ChaosLog] | None = None
    try:
        broker_up = time.monotonic()
        await asyncio.to_thread(stack.start)
        services_up = time.monotonic()
        dbs = Databases(stack)
        await publisher.start()
        await Flows(stack, security=reader, speakers=speakers).load_master_data(data)
        say(f"broker up in {broker_up - started:.1f} s, services in {services_up - broker_up:.1f} s, master data "
            f"loaded in {time.monotonic() - services_up:.1f} s; {len(orders)} orders to place")

        driver = Driver(orders, publisher, dbs, stock.later_receipts, runs, lead_order, consignments)
        # orders in flight are read from the distributor's SQLite file; on PostgreSQL the kill log says "None"
        in_flight = (in_flight_counter(stack.workdir / "distributor.db", lambda: driver.placed) if instances == 1
                     else (lambda: None))
        chaos = Chaos(stack, broker, seed, started=time.monotonic(), in_flight=in_flight)
        say(f"chaos schedule: {chaos.describe()}")
        chaos_task = asyncio.ensure_future(asyncio.to_thread(chaos.run))
        driven_at = time.monotonic()
        await driver.run(DRIVE_TIMEOUT_S)
        say(f"every order driven in {time.monotonic() - driven_at:.1f} s; waiting for quiet")
        quiet, state = await wait_quiet(orders, dbs, broker.bootstrap_servers, stack.topic_prefix, chaos.log,
                                        QUIET_TIMEOUT_S, reader)
        say(f"quiet: {quiet} ({state}) after {time.monotonic() - driven_at:.1f} s of traffic")
        chaos.stop_watching.set()
        log = await chaos_task
        chaos_task = None

        # what the driver did (event ids of every completion), for reading a failure afterwards
        (tmp_path / "orders.json").write_text(json.dumps([asdict(order) for order in orders], indent=1))
        (tmp_path / "runs.json").write_text(json.dumps([asdict(run) for run in runs], indent=1))
        (tmp_path / "consignments.json").write_text(json.dumps([asdict(lot) for lot in consignments], indent=1))
        say(f"service logs, databases, orders.json and runs.json in {tmp_path}")
        catalogue = master.catalogue
        result = await reckon(dbs, catalogue, orders, received, runs, consignments=consignments)
        refused_cancels = sum(1 for order in orders if order.kind == "stock-cancel" and not order.cancel_accepted)
        records, distinct, dead = await records_on_topics(broker.bootstrap_servers, stack.topic_prefix, reader)
        skipped = count_log_lines(stack, "duplicate event skipped")
        audit_lines = await run_audit(dbs.urls, broker.bootstrap_servers, reader)
        elapsed = time.monotonic() - started

        figures: dict[str, Any] = {
            "database": "PostgreSQL" if database_urls else "SQLite",
            "broker": "SASL_SSL with ACLs" if secure else "PLAINTEXT",
            "instances per service": instances,
            "seed": seed,
            "orders": f"{len(orders)} ({', '.join(f'{n} {kind}' for kind, n in Counter(x.kind for x in orders).items())})",
            "runs (reversed)": f"{len(runs)} of {sum(r.quantity for r in runs)} {STOCK_ITEM} "
                               f"({', '.join(r.run_id for r in runs if r.reverse) or 'none'})",
            **result.figures,
            "kills (SIGKILL)": {name: log.kills_of(name) for name in stack.processes},
            "kill moments (s, orders in flight)": [f"+{t} {name} ({busy})" for t, name, busy in log.kills],
            "broker restarts": [f"+{t} ({how}, {busy} in flight)" for t, how, busy in log.broker_restarts],
            "services that died on their own": log.unplanned_restarts,
            "duplicate effects counted": sum(result.duplicates.values()),
            "records on the topics (distinct event ids)": f"{records} ({distinct}); republished "
                                                          f"{records - distinct}",
            "duplicates skipped by the inboxes (log lines)": skipped,
            "records re-sent by the test's producer": publisher.resends,
            "dead letters on the topics (refused stock cancels)": f"{dead} ({refused_cancels})",
            "quiet reached": quiet,
            "run time (s)": round(elapsed, 1),
        }
        with capsys.disabled():
            print("\n=== crash test figures ===")
            for key, value in figures.items():
                print(f"{key}: {value}")
            for _ok, line in audit_lines:
                print(line)
            for finding in log.findings:
                print(f"FINDING: {finding}")
            for problem in result.problems[:60]:
                print(f"PROBLEM: {problem}")
            print("=== end of crash test figures ===")

        assert not log.findings, f"services misbehaved under the chaos (seed {seed}): {log.findings}"
        assert log.done and all(log.kills_of(name) >= 2 for name in stack.processes) and log.broker_restarts
        assert sum(result.duplicates.values()) == 0, f"doubled effects (seed {seed}): {dict(result.duplicates)}"
        assert not result.problems, f"seed {seed}: " + "\n".join(result.problems[:40])
        assert quiet, f"seed {seed}: never quiet: {state}"
        assert dead == refused_cancels, f"seed {seed}: {dead} dead letters on the topics, {refused_cancels} refused cancels"
        assert audit_lines and all(ok for ok, _line in audit_lines), [line for ok, line in audit_lines if not ok]
    finally:
        if chaos is not None:
            chaos.stop_watching.set()
        if chaos_task is not None:
            await chaos_task
        await publisher.stop()
        if dbs is not None:
            await dbs.close()
        await asyncio.to_thread(stack.stop)
        await broker.astop(keep_data=False)
