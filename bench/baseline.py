"""The baseline: a chain of raw aiokafka relays with our pipeline's hops, and nothing else.

Each relay is PERFORMANCE.md's fast shape: `getmany(max_records=500)`, a `send` for each record without awaiting
it, one gather of the acknowledgements, one offset commit per batch, an idempotent producer; no database, no
decoding, no validation: the value, key and headers go on as they came.

Two chains on topics of their own (3 partitions each, like ours), with our flows' hop counts and hosts:

- pre-product, 6 hops: distributor, manufacturer, distributor, warehouse, manufacturer, distributor;
- post-product, 9 hops: distributor, manufacturer, bench (shop floor), manufacturer, warehouse, distributor,
  warehouse, bench (order holder), warehouse.

The relays of one service run in one process, as the service's consumers do (three relay processes), and the
bench's two hops run in the bench process, as its driver does in our run. Messages carry our events' mean value
size on the flow's critical path and headers of the same size as our CloudEvents headers, keyed by order id.
Run as `python -m bench.baseline relays --bootstrap-servers ... --prefix ... --stages pre:1,post:1,...` for one
relay process (it prints `ready` once every relay has its partitions, and runs until SIGTERM).

The same chains also run in a second shape, the **guarantee-equal chain** (`--shape guaranteed`, issue 18): the
service hops (not the bench's two) keep our guarantees the cheapest way Python can (`../shared/tools/dbrelay.py`'s
shape). Per batch of up to 500 records a hop decodes every value with pydantic, claims the event ids in an inbox
(one `IN` query, one `executemany`), upserts per-order state and writes an outbox row per outgoing event, all in
ONE transaction; then sends those outbox rows pipelined with the idempotent producer, marks them published, and
commits the offsets. On SQLite (stdlib sqlite3, WAL, synchronous=NORMAL, one connection per process, no thread
hop: a batch's transaction holds no await) with a file per service host; on PostgreSQL (asyncpg, one connection
per hop, `executemany`) with a database per service host shared by its instances, which split the partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from backflush_shared.messaging.security import kafka_options

from bench import procstats

CHAINS: dict[str, tuple[str, ...]] = {
    "pre": ("distributor", "manufacturer", "distributor", "warehouse", "manufacturer", "distributor"),
    "post": ("distributor", "manufacturer", "bench", "manufacturer", "warehouse", "distributor", "warehouse",
             "bench", "warehouse"),
}
HOSTS = ("distributor", "manufacturer", "warehouse")
MAX_RECORDS = 500
CHUNK = 500
WARM_UP = 50


def topic(prefix: str, flow: str, stage: int) -> str:
    return f"{prefix}{flow}.{stage}"


def stages_of(host: str) -> list[tuple[str, int]]:
    """The (flow, stage) relays a host runs; stage k reads topic k-1 and writes topic k."""
    return [(flow, k) for flow, chain in CHAINS.items() for k, who in enumerate(chain, start=1) if who == host]


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def wait_for_leaders(bootstrap_servers: str, topics: Sequence[str], timeout: float = 30.0) -> None:
    """Until every partition of `topics` has a leader: a topic just created answers NOT_LEADER for a moment."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **kafka_options())
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = await admin.describe_topics(list(topics))
            if len(described) == len(set(topics)) and all(
                    t["error_code"] == 0 and t["partitions"] and all(p["leader"] >= 0 and p["error_code"] == 0
                                                                     for p in t["partitions"]) for t in described):
                return
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


# ------------------------------------------------------------------------------------------------ the relays


async def relay(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, out_topic: str) -> None:
    while True:
        batch = await consumer.getmany(timeout_ms=100, max_records=MAX_RECORDS)
        if not batch:
            continue
        acknowledgements = []
        for records in batch.values():
            for record in records:
                acknowledgements.append(
                    await producer.send(out_topic, value=record.value, key=record.key, headers=list(record.headers))
                )
        await asyncio.gather(*acknowledgements)
        await consumer.commit()


# ------------------------------------------------------------------------------------------------ guarantee-equal


