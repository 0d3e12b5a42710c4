"""Our system under load: the three services as separate processes, N orders of both flows as fast as we can.

The bench process plays everyone outside the services: the order holders (it places every order up front, in
pipelined batches), the shop floor (a post-product order's `CompletionReported` once its release flush is seen)
and the order holders again (`DeliverySigned` once the goods are shipped), so that every order ends closed.
It reads the `completions` topic for that and for the `OrderClosed` record timestamps; the distributor's
database gives the progress (orders by state) and, at the end, every event's `occurred_at` for the hops.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import sqlite3
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from rich.console import Console, Group
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.envelope import Envelope
from backflush_shared.contracts.topics import Topic, TopicNames
from backflush_shared.local_stack import LocalStack
from backflush_shared.messaging.publish import EventPublisher
from backflush_shared.messaging.security import kafka_options

from bench import procstats
from bench.baseline import wait_for_leaders
from bench.profiling import Recorder, summarise, wait_snapshot

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "services" / "manufacturer" / "sample_data"
SERVICES = ("manufacturer", "distributor", "warehouse")
SOURCE = "/backflush/bench"
CHUNK = 500  # orders per pipelined publish: every send first, then every acknowledgement

PLACED = o.OrderPlaced.event_type
FORWARDED = o.OrderForwarded.event_type
FINAL = o.FinalOrderPlaced.event_type
PRE_SALE = inv.PreSaleInventoryDetailsForwarded.event_type
DIRECTED = inv.GoodsDirectedToRacks.event_type
RACKED = inv.GoodsRacked.event_type
TURNED_OVER = inv.GoodsTurnedOver.event_type
CONSIGNED = inv.ConsignmentStockReceived.event_type
CHECKED = c.InventoryCheckReturned.event_type
ALLOCATED = c.GoodsAllocated.event_type
BACKFLUSHED = c.ComponentsBackflushed.event_type
REPORTED = c.CompletionReported.event_type
SHIPPED = c.GoodsShipped.event_type
SIGNED = c.DeliverySigned.event_type
CLOSED = c.OrderClosed.event_type
PARKED = c.BackflushParked.event_type

#: The hops of each flow on the critical path: (who does it, name, cause event, effect event). A hop's time is
#: the effect's `occurred_at` minus the cause's: the cause's commit and outbox relay, the broker, the consumer's
#: fetch and batch, and the handler up to the moment it emits the effect.
PRE_HOPS: tuple[tuple[str, str, str, str], ...] = (
    ("distributor", "placed -> forwarded", PLACED, FORWARDED),
    ("manufacturer", "forwarded -> pre-sale details (QC, release + completion flush)", FORWARDED, PRE_SALE),
    ("distributor", "pre-sale details -> directed to racks", PRE_SALE, DIRECTED),
    ("warehouse", "directed -> racked (+ inventory check)", DIRECTED, RACKED),
    ("manufacturer", "inventory check -> allocated", CHECKED, ALLOCATED),
    ("distributor", "allocated -> closed", ALLOCATED, CLOSED),
)
POST_HOPS: tuple[tuple[str, str, str, str], ...] = (
    ("distributor", "placed -> forwarded", PLACED, FORWARDED),
    ("manufacturer", "forwarded -> released (pre flush)", FORWARDED, BACKFLUSHED),
    ("bench (shop floor)", "released -> completion reported", BACKFLUSHED, REPORTED),
    ("manufacturer", "completion reported -> turned over (post flush)", REPORTED, TURNED_OVER),
    ("warehouse", "turned over -> consignment received", TURNED_OVER, CONSIGNED),
    ("distributor", "consignment received -> final order placed", CONSIGNED, FINAL),
    ("warehouse", "final order -> shipped", FINAL, SHIPPED),
    ("bench (order holder)", "shipped -> delivery signed", SHIPPED, SIGNED),
    ("warehouse", "delivery signed -> closed", SIGNED, CLOSED),
)
HOPS = {"pre": PRE_HOPS, "post": POST_HOPS}
#: What the driver reads, by the contracts' own home topics (whatever they are named).
DRIVER_EVENTS = (c.OrderClosed, c.ComponentsBackflushed, c.GoodsShipped, c.BackflushParked)


class BenchError(RuntimeError):
    pass


@dataclass
class OursConfig:
    orders: int
    post_share: float
    quantity: int = 1
    log_level: str = "INFO"
    profile: bool = False
    profile_rate: int = 50
    stall_timeout: float = 180.0
    snapshot_seconds: int = 10
    rate: float = 0.0  # orders per second; 0: all at once, as fast as the publisher goes
    instances: int = 1  # processes per service (more than one: `database_urls` of PostgreSQL)
    database_urls: dict[str, str] = field(default_factory=dict)  # service -> URL; empty: fresh SQLite files
    pythonpath: str | None = None  # run the services from another tree's sources (`--before REF`)


@dataclass
class Driver:
    """Consumes `completions`: reports completions, signs deliveries, and times every `OrderClosed`."""

    bootstrap_servers: str
    topics: TopicNames
    post_orders: set[str]
    quantity: Decimal
    publisher: EventPublisher
    closed_at: dict[str, float] = field(default_factory=dict)
    completion_sent: set[str] = field(default_factory=set)
    signature_sent: set[str] = field(default_factory=set)
    parked: set[str] = field(default_factory=set)
    records: int = 0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *sorted({self.topics(event.topic) for event in DRIVER_EVENTS}),
            bootstrap_servers=self.bootstrap_servers, group_id=None,
            auto_offset_reset="earliest", enable_auto_commit=False, client_id="backflush-bench-driver",
            **kafka_options(),  # the BACKFLUSH_SECURITY_* settings of the environment, like the services
        )
        await self._consumer.start()

    async def run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            follow: list[Event] = []
            for records in batch.values():
                for record in records:
                    self.records += 1
                    self._handle(record, follow)
            if follow:
                task = asyncio.create_task(self.publisher.publish(follow))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _handle(self, record: Any, follow: list[Event]) -> None:
        event_type = next((value for name, value in record.headers if name == "ce_type"), b"").decode()
        order_id = record.key.decode() if record.key else ""
        if event_type == CLOSED:
            self.closed_at.setdefault(order_id, record.timestamp / 1000)
        elif event_type == BACKFLUSHED and order_id in self.post_orders and order_id not in self.completion_sent:
            if json.loads(record.value).get("flush_point") == "pre":  # the release: production may be reported
                self.completion_sent.add(order_id)
                follow.append(c.CompletionReported(order_id=order_id, quantity=self.quantity))
        elif event_type == SHIPPED and order_id in self.post_orders and order_id not in self.signature_sent:
            self.signature_sent.add(order_id)
            follow.append(c.DeliverySigned(order_id=order_id, signed_by="Bench Holder",
                                           signed_at=dt.datetime.now(dt.UTC)))
        elif event_type == PARKED:
            self.parked.add(order_id)

    async def stop(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


class _Progress(Progress):
    """A progress bar with the distributor's orders by state below it."""

    states: str = ""

    def get_renderables(self) -> Iterable[Any]:
        yield Group(self.make_tasks_table(self.tasks), Text(self.states, style="dim"))