class Relayed(BaseModel):
    """The value every chain message carries; the guarantee-equal hops validate it (the raw relays never look)."""

    event_id: str
    order_id: str
    flow: str
    t0: float
    warm_up: bool = False
    hops: int = 0
    pad: str = ""


def next_event(event: Relayed) -> Relayed:
    """The event a hop emits: a new id of the same length (the root id and the hop count), one more hop."""
    root = event.event_id.rsplit("-", 1)[0]
    return event.model_copy(update={"event_id": f"{root}-{event.hops + 1:02d}", "hops": event.hops + 1})


SQLITE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox (event_id TEXT PRIMARY KEY, topic TEXT NOT NULL, part INTEGER NOT NULL, "
    "off INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS state (order_id TEXT PRIMARY KEY, hops INTEGER NOT NULL, last_event TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL, "
    "headers TEXT NOT NULL, published INTEGER NOT NULL DEFAULT 0)",
)
PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox (event_id TEXT PRIMARY KEY, topic TEXT NOT NULL, part INTEGER NOT NULL, "
    "off BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS state (order_id TEXT PRIMARY KEY, hops INTEGER NOT NULL, last_event TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, topic TEXT NOT NULL, key BYTEA, value BYTEA NOT NULL, "
    "headers TEXT NOT NULL, published BOOLEAN NOT NULL DEFAULT FALSE)",
)


def asyncpg_dsn(url: str) -> str:
    """An SQLAlchemy URL (`postgresql+asyncpg://...`) as asyncpg takes it."""
    return "postgresql://" + url.split("://", 1)[1]


def _encode_headers(headers: Sequence[tuple[str, bytes]]) -> str:
    return json.dumps([[name, value.decode("latin-1")] for name, value in headers])


def _decode_headers(text: str) -> list[tuple[str, bytes]]:
    return [(name, value.encode("latin-1")) for name, value in json.loads(text)]


Row = tuple[str, str, bytes | None, bytes, str]  # outbox: id, topic, key, value, headers


def _claim(records: Sequence[Any], seen: set[str], out_topic: str) -> tuple[list[Any], list[Any], list[Row]]:
    """The batch's fresh events (not in `seen`, each id once): inbox rows, state rows (sorted: a fixed lock
    order between instances), outbox rows."""
    inbox, state, outbox = [], {}, []
    for record, event in records:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        inbox.append((event.event_id, record.topic, record.partition, record.offset))
        state[event.order_id] = (event.order_id, event.hops + 1, event.event_id)
        following = next_event(event)
        outbox.append((following.event_id, out_topic, record.key, following.model_dump_json().encode(),
                       _encode_headers(record.headers)))
    return inbox, [state[k] for k in sorted(state)], outbox


async def _send(producer: AIOKafkaProducer, rows: Sequence[Row]) -> None:
    acknowledgements = [await producer.send(t, value=v, key=k, headers=_decode_headers(h)) for _i, t, k, v, h in rows]
    await asyncio.gather(*acknowledgements)


class SqliteHopStore:
    """One sqlite3 connection per relay process (its hops' transactions never interleave: none holds an await)."""

    def __init__(self, path: str) -> None:
        import sqlite3

        self.connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        for statement in SQLITE_SCHEMA:
            self.connection.execute(statement)

    async def apply(self, records: Sequence[Any], out_topic: str) -> list[Row]:
        con = self.connection
        ids = [event.event_id for _record, event in records]
        con.execute("BEGIN IMMEDIATE")
        try:
            seen = {row[0] for row in con.execute(
                f"SELECT event_id FROM inbox WHERE event_id IN ({','.join('?' * len(ids))})", ids)}
            inbox, state, outbox = _claim(records, seen, out_topic)
            con.executemany("INSERT INTO inbox VALUES (?, ?, ?, ?)", inbox)
            con.executemany("INSERT INTO state VALUES (?, ?, ?) ON CONFLICT (order_id) DO UPDATE SET "
                            "hops = excluded.hops, last_event = excluded.last_event", state)
            con.executemany("INSERT INTO outbox (id, topic, key, value, headers) VALUES (?, ?, ?, ?, ?)", outbox)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return outbox

    async def mark_published(self, rows: Sequence[Row]) -> None:
        con = self.connection
        con.execute("BEGIN IMMEDIATE")
        con.executemany("UPDATE outbox SET published = 1 WHERE id = ?", [(row[0],) for row in rows])
        con.execute("COMMIT")

    async def close(self) -> None:
        self.connection.close()