def chunk_size(rate: float) -> int:
    """Orders per publish: CHUNK when pushing as fast as we can, else about 20 publishes a second."""
    return CHUNK if rate <= 0 else max(1, min(CHUNK, int(rate / 20)))


async def pace(rate: float, started: float, sent: int) -> None:
    """With a rate, wait until the `sent`-th order is due (time.monotonic() clock)."""
    if rate > 0:
        delay = started + sent / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


def order_ids(n: int, post_share: float) -> list[tuple[str, str]]:
    """N (order id, flow) pairs, the flows interleaved evenly: a share of 0.5 alternates pre and post."""
    result = []
    for i in range(n):
        post = int((i + 1) * post_share) > int(i * post_share)
        result.append((f"{'POST' if post else 'PRE'}-{i + 1:06d}", "post" if post else "pre"))
    return result


def master_data_events() -> tuple[list[Event], list[md.ComponentsReceived]]:
    """The sample catalogue (items, BOMs, inspection plans) with one big lot of every stocked component."""
    from backflush_manufacturer.master_data_events import events_from
    from backflush_manufacturer.master_data_files import load_master_data

    sample = load_master_data(SAMPLE_DATA)
    events = [e for e in events_from(sample) if not isinstance(e, md.ComponentsReceived)]
    items = list(dict.fromkeys(receipt.item for receipt in sample.receipts))
    receipts = [md.ComponentsReceived(receipt_id=f"BENCH-{item}", item=item, lot=f"BENCH-{item}",
                                      quantity=Decimal(1_000_000_000)) for item in items]
    return events + list(receipts), receipts


def _postgres_query(url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The same query on PostgreSQL (`?` marks become `$n`), from a worker thread: a loop of its own."""
    import asyncpg

    from bench.baseline import asyncpg_dsn

    parts = sql.split("?")
    numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))

    async def run() -> list[tuple[Any, ...]]:
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            return [tuple(row) for row in await connection.fetch(numbered, *params)]
        finally:
            await connection.close()

    try:
        return asyncio.run(run())
    except (OSError, asyncpg.PostgresError):
        return []  # the table appears once the service has migrated


def _sqlite(url: str) -> sqlite3.Connection:
    path = url.split("///", 1)[1]
    connection = sqlite3.connect(path, timeout=30)
    connection.execute("PRAGMA busy_timeout=30000")
    return connection


def _query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Blocking: call it in a thread (`asyncio.to_thread`)."""
    if url.startswith("postgresql"):
        return _postgres_query(url, sql, params)
    try:
        connection = _sqlite(url)
    except sqlite3.Error:
        return []
    try:
        return connection.execute(sql, params).fetchall()
    except sqlite3.Error:
        return []  # the table appears once the service has migrated
    finally:
        connection.close()


def _parse_time(text: str | dt.datetime) -> float:
    moment = text if isinstance(text, dt.datetime) else dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _header_bytes(event_type: str, order_id: str, source: str) -> int:
    envelope = Envelope.new(event_type=event_type, schema_version=1, correlation_id=order_id, source=source,
                            causation_id=None if event_type == PLACED else uuid.uuid4())
    return sum(len(name) + len(value) for name, value in envelope.to_headers())


def _sample(pids: dict[str, int]) -> dict[str, procstats.ProcSample | None]:
    return {name: procstats.sample_named(name, pid) for name, pid in pids.items()}


async def run_ours(config: OursConfig, bootstrap_servers: str, workdir: Path, out_dir: Path, console: Console,
                   extra_pids: dict[str, int]) -> dict[str, Any]:
    """Run N orders through the services; returns every figure (raw latencies included, for the plot)."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    prefix = f"bench{int(time.time())}."
    stack = LocalStack(
        bootstrap_servers=bootstrap_servers, workdir=workdir, topic_prefix=prefix, log_level=config.log_level,
        # room for every order: pre-product goods stay racked (allocated), post-product goods pass through storage
        extra_env={name: {**({"PYTHONPATH": config.pythonpath} if config.pythonpath else {}),
                          **({"BACKFLUSH_RACKS": "DC-BENCH=1000000000",
                              "BACKFLUSH_CONSIGNMENT_LOCATIONS": "CS-BENCH=1000000000"}
                             if name == "warehouse" else {})} for name in SERVICES},
        instances=config.instances, database_urls=config.database_urls,
    )
    console.print(f"starting manufacturer, distributor and warehouse as separate processes, {config.instances} of "
                  f"each (logs: {workdir}) ...")
    await asyncio.to_thread(stack.start, 90.0)
    topics = TopicNames(prefix)
    await wait_for_leaders(bootstrap_servers, [topics(topic) for topic in Topic])
    timings["services_start_s"] = time.monotonic() - started
    recorder: Recorder | None = None
    try:
        async with EventPublisher(bootstrap_servers, topic_prefix=prefix, source=SOURCE) as publisher, \
                EventPublisher(bootstrap_servers, topic_prefix=prefix, source=SOURCE) as driver_publisher:
            step = time.monotonic()
            await _load_master_data(stack, publisher, console)
            timings["master_data_s"] = time.monotonic() - step

            orders = order_ids(config.orders, config.post_share)
            flows = dict(orders)
            quantity = Decimal(config.quantity)
            driver = Driver(bootstrap_servers, topics, {i for i, f in orders if f == "post"}, quantity,
                            driver_publisher)
            await driver.start()
            driver_task = asyncio.create_task(driver.run())
            background: list[asyncio.Task[Any]] = [driver_task]
            snapshots: dict[str, Any] = {}
            snapshot_task: asyncio.Task[None] | None = None
            try:
                pids = {name: process.process.pid  # type: ignore[union-attr]
                        for name, process in stack.processes.items()}
                before = _sample({**pids, **extra_pids})
                bench_cpu_before = procstats.self_cpu_seconds()
                if config.profile:
                    recorder = Recorder(out_dir / "profile", rate=config.profile_rate)
                    recorder.start(pids)

                placed_at: dict[str, float] = {}
                run_started = time.monotonic()
                due = dt.date.today() + dt.timedelta(days=14)

                async def place_all() -> None:
                    step = chunk_size(config.rate)
                    for start in range(0, len(orders), step):
                        await pace(config.rate, run_started, start)
                        events = [o.OrderPlaced(order_id=order_id, order_holder="Bench Holder", flow=flow,
                                                item="CHAIR-ERGO", quantity=quantity, ship_to="1 Bench Road",
                                                due_date=due) for order_id, flow in orders[start:start + step]]
                        envelopes = await publisher.publish(events)
                        for event, envelope in zip(events, envelopes):
                            placed_at[event.order_id] = envelope.occurred_at.timestamp()

                placing = asyncio.create_task(place_all())
                background.append(placing)

                async def take_snapshots() -> None:
                    # a few seconds of wall-clock view (idle and native frames included) in the steady state
                    results = await asyncio.gather(*[
                        asyncio.to_thread(wait_snapshot, pid, out_dir / "profile" / f"{name}.waits.txt",
                                          seconds=config.snapshot_seconds) for name, pid in pids.items()])
                    snapshots.update(zip(pids, results))

                def on_progress(closed: int) -> None:
                    nonlocal snapshot_task
                    wanted = config.profile and config.snapshot_seconds > 0
                    if wanted and snapshot_task is None and closed >= max(1, config.orders // 4):
                        snapshot_task = asyncio.create_task(take_snapshots())
                        background.append(snapshot_task)

                await _follow(config, stack, driver, placed_at, placing, console, on_progress)
                await placing
                run_wall = time.monotonic() - run_started

                after = _sample({**pids, **extra_pids})
                bench_cpu = procstats.self_cpu_seconds() - bench_cpu_before
                profiler_cpu: float | None = None
                if snapshot_task is not None:
                    await snapshot_task
                if recorder is not None:
                    spy = _sample(recorder.pids())
                    profiler_cpu = sum(s.cpu_seconds for s in spy.values() if s is not None)
                # the distributor records a post order's OrderClosed (from the warehouse) just after it closed it
                await _wait_for(lambda: _closed_events(stack) >= config.orders, 60)
            finally:  # also on Ctrl-C or a failure: nothing may go on publishing into closed producers
                for task in background:
                    task.cancel()
                for task in background:
                    with contextlib.suppress(BaseException):
                        await task
                await driver.stop()
            timings["orders_s"] = run_wall

        profile = None
        if recorder is not None:
            files = recorder.stop()
            profile = {"rate_hz": config.profile_rate, "cpu_seconds_of_py_spy": profiler_cpu,
                       "errors": recorder.errors, "wait_snapshots": snapshots,
                       "services": {name: {**summarise(raw), "raw": str(raw)} for name, raw in files.items()}}
            recorder = None
        events = await asyncio.to_thread(
            _query, stack.database_url("distributor"),
            "SELECT order_id, event_type, occurred_at, source, length(summary) FROM order_events")
        states = dict(await asyncio.to_thread(_query, stack.database_url("distributor"),
                                              "SELECT state, COUNT(*) FROM orders GROUP BY state"))
        console.print("distributor at the end: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    finally:
        if recorder is not None:
            recorder.stop()
        await asyncio.to_thread(stack.stop)
    timings["total_s"] = time.monotonic() - started

    return _figures(config, flows, placed_at, driver, events, states, before, after, bench_cpu, profile, timings,
                    run_wall)


async def _load_master_data(stack: LocalStack, publisher: EventPublisher, console: Console) -> None:
    events, receipts = master_data_events()
    envelopes = await publisher.publish(events)
    receipt_ids = [str(env.event_id) for env, e in zip(envelopes, events) if isinstance(e, md.ComponentsReceived)]
    console.print(f"master data: the sample chairs' catalogue and {len(receipts)} lots of 10^9 components ...")
    marks = ",".join("?" * len(receipt_ids))

    def stocked() -> bool:
        rows = _query(stack.database_url("manufacturer"),
                      f"SELECT outcome FROM inbox WHERE event_id IN ({marks})", tuple(receipt_ids))
        refused = [r for r in rows if r[0] != "applied"]
        if refused:
            raise BenchError(f"the manufacturer refused the bench's receipts:\n{_log_tails(stack)}")
        return len(rows) == len(receipt_ids)

    if not await _wait_for(stocked, 90):
        raise BenchError(f"the manufacturer did not take the master data within 90 s:\n{_log_tails(stack)}")


async def _wait_for(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.3)
    return False


def _closed_events(stack: LocalStack) -> int:
    rows = _query(stack.database_url("distributor"),
                  "SELECT COUNT(DISTINCT order_id) FROM order_events WHERE event_type = ?", (CLOSED,))
    return int(rows[0][0]) if rows else 0


def _log_tails(stack: LocalStack) -> str:
    return "\n".join(f"--- {name}\n{p.log_tail(8)}" for name, p in stack.processes.items())


async def _follow(config: OursConfig, stack: LocalStack, driver: Driver, placed_at: dict[str, float],
                  placing: asyncio.Task[None], console: Console, on_progress: Any) -> None:
    """Show progress until every order is closed; fail when nothing closes for `stall_timeout` seconds."""
    n = config.orders
    progress = _Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console,
                         refresh_per_second=4)
    placed_task = progress.add_task("placed", total=n, rate="")
    closed_task = progress.add_task("closed", total=n, rate="")
    started = time.monotonic()
    last_closed, last_change = 0, time.monotonic()
    with progress:
        while True:
            if placing.done() and placing.exception() is not None:
                raise BenchError(f"publishing the orders failed: {placing.exception()!r}")
            closed = len(driver.closed_at)
            elapsed = time.monotonic() - started
            rows = await asyncio.to_thread(_query, stack.database_url("distributor"),
                                           "SELECT state, COUNT(*) FROM orders GROUP BY state")
            progress.states = "distributor: " + ", ".join(f"{state} {count}" for state, count in sorted(rows))
            if driver.parked:
                progress.states += f"  |  parked flushes seen: {len(driver.parked)}"
            progress.update(placed_task, completed=len(placed_at))
            progress.update(closed_task, completed=closed,
                            rate=f"{closed / elapsed:7.1f} orders/s" if elapsed > 0 else "")
            on_progress(closed)
            if closed >= n:
                return
            if closed != last_closed:
                last_closed, last_change = closed, time.monotonic()
            elif time.monotonic() - last_change > config.stall_timeout:
                raise BenchError(f"no order closed for {config.stall_timeout:.0f} s ({closed} of {n} closed; "
                                 f"{progress.states}); the services' logs are in {stack.workdir}\n{_log_tails(stack)}")
            for name, service in stack.processes.items():
                if not service.running:
                    raise BenchError(f"the {name} exited during the run:\n{service.log_tail()}")
            await asyncio.sleep(0.5)


def _figures(config: OursConfig, flows: dict[str, str], placed_at: dict[str, float], driver: Driver,
             events: list[tuple[Any, ...]], states: dict[str, int], before: dict[str, Any], after: dict[str, Any],
             bench_cpu: float, profile: dict[str, Any] | None, timings: dict[str, float],
             run_wall: float) -> dict[str, Any]:
    from bench.report import distribution

    closed_at = driver.closed_at
    first_publish = min(placed_at.values())
    last_close = max(closed_at.values())
    wall = last_close - first_publish
    latency = {flow: [closed_at[i] - placed_at[i] for i, f in flows.items() if f == flow and i in closed_at]
               for flow in ("pre", "post")}
    everything = latency["pre"] + latency["post"]

    # every event of every order as the distributor recorded it: first occurrence of each type per order
    first: dict[str, dict[str, float]] = defaultdict(dict)
    value_bytes: dict[str, list[int]] = defaultdict(list)
    sources: dict[str, str] = {}
    per_order: Counter[str] = Counter()
    for order_id, event_type, occurred_at, source, summary_length in events:
        moment = _parse_time(occurred_at)
        known = first[order_id].get(event_type)
        if known is None or moment < known:
            first[order_id][event_type] = moment
        value_bytes[event_type].append(int(summary_length or 0))
        sources.setdefault(event_type, source)
        per_order[order_id] += 1

    hops: dict[str, list[dict[str, Any]]] = {}
    for flow, chain in HOPS.items():
        rows = []
        for service, name, cause, effect in chain:
            spans = [first[i][effect] - first[i][cause] for i, f in flows.items()
                     if f == flow and cause in first[i] and effect in first[i]]
            rows.append({"service": service, "hop": name, "from": cause, "to": effect, **distribution(spans)})
        # the last leg: the closing service's commit and outbox relay until the record is on the broker
        spans = [closed_at[i] - first[i][CLOSED] for i, f in flows.items()
                 if f == flow and i in closed_at and CLOSED in first[i]]
        rows.append({"service": "outbox relay", "hop": "closed emitted -> OrderClosed on the broker",
                     "from": CLOSED, "to": "record timestamp", **distribution(spans)})
        hops[flow] = rows

    def chain_bytes(flow: str) -> dict[str, float]:
        chain = [PLACED] + [effect for _s, _n, _c, effect in HOPS[flow]]
        values = [sum(value_bytes[t]) / len(value_bytes[t]) for t in chain if value_bytes.get(t)]
        headers = [_header_bytes(t, "POST-000001", sources.get(t, SOURCE)) for t in chain]
        return {"value": round(sum(values) / len(values), 1) if values else 0.0,
                "headers": round(sum(headers) / len(headers), 1)}

    services = {}
    for name, start in before.items():
        end = after.get(name)
        if start is None or end is None:
            continue
        services[name] = {"cpu_seconds": round(end.cpu_seconds - start.cpu_seconds, 4),
                          "cpu_seconds_since_start": round(end.cpu_seconds, 2),
                          "peak_rss_mib": round(end.peak_rss_mib, 1)}
    services["bench process"] = {"cpu_seconds": round(bench_cpu, 2), "cpu_seconds_since_start": None,
                                 "peak_rss_mib": None}
    per_service = {}  # every instance of a service together: CPU summed, the highest peak RSS of one process
    for name in SERVICES:
        mine = [figures for key, figures in services.items() if key == name or key.startswith(f"{name}-")]
        if mine:
            per_service[name] = {"cpu_seconds": round(sum(f["cpu_seconds"] for f in mine), 4),
                                 "cpu_ms_per_order": round(sum(f["cpu_seconds"] for f in mine) / config.orders * 1000,
                                                           3),
                                 "peak_rss_mib": max(f["peak_rss_mib"] for f in mine), "processes": len(mine)}
    busiest = max(per_service, key=lambda n: per_service[n]["cpu_seconds"], default=None)
    if profile is not None:
        profile["busiest"] = busiest

    n_closed = len(closed_at)
    return {
        "orders": config.orders,
        "rate_per_s": config.rate or None,
        "pre_orders": sum(1 for f in flows.values() if f == "pre"),
        "post_orders": sum(1 for f in flows.values() if f == "post"),
        "quantity_per_order": config.quantity,
        "log_level": config.log_level,
        "closed": n_closed,
        "end_states": states,
        "parked_orders": len(driver.parked),
        "wall_seconds": round(wall, 3),
        "publish_seconds": round(max(placed_at.values()) - first_publish, 3),
        "throughput_per_s": round(n_closed / wall, 2) if wall > 0 else None,
        "latency_s": {"all": distribution(everything), "pre": distribution(latency["pre"]),
                      "post": distribution(latency["post"])},
        "hop_counts": {"pre": len(PRE_HOPS), "post": len(POST_HOPS)},
        "hops": hops,
        "events_per_order": round(sum(per_order.values()) / len(per_order), 2) if per_order else 0,
        "message_bytes": {"pre": chain_bytes("pre"), "post": chain_bytes("post")},
        "processes": services,
        "services": per_service,
        "instances": config.instances,
        "database": "PostgreSQL" if config.database_urls else "SQLite",
        "cores_used_by_services": round(sum(f["cpu_seconds"] for f in per_service.values()) / run_wall, 3)
        if run_wall > 0 else None,
        "busiest_service": busiest,
        "profile": profile,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "run_wall_monotonic_s": round(run_wall, 2),
        "_latencies": {"pre": latency["pre"], "post": latency["post"]},
    }