class PostgresHopStore:
    """One asyncpg connection per hop; the instances of a host share its database and split the partitions."""

    def __init__(self, url: str) -> None:
        self.dsn = asyncpg_dsn(url)
        self.connection: Any = None

    async def open(self) -> None:
        import asyncpg

        self.connection = await asyncpg.connect(self.dsn)
        async with self.connection.transaction():
            await self.connection.execute("SELECT pg_advisory_xact_lock(18)")  # instances start together
            for statement in PG_SCHEMA:
                await self.connection.execute(statement)

    async def apply(self, records: Sequence[Any], out_topic: str) -> list[Row]:
        import asyncpg

        ids = [event.event_id for _record, event in records]
        for attempt in range(10):
            try:
                async with self.connection.transaction():
                    seen = {row[0] for row in await self.connection.fetch(
                        "SELECT event_id FROM inbox WHERE event_id = ANY($1::text[])", ids)}
                    inbox, state, outbox = _claim(records, seen, out_topic)
                    await self.connection.executemany("INSERT INTO inbox VALUES ($1, $2, $3, $4)", inbox)
                    await self.connection.executemany(
                        "INSERT INTO state VALUES ($1, $2, $3) ON CONFLICT (order_id) DO UPDATE SET "
                        "hops = excluded.hops, last_event = excluded.last_event", state)
                    await self.connection.executemany(
                        "INSERT INTO outbox (id, topic, key, value, headers) VALUES ($1, $2, $3, $4, $5)", outbox)
                return outbox
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == 9:
                    raise
        raise AssertionError("unreachable")

    async def mark_published(self, rows: Sequence[Row]) -> None:
        await self.connection.execute("UPDATE outbox SET published = TRUE WHERE id = ANY($1::text[])",
                                      [row[0] for row in rows])

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


async def guaranteed_relay(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, out_topic: str,
                           store: SqliteHopStore | PostgresHopStore) -> None:
    """dbrelay.py's hop: decode, claim + state + outbox in one transaction, send, mark published, commit offsets."""
    while True:
        batch = await consumer.getmany(timeout_ms=100, max_records=MAX_RECORDS)
        if not batch:
            continue
        records = [(record, Relayed.model_validate_json(record.value))
                   for records in batch.values() for record in records]
        outbox = await store.apply(records, out_topic)
        if outbox:
            await _send(producer, outbox)
            await store.mark_published(outbox)
        await consumer.commit()


@dataclass
class Relays:
    """The relays of one host, sharing one idempotent producer (as a service shares its outbox relay's)."""

    bootstrap_servers: str
    prefix: str
    stages: Sequence[tuple[str, int]]
    shape: str = "raw"  # or "guaranteed"
    database_url: str | None = None  # guaranteed: sqlite:///PATH or postgresql+asyncpg://...
    consumers: list[AIOKafkaConsumer] = field(default_factory=list)
    producer: AIOKafkaProducer | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stores: list[SqliteHopStore | PostgresHopStore] = field(default_factory=list)

    async def _store(self) -> SqliteHopStore | PostgresHopStore:
        assert self.database_url is not None, "the guaranteed shape needs a database"
        if self.database_url.startswith("sqlite"):
            if not self.stores:
                self.stores.append(SqliteHopStore(self.database_url.split("///", 1)[1]))
            return self.stores[0]
        store = PostgresHopStore(self.database_url)
        await store.open()
        self.stores.append(store)
        return store

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, enable_idempotence=True,
                                         linger_ms=0, **kafka_options())
        await self.producer.start()
        for flow, stage in self.stages:
            consumer = AIOKafkaConsumer(
                topic(self.prefix, flow, stage - 1), bootstrap_servers=self.bootstrap_servers,
                group_id=f"{self.prefix}relay.{flow}.{stage}", enable_auto_commit=False,
                auto_offset_reset="earliest", **kafka_options(),
            )
            await consumer.start()
            self.consumers.append(consumer)
            out_topic = topic(self.prefix, flow, stage)
            if self.shape == "guaranteed":
                work = guaranteed_relay(consumer, self.producer, out_topic, await self._store())
            else:
                work = relay(consumer, self.producer, out_topic)
            self.tasks.append(asyncio.create_task(work))
        deadline = time.monotonic() + 60
        while not all(consumer.assignment() for consumer in self.consumers):
            if time.monotonic() > deadline:
                raise RuntimeError("relays got no partitions within 60 s")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for consumer in self.consumers:
            await consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        for store in self.stores:
            await store.close()


async def _serve_relays(bootstrap_servers: str, prefix: str, stages: list[tuple[str, int]], shape: str = "raw",
                        database_url: str | None = None) -> None:
    relays = Relays(bootstrap_servers, prefix, stages, shape, database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    with _quiet("aiokafka"):
        await relays.start()
    print("ready", flush=True)
    failed = asyncio.ensure_future(asyncio.wait(relays.tasks, return_when=asyncio.FIRST_EXCEPTION))
    await asyncio.wait([failed, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    await relays.stop()


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class BaselineConfig:
    messages: int
    post_share: float
    value_bytes: dict[str, float]  # flow -> mean value size of our events on its critical path
    header_bytes: dict[str, float]
    stall_timeout: float = 120.0
    rate: float = 0.0  # messages per second; 0: as fast as the producer goes
    shape: str = "raw"  # or "guaranteed": the dbrelay shape on the service hops
    database_urls: dict[str, str] = field(default_factory=dict)  # guaranteed on PostgreSQL: host -> URL
    instances: int = 1  # relay processes per host (more than one: PostgreSQL only)


def _headers(order_id: str, size: float) -> list[tuple[str, bytes]]:
    """CloudEvents-like headers (same names as ours), padded to our mean header size."""
    headers = [("ce_id", str(uuid.uuid4()).encode()), ("ce_type", b"backflush.bench.relayed"),
               ("ce_source", b"/backflush/bench"), ("ce_specversion", b"1.0"),
               ("ce_time", b"2026-01-01T00:00:00.000000+00:00"), ("ce_schemaversion", b"1"),
               ("ce_correlationid", order_id.encode()), ("content-type", b"application/json")]
    used = sum(len(n) + len(v) for n, v in headers) + len("ce_causationid")
    headers.append(("ce_causationid", b"c" * max(0, int(size) - used)))
    return headers


def _value(order_id: str, flow: str, size: float, warm_up: bool = False) -> bytes:
    body = {"event_id": f"{uuid.uuid4().hex}-00", "order_id": order_id, "flow": flow, "t0": time.time(),
            "warm_up": warm_up, "hops": 0, "pad": ""}
    used = len(json.dumps(body, separators=(",", ":")))
    body["pad"] = "x" * max(0, int(size) - used)
    return json.dumps(body, separators=(",", ":")).encode()


async def run_baseline(config: BaselineConfig, bootstrap_servers: str, workdir: Path, console: Console,
                       extra_pids: dict[str, int]) -> dict[str, Any]:
    from backflush_shared.messaging.admin import ensure_topics

    from bench.ours import chunk_size, order_ids, pace
    from bench.report import distribution

    timings: dict[str, float] = {}
    started = time.monotonic()
    prefix = f"baseline{int(time.time())}."
    names = [topic(prefix, flow, k) for flow, chain in CHAINS.items() for k in range(len(chain) + 1)]
    await ensure_topics(bootstrap_servers, names, partitions=3, replication=1)
    await wait_for_leaders(bootstrap_servers, names)
    workdir.mkdir(parents=True, exist_ok=True)

    processes: dict[str, asyncio.subprocess.Process] = {}
    in_process = Relays(bootstrap_servers, prefix, stages_of("bench"))
    sink = AIOKafkaConsumer(topic(prefix, "pre", len(CHAINS["pre"])), topic(prefix, "post", len(CHAINS["post"])),
                            bootstrap_servers=bootstrap_servers, group_id=None, auto_offset_reset="earliest",
                            enable_auto_commit=False, **kafka_options())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True, linger_ms=0,
                                **kafka_options())
    background: list[asyncio.Task[Any]] = []
    try:
        what = "raw relays" if config.shape == "raw" else "guarantee-equal hops"
        console.print(f"baseline: {sum(len(c) for c in CHAINS.values())} {what} in {len(HOSTS) * config.instances} "
                      "processes + the bench ...")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                             os.environ.get("PYTHONPATH", "")])}
        if config.instances > 1 and config.shape == "guaranteed" and not config.database_urls:
            raise RuntimeError("more than one guarantee-equal process per host needs PostgreSQL databases")
        for host in HOSTS:
            spec = ",".join(f"{flow}:{k}" for flow, k in stages_of(host))
            extra = []
            if config.shape == "guaranteed":
                url = config.database_urls.get(host) or f"sqlite:///{workdir / f'{host}.db'}"
                extra = ["--shape", "guaranteed", "--database-url", url]
            for instance in range(1, config.instances + 1):
                name = host if instance == 1 else f"{host}-{instance}"
                log = (workdir / f"relays-{name}.log").open("wb")
                processes[name] = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.baseline", "relays", "--bootstrap-servers", bootstrap_servers,
                    "--prefix", prefix, "--stages", spec, *extra, stdout=asyncio.subprocess.PIPE, stderr=log,
                    stdin=asyncio.subprocess.DEVNULL, env=env,
                )
                log.close()
        for host, process in processes.items():
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), timeout=90)
            if line.strip() != b"ready":
                tail = (workdir / f"relays-{host}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the {host} relays did not start:\n{tail}")
        # a topic just created may still answer NOT_LEADER to the first offset lookups: aiokafka retries them, and
        # logs each at ERROR level, which says nothing here
        with _quiet("aiokafka"):
            await in_process.start()
            await sink.start()
            await producer.start()
        timings["relays_start_s"] = time.monotonic() - started

        flows = dict(order_ids(config.messages, config.post_share))
        arrived: dict[str, tuple[float, float]] = {}  # order id -> (on the sink topic, first sent)
        warm_seen = 0

        async def drain() -> None:
            nonlocal warm_seen
            while True:
                batch = await sink.getmany(timeout_ms=200, max_records=2000)
                for records in batch.values():
                    for record in records:
                        body = json.loads(record.value)
                        if body["warm_up"]:
                            warm_seen += 1
                        else:
                            arrived.setdefault(body["order_id"], (record.timestamp / 1000, body["t0"]))

        draining = asyncio.create_task(drain())
        background.append(draining)

        # warm-up: every relay has fetched once and every producer is connected before the clock starts
        warm = [(f"WARM-{i:03d}", "pre" if i % 2 else "post") for i in range(WARM_UP)]
        await asyncio.gather(*[await producer.send(topic(prefix, flow, 0), key=i.encode(),
                                                   value=_value(i, flow, config.value_bytes[flow], True),
                                                   headers=_headers(i, config.header_bytes[flow]))
                               for i, flow in warm])
        deadline = time.monotonic() + 60
        with _quiet("aiokafka"):
            while warm_seen < WARM_UP and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

        pids = {f"relays ({host})": process.pid for host, process in processes.items()}
        before = {name: procstats.sample_named(name, pid) for name, pid in {**pids, **extra_pids}.items()}
        bench_cpu_before = procstats.self_cpu_seconds()
        sent_at: list[float] = []
        first_send = time.time()
        paced_from = time.monotonic()

        async def send_all() -> None:
            items = list(flows.items())
            step = chunk_size(config.rate)
            for start in range(0, len(items), step):
                await pace(config.rate, paced_from, start)
                acknowledgements = []
                for order_id, flow in items[start:start + step]:
                    acknowledgements.append(await producer.send(
                        topic(prefix, flow, 0), key=order_id.encode(),
                        value=_value(order_id, flow, config.value_bytes[flow]),
                        headers=_headers(order_id, config.header_bytes[flow])))
                await asyncio.gather(*acknowledgements)
                sent_at.append(time.time())

        sending = asyncio.create_task(send_all())
        background.append(sending)
        n = config.messages
        progress = Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, refresh_per_second=4)
        relayed = progress.add_task("relayed", total=n)
        last, last_change = 0, time.monotonic()
        with progress:
            while len(arrived) < n:
                progress.update(relayed, completed=len(arrived))
                if len(arrived) != last:
                    last, last_change = len(arrived), time.monotonic()
                elif time.monotonic() - last_change > config.stall_timeout:
                    raise RuntimeError(f"baseline stalled at {len(arrived)} of {n} messages")
                if sending.done() and sending.exception() is not None:
                    raise RuntimeError(f"baseline producer failed: {sending.exception()!r}")
                await asyncio.sleep(0.2)
            progress.update(relayed, completed=n)
        await sending
        after = {name: procstats.sample_named(name, pid) for name, pid in {**pids, **extra_pids}.items()}
        bench_cpu = procstats.self_cpu_seconds() - bench_cpu_before
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(BaseException):
                await task
        await producer.stop()
        await sink.stop()
        await in_process.stop()
        for process in processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()
    timings["total_s"] = time.monotonic() - started

    # end to end: from the first send to the last record on the sink topics (record timestamps, as ours)
    first = min(t0 for _end, t0 in arrived.values())
    wall = max(end for end, _t0 in arrived.values()) - first
    latencies = {flow: [arrived[i][0] - arrived[i][1] for i, f in flows.items() if f == flow and i in arrived]
                 for flow in ("pre", "post")}
    usage: dict[str, dict[str, float | None]] = {}
    for name, start in before.items():
        end = after.get(name)
        if start is not None and end is not None:
            usage[name] = {"cpu_seconds": round(end.cpu_seconds - start.cpu_seconds, 4),
                               "cpu_seconds_since_start": round(end.cpu_seconds, 2),
                               "peak_rss_mib": round(end.peak_rss_mib, 1)}
    usage["bench process"] = {"cpu_seconds": round(bench_cpu, 2), "cpu_seconds_since_start": None,
                              "peak_rss_mib": None}
    return {
        "messages": config.messages,
        "rate_per_s": config.rate or None,
        "pre_messages": sum(1 for f in flows.values() if f == "pre"),
        "post_messages": sum(1 for f in flows.values() if f == "post"),
        "hop_counts": {flow: len(chain) for flow, chain in CHAINS.items()},
        "chains": {flow: list(chain) for flow, chain in CHAINS.items()},
        "relays": sum(len(chain) for chain in CHAINS.values()),
        "relay_processes": len(processes),
        "shape": config.shape,
        "instances": config.instances,
        "database": ("PostgreSQL" if config.database_urls else "SQLite") if config.shape == "guaranteed" else None,
        "message_bytes": {flow: {"value": config.value_bytes[flow], "headers": config.header_bytes[flow]}
                          for flow in CHAINS},
        "arrived": len(arrived),
        "wall_seconds": round(wall, 3),
        "publish_seconds": round(sent_at[-1] - first_send, 3) if sent_at else None,
        "throughput_per_s": round(len(arrived) / wall, 2) if wall > 0 else None,
        "latency_s": {"all": distribution(latencies["pre"] + latencies["post"]),
                      "pre": distribution(latencies["pre"]), "post": distribution(latencies["post"])},
        "processes": usage,
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "_latencies": latencies,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    relays = sub.add_parser("relays", help="run one host's relays until SIGTERM")
    relays.add_argument("--bootstrap-servers", required=True)
    relays.add_argument("--prefix", required=True)
    relays.add_argument("--stages", required=True, help="flow:stage,... e.g. pre:1,post:1")
    relays.add_argument("--shape", choices=("raw", "guaranteed"), default="raw")
    relays.add_argument("--database-url", default=None, help="guaranteed: sqlite:///PATH or postgresql+asyncpg://...")
    args = parser.parse_args(argv)
    stages = [(part.split(":")[0], int(part.split(":")[1])) for part in args.stages.split(",") if part]
    asyncio.run(_serve_relays(args.bootstrap_servers, args.prefix, stages, args.shape, args.database_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
