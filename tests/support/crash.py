"""The crash test's machinery: its order mix, a publisher that survives a broker restart, the chaos that kills
services and restarts the broker, and the independent reckoning of what every service should hold at the end.

Nothing here trusts the services' own sums. What the ledger should have consumed is computed from the orders
(`explode` and `flush_requirements` on each order's item and quantity), what the warehouse should hold from the
quantities completed, and every effect is counted so that one applied twice shows up as a number, not a hunch.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import random
import shutil
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from backflush_distributor.adapters import tables as dt_tables
from backflush_manufacturer.adapters import tables as mf_tables
from backflush_manufacturer.domain.bom import BomCatalogue, FlushPoint
from backflush_manufacturer.domain.explosion import explode, flush_requirements
from backflush_manufacturer.domain.runs import run_requirements
from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.topics import Topic, TopicNames, Writer
from backflush_shared.local_kafka import LocalKafka
from backflush_shared.local_stack import SERVICES, LocalStack
from backflush_shared.messaging.codec import EncodedRecord, encode
from backflush_shared.messaging.publish import envelope_for, source_for
from backflush_shared.messaging.security import KafkaSecurity
from backflush_shared.persistence.database import Database
from backflush_warehouse.adapters import tables as wh_tables
from sqlalchemy import Table, select

from support.e2e_paths import SAMPLE_DATA

CHAIR = "CHAIR-ERGO"
FAILING_QC = "CHAIR-TASK"  # its inspection plan fails it: rejected with the reason
SEAT = "SEAT-ASSY"  # deliberately short at the start: flushes park until the later receipts come
STOCK_ITEM = "SEAT-ASSY"  # sold from stock too: made by runs into the finished-goods location, never into SEAT's
HOLDERS = ("Acme Offices", "Bluebird Hotels", "Cobalt Cowork", "Delta Design", "Elm Street School")
#: The brand owners of contract manufacturing, and whether their orders may use our own components too. BRAND-A
#: consigns about half of what its orders need (our own stock covers the rest, sold to it); BRAND-B all of it, but
#: its GAS-LIFT-100 in two lots, the second only after every order is placed, so its releases park on its own
#: shortage (whatever our own stock) until that consignment comes (`plan_consignments`).
OWNERS = {"BRAND-A": True, "BRAND-B": False}
SOURCE = "/backflush/crash-test"

# Plenty of everything but seat assemblies; small first lots so that flushes cross lots (first in, first out).
AMPLE_STOCK: tuple[tuple[str, str, str], ...] = (
    ("SEAT-SHELL", "SS-0925", "40"),  # runs of seat assemblies cross into the second lots
    ("SEAT-SHELL", "SS-C2", "300"),
    ("FOAM-PU", "FP-0930", "60.000"),
    ("FOAM-PU", "FP-C2", "400.000"),
    ("FABRIC-MESH", "FM-1002", "150.000"),
    ("FABRIC-MESH", "FM-C2", "300.000"),
    ("SCREW-M6", "SC-C1", "3000"),
    ("SCREW-M6", "SC-C2", "60000"),
    ("BASE-STAR-5", "BS-C1", "400"),
    ("BASE-STAR-5", "BS-C2", "5000"),
    ("CASTOR-50", "CA-C1", "1000"),
    ("CASTOR-50", "CA-C2", "20000"),
    ("GAS-LIFT-100", "GL-C1", "5000"),
    ("GREASE-LI", "G-01", "0.500"),
    ("BACKREST-MESH", "BM-C1", "5000"),
    ("ARMREST-PAIR", "AR-C1", "5000"),
    ("CARTON-CH", "CT-C1", "200"),
)


def say(line: str) -> None:
    print(f"[crash {time.strftime('%H:%M:%S')}] {line}", flush=True)


# ------------------------------------------------------------------------------------------------- the order mix


@dataclass
class PlannedOrder:
    """One order of the mix and what the driver did to it."""

    order_id: str
    kind: str  # a key of ORDER_KINDS: pre | qc | pre-cancel | post | post-cancel | stock | stock-partial |
    # stock-cancel | cm-pre | cm-post | cm-post-cancel
    item: str
    quantity: int
    holder: str
    splits: tuple[int, ...] = ()  # post: the completions to report (post-cancel: only the first, then cancel)
    sign: bool = False
    own_allowed: bool = False  # contract manufacturing: our own components may cover what the owner's cannot
    # what the driver has done
    completions: list[tuple[str, int, int]] = field(default_factory=list)  # (event id, quantity, completed before)
    cancel_sent: bool = False
    signed: bool = False
    # stock: one signature per delivery seen at the distributor (units shipped when signed; a delivery in parts
    # is signed for part by part)
    signatures: list[int] = field(default_factory=list)
    in_parts: bool = False  # stock: placed alone before a run one unit short of it (`plan_runs`), so served in parts
    # stock-cancel: the warehouse accepted the cancel (read from the distributor's end state by `reckon`; the
    # order then has nothing to sign for)
    cancel_accepted: bool = False

    @property
    def flow(self) -> str:
        return ORDER_KINDS[self.kind].flow

    @property
    def form(self) -> str:
        """The make-to-order kind whose steps and checks the order follows: a contract order is a pre, post or
        post-cancel order whose components come from its owner's lots (`contract`)."""
        return self.kind.removeprefix("cm-")

    @property
    def contract(self) -> bool:
        """A brand owner's order (contract manufacturing): its holder is the owner of the lots it consumes."""
        return self.kind.startswith("cm-")

    @property
    def owner(self) -> str | None:
        return self.holder if self.contract else None

    @property
    def partial(self) -> bool:
        return self.kind == "stock-partial"

    @property
    def cancelled(self) -> bool:
        """Cancelled for certain (a stock order's cancel is the warehouse's to decide: `expected_ends`)."""
        return self.form in ("pre-cancel", "post-cancel")

    @property
    def expected_ends(self) -> tuple[tuple[str, str | None], ...]:
        """The distributor's acceptable end states and what the order still waits for."""
        if self.kind == "stock-cancel":
            # accepted (nothing shipped when the warehouse read the cancel) or refused (shipped first): signed for
            return (("cancelled", None), ("closed", None))
        if self.cancelled:
            return (("cancelled", None),)
        if self.kind == "qc":
            return (("rejected", None),)
        if self.form == "pre" or self.sign:
            return (("closed", None),)
        return (("shipped", "signature"),)  # post, never signed: waits for its holder's signature

    @property
    def completed(self) -> int:
        return sum(quantity for _id, quantity, _before in self.completions)


def _pre(rng: random.Random, order_id: str) -> PlannedOrder:
    return PlannedOrder(order_id, "pre", CHAIR, rng.randint(1, 5), rng.choice(HOLDERS))


def _qc(rng: random.Random, order_id: str) -> PlannedOrder:
    return PlannedOrder(order_id, "qc", FAILING_QC, rng.randint(1, 5), rng.choice(HOLDERS))


def _pre_cancel(rng: random.Random, order_id: str) -> PlannedOrder:
    return PlannedOrder(order_id, "pre-cancel", CHAIR, rng.randint(1, 5), rng.choice(HOLDERS))


def _post(rng: random.Random, order_id: str) -> PlannedOrder:
    quantity = rng.randint(1, 5)
    first = rng.randint(1, quantity - 1) if quantity >= 2 and rng.random() < 0.5 else quantity
    splits = (first,) if first == quantity else (first, quantity - first)
    return PlannedOrder(order_id, "post", CHAIR, quantity, rng.choice(HOLDERS), splits=splits,
                        sign=rng.random() < 0.25)


def _post_cancel(rng: random.Random, order_id: str) -> PlannedOrder:
    quantity = rng.randint(2, 5)
    return PlannedOrder(order_id, "post-cancel", CHAIR, quantity, rng.choice(HOLDERS),
                        splits=(rng.randint(1, quantity - 1),))


def _stock(rng: random.Random, order_id: str) -> PlannedOrder:
    # every delivery signed for: a stock order closes once all of it is signed for
    return PlannedOrder(order_id, "stock", STOCK_ITEM, rng.randint(1, 4), rng.choice(HOLDERS), sign=True)


def _stock_partial(rng: random.Random, order_id: str) -> PlannedOrder:
    return PlannedOrder(order_id, "stock-partial", STOCK_ITEM, rng.randint(2, 5), rng.choice(HOLDERS), sign=True)


def _stock_cancel(rng: random.Random, order_id: str) -> PlannedOrder:
    # its holder cancels it while it waits or as a run serves it: the warehouse decides, refused means signed for
    return PlannedOrder(order_id, "stock-cancel", STOCK_ITEM, rng.randint(1, 3), rng.choice(HOLDERS), sign=True)


def _contract(form: Callable[[random.Random, str], PlannedOrder]) -> Callable[[random.Random, str], PlannedOrder]:
    """A brand owner's order of `form`: BRAND-A's may use our own components too, BRAND-B's never (`OWNERS`);
    every one closed or cancelled (the post ones signed for)."""

    def build(rng: random.Random, order_id: str) -> PlannedOrder:
        order = form(rng, order_id)
        order.kind = f"cm-{order.kind}"
        # alternate the owners by number (both present in any mix with two contract orders of a kind)
        order.holder = sorted(OWNERS)[int(order_id[-2:]) % len(OWNERS)]
        order.own_allowed = OWNERS[order.holder]
        order.sign = order.form == "post"
        return order

    return build


@dataclass(frozen=True)
class OrderKind:
    """One kind of order in the mix: its flow, how its ids read, and how one is drawn. A new form of order (a
    contract-manufacturing order, say) joins the crash test as a kind here, a count in the mix, its steps in the
    test's driver (`Driver.react`) and its checks in the reckoning (`reckon`)."""

    flow: str
    id_format: str
    build: Callable[[random.Random, str], PlannedOrder]


ORDER_KINDS: dict[str, OrderKind] = {
    "pre": OrderKind("pre", "CR-PRE-{:03d}", _pre),
    "qc": OrderKind("pre", "CR-QC-{:02d}", _qc),
    "pre-cancel": OrderKind("pre", "CR-PREX-{:02d}", _pre_cancel),
    "post": OrderKind("post", "CR-POST-{:03d}", _post),
    "post-cancel": OrderKind("post", "CR-POSTX-{:02d}", _post_cancel),
    "stock": OrderKind("stock", "CR-STK-{:02d}", _stock),
    "stock-partial": OrderKind("stock", "CR-STKP-{:02d}", _stock_partial),
    "stock-cancel": OrderKind("stock", "CR-STKX-{:02d}", _stock_cancel),
    "cm-pre": OrderKind("pre", "CR-CMPRE-{:02d}", _contract(_pre)),
    "cm-post": OrderKind("post", "CR-CMPOST-{:02d}", _contract(_post)),
    "cm-post-cancel": OrderKind("post", "CR-CMPOSTX-{:02d}", _contract(_post_cancel)),
}

#: The SQLite run's mix (kind -> count): 120 pre-product orders, 80 post-product orders (about half completed in
#: two partial completions, a quarter signed for), 4 chairs failing quality, 4 pre-product orders cancelled as
#: soon as placed, 6 post-product orders cancelled after a first partial completion, 16 orders sold from stock
#: and 8 more that accept partial deliveries (their stock comes from repetitive production runs, `plan_runs`), 4
#: stock orders their holders cancel while they wait or as a run serves them, and 18 brand owners' orders of
#: contract manufacturing (8 pre, 8 post, 2 post cancelled after a first completion; `plan_consignments`).
DEFAULT_MIX: dict[str, int] = {"pre": 120, "qc": 4, "pre-cancel": 4, "post": 80, "post-cancel": 6, "stock": 16,
                               "stock-partial": 8, "stock-cancel": 4, "cm-pre": 8, "cm-post": 8, "cm-post-cancel": 2}


def plan_orders(rng: random.Random, mix: Mapping[str, int] | None = None) -> list[PlannedOrder]:
    """The mix, in placement order (kinds interleaved): each kind drawn its count of times (`ORDER_KINDS`)."""
    orders: list[PlannedOrder] = []
    for kind, count in (mix if mix is not None else DEFAULT_MIX).items():
        spec = ORDER_KINDS[kind]
        orders += [spec.build(rng, spec.id_format.format(n)) for n in range(1, count + 1)]
    rng.shuffle(orders)
    return orders


# ------------------------------------------------------------------------------------ repetitive production runs


@dataclass
class PlannedRun:
    """One run report of the shop floor (SEAT-ASSY on line L1) and what the driver did with it."""

    run_id: str
    quantity: int
    lot: str
    reverse: bool = False  # reported, then reversed (the withdrawal saga) before any stock order could take it
    event_id: str | None = None  # the report's event id: the flush's id in the ledger
    reversal_sent: bool = False


#: Units the selling runs make beyond what the stock orders take: they stay free in the racks.
SPARE_STOCK = 3


def plan_runs(orders: Sequence[PlannedOrder], rng: random.Random) -> tuple[list[PlannedRun], str | None]:
    """The runs, and the stock order placed alone before them (the first that accepts partial deliveries, if any).

    A run reversed first (its lot withdrawn whole), then selling runs that together cover every stock order and a
    few spare: the first one unit short of the lead order (which waits alone for stock, so it is served in parts),
    the others in four random sizes placed between and after the other stock orders, so orders wait and are served
    as later runs arrive. No stock orders, no runs."""
    stock_orders = [order for order in orders if order.flow == "stock"]
    demand = sum(order.quantity for order in stock_orders)
    if not demand:
        return [], None
    lead = next((order for order in stock_orders if order.partial), None)
    if lead is not None:
        lead.in_parts = True
    first = lead.quantity - 1 if lead is not None else 0
    rest = demand + SPARE_STOCK - first
    cuts = sorted(rng.sample(range(1, rest), 3)) if rest > 4 else [rest, rest, rest]
    sizes = [first, cuts[0], cuts[1] - cuts[0], cuts[2] - cuts[1], rest - cuts[2]]
    runs = [PlannedRun("CR-RUN-X", rng.randint(3, 8), "SA-CR-RX", reverse=True)]
    runs += [PlannedRun(f"CR-RUN-{n}", size, f"SA-CR-R{n}") for n, size in enumerate((s for s in sizes if s), 1)]
    return runs, lead.order_id if lead is not None else None


def run_reported(run: PlannedRun) -> c.RunQuantityReported:
    return c.RunQuantityReported(run_id=run.run_id, line="L1", item=STOCK_ITEM, quantity=Decimal(run.quantity),
                                 period="2026-W49", lot=run.lot)


@dataclass(frozen=True)
class StockPlan:
    initial_seats: int
    later_receipts: tuple[tuple[str, int], ...]  # (lot, quantity) of SEAT-ASSY, received while orders flow


def plan_seat_stock(orders: Sequence[PlannedOrder]) -> StockPlan:
    """Seat assemblies for about 45 % of the chairs at the start, the rest (and a few spare) in two receipts."""
    demand = sum(order.quantity for order in orders if order.item == CHAIR)
    initial = demand * 45 // 100
    first = demand * 30 // 100
    return StockPlan(initial, (("SA-C2", first), ("SA-C3", demand - initial - first + 10)))


@dataclass(frozen=True)
class Consignment:
    """One lot a brand owner consigns (`ComponentsConsigned`); `late`: published after every order is placed."""

    owner: str
    item: str
    lot: str
    quantity: int
    late: bool = False

    def event(self) -> md.ComponentsConsigned:
        return md.ComponentsConsigned(receipt_id=f"{self.owner}:{self.lot}", owner=self.owner, item=self.item,
                                      lot=self.lot, quantity=Decimal(self.quantity))


#: The item BRAND-B consigns in two lots, the second late: its orders' releases park on its shortage meanwhile.
OWNER_SHORT_ITEM = "GAS-LIFT-100"


def plan_consignments(catalogue: BomCatalogue, orders: Sequence[PlannedOrder]) -> list[Consignment]:
    """What each owner's orders can take at most (every order's pre and post lines for its whole quantity, the
    cancelled ones included: they consume before they give back), consigned as `OWNERS` says: BRAND-A a quarter
    of it in a first lot and a third in a second (first in, first out crosses lots; our own stock does the rest),
    BRAND-B all of it and 2 spare, its `OWNER_SHORT_ITEM` half early and the rest late."""
    need: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for order in orders:
        if order.owner is None:
            continue
        for point in (FlushPoint.PRE, FlushPoint.POST):
            for item, quantity in _requirements(flush_requirements(catalogue, order.item, point,
                                                                   Decimal(order.quantity))).items():
                need[order.owner][item] += quantity
    lots: list[Consignment] = []
    for owner, items in sorted(need.items()):
        code = owner[-1]
        for item, quantity in sorted(items.items()):
            whole = int(quantity.to_integral_value(rounding="ROUND_CEILING"))
            if OWNERS[owner]:
                parts = [(f"{code}1-{item}", max(1, whole // 4), False), (f"{code}2-{item}", max(1, whole // 3), False)]
            elif item == OWNER_SHORT_ITEM:
                parts = [(f"{code}1-{item}", whole // 2, False), (f"{code}2-{item}", whole - whole // 2 + 2, True)]
            else:
                parts = [(f"{code}1-{item}", whole + 2, False)]
            lots += [Consignment(owner, item, lot, q, late) for lot, q, late in parts if q > 0]
    return lots


def write_master_data(directory: Path, stock: StockPlan) -> Path:
    """The sample chair's items, BOMs, inspection plans and policies, with stock for a few hundred chairs."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("items.yaml", "boms.yaml", "inspection.yaml", "policies.yaml"):
        shutil.copy(SAMPLE_DATA / name, directory / name)
    receipts = [{"item": SEAT, "lot": "SA-C1", "quantity": stock.initial_seats}]
    receipts += [{"item": item, "lot": lot, "quantity": quantity} for item, lot, quantity in AMPLE_STOCK]
    (directory / "stock.yaml").write_text("# Written by the crash test.\n" + yaml.safe_dump({"receipts": receipts}))
    return directory


# ------------------------------------------------------------------------------ a publisher for a restarting broker


#: How long the publisher waits for the broker to acknowledge a batch before it sends the same records again.
ACK_TIMEOUT_S = 20.0


class ReliablePublisher:
    """Publishes the driver's events; when the broker does not acknowledge, sends THE SAME records again (same
    event ids), as any well-behaved client would, so a resend is a redelivery the inboxes must absorb."""

    def __init__(self, bootstrap_servers: str, topic_prefix: str,
                 speakers: Mapping[Writer, KafkaSecurity] | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = TopicNames(topic_prefix)
        # On a broker with ACLs: each event is sent as the principal that may write its topic (a producer each).
        self.speakers = dict(speakers or {})
        self.producers: dict[Writer | None, AIOKafkaProducer] = {}
        self.sent = 0
        self.resends = 0

    def _new_producer(self, writer: Writer | None) -> AIOKafkaProducer:
        security = self.speakers.get(writer) if writer is not None else None
        return AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, enable_idempotence=True, linger_ms=0,
                                request_timeout_ms=10_000, **(security.kafka_options() if security else {}))

    async def start(self) -> None:
        for writer in self.speakers or [None]:
            self.producers[writer] = self._new_producer(writer)
            await self.producers[writer].start()

    async def stop(self) -> None:
        for producer in self.producers.values():
            with contextlib.suppress(Exception):
                await producer.stop()

    async def publish(self, *events: Event, timeout: float = 90.0) -> list[str]:
        envelopes = [envelope_for(event, source_for(event, otherwise=SOURCE)) for event in events]
        by_writer: dict[Writer | None, list[EncodedRecord]] = defaultdict(list)
        for event, envelope in zip(events, envelopes):
            writer = event.topic.writer if self.speakers else None
            by_writer[writer].append(encode(event, envelope, self.topics(event.topic)))
        for writer, records in by_writer.items():
            await self._send(writer, records, timeout)
            self.sent += len(records)
        return [str(envelope.event_id) for envelope in envelopes]

    async def _send(self, writer: Writer | None, records: Sequence[EncodedRecord], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            producer = self.producers[writer]
            try:
                # Bounded: a producer whose broker was killed under it may never answer; resending is the cure.
                async with asyncio.timeout(ACK_TIMEOUT_S):
                    futures = [await producer.send(r.topic, value=r.value, key=r.key, headers=r.headers)
                               for r in records]
                    await asyncio.gather(*futures)
                return
            except Exception as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the broker did not take {len(records)} records within {timeout:.0f} s: "
                                         f"{type(error).__name__}: {error}") from error
                self.resends += len(records)
                say(f"publish failed ({type(error).__name__}: {error}); sending the same {len(records)} again")
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await producer.stop()
                self.producers[writer] = self._new_producer(writer)
                with contextlib.suppress(Exception):  # still down: the next round tries again
                    await self.producers[writer].start()


# ----------------------------------------------------------------------------------------------------- the chaos


@dataclass
class ChaosLog:
    seed: int
    kills: list[tuple[float, str, int | None]] = field(default_factory=list)  # (when, service, orders in flight)
    broker_restarts: list[tuple[float, str, int | None]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # services that died on their own, restarts that failed
    unplanned_restarts: int = 0
    done: bool = False

    def kills_of(self, name: str) -> int:
        return sum(1 for _t, killed, _busy in self.kills if killed == name)


class Chaos:
    """SIGKILLs every service process at random moments (seeded) and restarts it, restarts the broker once; between its
    own actions it watches for services that die on their own, records that as a finding and restarts them, as
    compose's `restart: unless-stopped` would. Runs in a thread: every action here blocks."""

    def __init__(self, stack: LocalStack, broker: LocalKafka, seed: int, *, in_flight: Callable[[], int | None],
                 kills_per_service: int = 2, first_after: float = 2.0, gap: tuple[float, float] = (1.5, 4.0),
                 hard_broker_restart: bool = True, started: float | None = None) -> None:
        self.stack = stack
        self.in_flight = in_flight
        self.broker = broker
        self.rng = random.Random(seed)
        self.log = ChaosLog(seed)
        self.started = started or time.monotonic()
        self.hard = hard_broker_restart
        # every process (each instance of a service), in the stack's order: one instance each gives the schedule
        # a seed always gave
        actions = [name for name in stack.processes for _ in range(kills_per_service)] + ["broker"]
        self.rng.shuffle(actions)
        self.schedule = [(first_after if n == 0 else self.rng.uniform(*gap), action) for n, action in
                         enumerate(actions)]
        self.stop_watching = threading.Event()
        self._in_action: str | None = None

    def at(self) -> float:
        return round(time.monotonic() - self.started, 1)

    def describe(self) -> str:
        return ", ".join(f"+{delay:.1f}s {action}" for delay, action in self.schedule)

    def run(self) -> ChaosLog:
        try:
            for delay, action in self.schedule:
                self._watch(delay)
                if self.stop_watching.is_set():
                    return self.log  # the test gave up early: leave the rest of the schedule undone
                if action == "broker":
                    self._restart_broker()
                else:
                    self._kill_and_restart(action)
            self.log.done = True
            while not self.stop_watching.is_set():
                self._watch(0.5)
        except Exception as error:  # noqa: BLE001 - reported by the test, never lost in the thread
            self.log.findings.append(f"the chaos itself failed at +{self.at()}s: {type(error).__name__}: {error}")
        return self.log

    def _watch(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            for name, service in self.stack.processes.items():
                if not service.running:
                    code = service.process.returncode if service.process is not None else None
                    self.log.findings.append(
                        f"{name} exited on its own (code {code}) at +{self.at()}s; log tail:\n{service.log_tail(12)}")
                    say(f"FINDING: {name} exited on its own (code {code}); restarting it as compose would")
                    self.log.unplanned_restarts += 1
                    self._restart(name)
            if not self.broker.is_running():
                self.log.findings.append(f"the broker exited on its own at +{self.at()}s:\n{self.broker.log_tail(12)}")
                self.broker.restart()
            if time.monotonic() >= deadline or self.stop_watching.is_set():
                return
            time.sleep(0.2)

    def _restart(self, name: str) -> None:
        try:
            self.stack.restart(name, timeout=90)
        except Exception as error:  # noqa: BLE001
            self.log.findings.append(f"{name} could not be restarted at +{self.at()}s: {error}")

    def _kill_and_restart(self, name: str) -> None:
        busy = self.in_flight()
        self.stack.kill(name)
        self.log.kills.append((self.at(), name, busy))
        down = self.rng.uniform(0.0, 1.5)
        say(f"SIGKILL {name} at +{self.at()}s with {busy} orders in flight; down for {down:.1f} s")
        time.sleep(down)
        started = time.monotonic()
        self._restart(name)
        say(f"{name} restarted and healthy in {time.monotonic() - started:.1f} s")

    def _restart_broker(self) -> None:
        how = "SIGKILL" if self.hard else "SIGTERM"
        busy = self.in_flight()
        at = self.at()
        say(f"restarting the broker ({how}) at +{at}s with {busy} orders in flight")
        started = time.monotonic()
        self.broker.restart(hard=self.hard)
        self.log.broker_restarts.append((at, how, busy))
        say(f"broker back in {time.monotonic() - started:.1f} s")


def in_flight_counter(distributor_db: Path, placed: Callable[[], int]) -> Callable[[], int | None]:
    """How many orders the driver has placed that are not at rest yet (closed, rejected, cancelled, or shipped and
    waiting for a signature), read straight from the distributor's SQLite file: the chaos runs in a thread of its
    own and cannot share the test's event loop."""

    def count() -> int | None:
        try:
            with contextlib.closing(sqlite3.connect(distributor_db, timeout=5)) as connection:
                row = connection.execute(
                    "SELECT count(*) FROM orders WHERE state IN ('closed', 'rejected', 'cancelled', 'shipped')"
                ).fetchone()
                return placed() - int(row[0])
        except sqlite3.Error:
            return None

    return count


# ------------------------------------------------------------------------------------------------ reading back


class Databases:
    """One reading engine per service database for the whole test (the services write; we only read)."""

    def __init__(self, stack: LocalStack) -> None:
        self.urls = {name: stack.database_url(name) for name in SERVICES}
        self.db = {name: Database(url) for name, url in self.urls.items()}

    async def rows(self, service: str, table: Table, *where: Any) -> list[dict[str, Any]]:
        query = select(table)
        if where:
            query = query.where(*where)
        async with self.db[service].reading() as session:
            return [dict(r) for r in (await session.execute(query)).mappings().all()]

    async def close(self) -> None:
        for database in self.db.values():
            await database.close()

    async def production(self) -> dict[str, dict[str, Any]]:
        return {r["order_id"]: r for r in await self.rows("manufacturer", mf_tables.production_orders)}

    async def orders(self) -> dict[str, dict[str, Any]]:
        return {r["order_id"]: r for r in await self.rows("distributor", dt_tables.orders)}

    async def unpublished(self) -> dict[str, int]:
        counts = {}
        for name, outbox in (("manufacturer", mf_tables.outbox), ("distributor", dt_tables.outbox),
                             ("warehouse", wh_tables.outbox)):
            counts[name] = len(await self.rows(name, outbox, outbox.c.published_at.is_(None)))
        return counts


async def consumer_lag(bootstrap_servers: str, topic_prefix: str,
                       security: KafkaSecurity | None = None) -> dict[str, int]:
    """Records not yet committed by each of the services' consumer groups (by group)."""
    options = security.kafka_options() if security else {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **options)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, **options)
    await admin.start()
    await consumer.start()
    try:
        lag: dict[str, int] = {}
        topics = TopicNames(topic_prefix)
        partitions_of: dict[str, list[TopicPartition]] = {}
        for service in SERVICES:
            for topic in Topic:
                group = f"{topic_prefix}{service}.{topic.value}"
                committed = await admin.list_consumer_group_offsets(group)
                if not committed:
                    continue
                name = topics(topic)
                if name not in partitions_of:
                    found = consumer.partitions_for_topic(name) or set()
                    if not found:
                        await consumer._client.force_metadata_update()
                        found = consumer.partitions_for_topic(name) or set()
                    partitions_of[name] = [TopicPartition(name, p) for p in sorted(found)]
                ends = await consumer.end_offsets(partitions_of[name])
                lag[group] = sum(max(0, end - (committed[tp].offset if tp in committed else 0))
                                 for tp, end in ends.items())
        return lag
    finally:
        await consumer.stop()
        await admin.close()


async def records_on_topics(bootstrap_servers: str, topic_prefix: str,
                            security: KafkaSecurity | None = None) -> tuple[int, int, int]:
    """(records, distinct event ids, distinct dead letters) on every topic of this run, read from the start to the
    end (a dead letter republished after a kill has the same `dlq_id`: one dead letter)."""
    topics = TopicNames(topic_prefix)
    names = [topics(topic) for topic in Topic]
    dlq_names = [topics.dead_letter(topic) for topic in Topic]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None,
                                **(security.kafka_options() if security else {}))
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(name, p) for name in names + dlq_names
                      for p in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        ids: Counter[str] = Counter()
        dead: set[str] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            positions = [await consumer.position(tp) for tp in ends]
            if all(position >= end for position, end in zip(positions, ends.values())):
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    headers = {k: v.decode(errors="replace") for k, v in (record.headers or ())}
                    if tp.topic in dlq_names:
                        dead.add(headers.get("dlq_id", f"?{tp}:{record.offset}"))
                        continue
                    ids[headers.get("ce_id", f"?{tp}:{record.offset}")] += 1
        return sum(ids.values()), len(ids), len(dead)
    finally:
        await consumer.stop()


def count_log_lines(stack: LocalStack, needle: str) -> dict[str, int]:
    counts = {}
    for name, service in stack.processes.items():
        text = service.log_path.read_text(errors="replace") if service.log_path.exists() else ""
        counts[name] = text.count(needle)
    return counts


# ------------------------------------------------------------------------------------- the independent reckoning


def _requirements(requirements: Iterable[Any]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = defaultdict(Decimal)
    for requirement in requirements:
        total[requirement.item] += requirement.quantity
    return dict(total)


def expected_flushes(catalogue: BomCatalogue, orders: Sequence[PlannedOrder],
                     runs: Sequence[PlannedRun] = ()) -> dict[str, tuple[str, dict[str, Decimal]]]:
    """Every flush the ledger must hold exactly once, for the orders that went through: flush id -> (order,
    consumption per component). Release: the pre lines for the full quantity. Pre-product completion: the post
    lines for the full quantity. Post-product completion k: the rounded cumulative requirement minus what was
    flushed before (`flush_requirements` with `completed_before`). A run (reversed or not: a reversal adds
    movements, it never takes the flush back): its pre and post lines at once, under its report's id. Stock
    orders flush nothing."""
    flushes: dict[str, tuple[str, dict[str, Decimal]]] = {}
    for run in runs:
        if run.event_id is not None:
            flushes[run.event_id] = (run.run_id, _requirements(run_requirements(catalogue, STOCK_ITEM,
                                                                                Decimal(run.quantity))))
    for order in orders:
        if order.cancelled or order.kind == "qc" or order.flow == "stock":
            continue
        quantity = Decimal(order.quantity)
        flushes[f"{order.order_id}:release"] = (
            order.order_id, _requirements(flush_requirements(catalogue, order.item, FlushPoint.PRE, quantity)))
        if order.flow == "pre":
            flushes[f"{order.order_id}:completion"] = (
                order.order_id, _requirements(flush_requirements(catalogue, order.item, FlushPoint.POST, quantity)))
        for event_id, completed, before in order.completions:
            flushes[event_id] = (order.order_id, _requirements(flush_requirements(
                catalogue, order.item, FlushPoint.POST, Decimal(completed), Decimal(before))))
    return {flush_id: (order_id, {k: v for k, v in need.items() if v}) for flush_id, (order_id, need) in
            flushes.items()}


def expected_run_consumption(catalogue: BomCatalogue, runs: Sequence[PlannedRun], *,
                             reversed_too: bool = False) -> dict[str, Decimal]:
    """Per component, what the runs consume: each run its own rounded pre and post lines (reversed runs nothing,
    net, unless `reversed_too`: what they take before they give it back)."""
    total: dict[str, Decimal] = defaultdict(Decimal)
    for run in runs:
        if not run.reverse or reversed_too:
            for item, quantity in _requirements(run_requirements(catalogue, STOCK_ITEM, Decimal(run.quantity))).items():
                total[item] += quantity
    return dict(total)


def expected_consumption(catalogue: BomCatalogue, orders: Sequence[PlannedOrder],
                         runs: Sequence[PlannedRun] = ()) -> dict[str, Decimal]:
    """Per component, straight from the BOM: pre-product orders closed consume the full explosion minus manual
    lines; post-product orders the pre lines for the order quantity plus the post lines of one explosion of the
    total completed quantity (partial completions never drift); rejected and cancelled orders nothing; stock
    orders nothing (their goods were made by the runs); runs what `expected_run_consumption` says."""
    total: dict[str, Decimal] = defaultdict(Decimal, expected_run_consumption(catalogue, runs))
    for order in orders:
        if order.cancelled or order.kind == "qc" or order.flow == "stock":
            continue
        full = explode(catalogue, order.item, Decimal(order.quantity))
        if order.flow == "pre":
            lines = [r for r in full if r.flush is not FlushPoint.MANUAL]
        else:
            lines = [r for r in full if r.flush is FlushPoint.PRE]
            lines += [r for r in explode(catalogue, order.item, Decimal(order.completed)) if r.flush is FlushPoint.POST]
        for requirement in lines:
            total[requirement.item] += requirement.quantity
    return dict(total)


@dataclass
class Reckoning:
    """What the end state showed: figures to print, duplicate effects counted, and every breach found."""

    figures: dict[str, Any] = field(default_factory=dict)
    duplicates: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 200:
            self.problems.append(text)

    def duplicate(self, what: str, text: str, extra: int = 1) -> None:
        self.duplicates[what] += extra
        self.problem(f"DOUBLED {what}: {text}")


async def reckon(dbs: Databases, catalogue: BomCatalogue, orders: Sequence[PlannedOrder],
                 received: dict[tuple[str, str], Decimal], runs: Sequence[PlannedRun] = (),
                 finished_goods_location: str = "FG", consignments: Sequence[Consignment] = ()) -> Reckoning:
    """`received`: every lot received or consigned, with its quantity."""
    result = Reckoning()
    by_id = {order.order_id: order for order in orders}
    ends = await dbs.orders()
    for order in orders:
        if order.kind == "stock-cancel" and (ends.get(order.order_id) or {}).get("state") == "cancelled":
            # the warehouse accepted its holder's cancel: nothing shipped, nothing to sign for; the checks below
            # hold the warehouse to that (`_reckon_stock_sales`, `_reckon_outboxes`)
            order.cancel_accepted, order.sign = True, False
    await _reckon_distributor(dbs, by_id, result)
    await _reckon_manufacturer(dbs, catalogue, orders, by_id, received, runs, finished_goods_location, result)
    await _reckon_runs(dbs, runs, finished_goods_location, result)
    await _reckon_warehouse(dbs, by_id, result)
    await _reckon_stock_sales(dbs, by_id, runs, result)
    await _reckon_outboxes(dbs, by_id, runs, result)
    await _reckon_contracts(dbs, catalogue, orders, consignments, result)
    return result


async def _reckon_distributor(dbs: Databases, by_id: dict[str, PlannedOrder], result: Reckoning) -> None:
    rows = await dbs.orders()
    states: Counter[str] = Counter()
    for order_id, order in by_id.items():
        row = rows.get(order_id)
        if row is None:
            result.problem(f"{order_id}: the distributor has no such order (lost)")
            continue
        states[f"{order.flow} {row['state']}" + (f" (waiting for {row['waiting_for']})" if row["waiting_for"] else "")] += 1
        finished = row["state"] in ("closed", "rejected", "cancelled")
        if not finished and not row["waiting_for"]:
            result.problem(f"{order_id}: {row['state']} but waits for nothing")
        if (row["state"], row["waiting_for"]) not in order.expected_ends:
            result.problem(f"{order_id} ({order.kind}): ends {row['state']} / {row['waiting_for']}, "
                           f"expected {' or '.join(map(str, order.expected_ends))}")
    extra = set(rows) - set(by_id)
    if extra:
        result.problem(f"the distributor has orders nobody placed: {sorted(extra)[:5]}")
    result.figures["orders by end state"] = dict(sorted(states.items()))

    events = await dbs.rows("distributor", dt_tables.order_events)
    per_type: Counter[tuple[str, str]] = Counter((e["order_id"], e["event_type"]) for e in events)
    for (order_id, event_type), count in per_type.items():
        order = by_id.get(order_id)
        if order is None:
            continue
        allowed = 1
        if event_type in (c.ProductionCompleted.event_type, c.CompletionReported.event_type,
                          inv.ConsignmentStockReceived.event_type, c.ComponentsBackflushed.event_type,
                          c.BackflushParked.event_type, inv.GoodsTurnedOver.event_type,
                          c.ConsignedComponentsConsumed.event_type, c.ConsignedComponentsReturned.event_type):
            continue  # several per order by nature; their effects are counted at their owners
        if order.flow == "stock":
            if event_type in (c.FinishedStockAwaited.event_type, c.GoodsShipped.event_type):
                continue  # told again as the figures change; shipments in parts (their units counted at the warehouse)
            if event_type in (c.DeliverySigned.event_type, c.GoodsSignedFor.event_type):
                allowed = len(order.signatures)  # one per delivery the driver signed for
        if count > allowed:
            result.duplicate("distributor history", f"{order_id} recorded {event_type} {count} times", count - 1)
    result.figures["distributor history rows"] = len(events)


async def _reckon_manufacturer(dbs: Databases, catalogue: BomCatalogue, orders: Sequence[PlannedOrder],
                               by_id: dict[str, PlannedOrder], received: dict[tuple[str, str], Decimal],
                               runs: Sequence[PlannedRun], fg: str, result: Reckoning) -> None:
    movements = await dbs.rows("manufacturer", mf_tables.ledger_movements)
    result.figures["ledger movements"] = len(movements)
    result.figures["ledger movements by reason"] = dict(sorted(Counter(m["reason"] for m in movements).items()))

    # one movement per (flush, item, lot, reason): a flush applied twice doubles them
    per_key = Counter((m["flush_id"], m["item"], m["lot"], m["into_lot"], m["reason"])
                      for m in movements if m["flush_id"] is not None)
    for (flush_id, item, lot, _into, reason), count in per_key.items():
        if count > 1:
            result.duplicate("flush movements", f"flush {flush_id}: {count} x {reason} of {item} lot {lot}", count - 1)
    once_per_lot = {"receipt": ("item", "lot"), "production_receipt": ("item", "lot"),
                    "delivery": ("item", "lot")}
    run_ids = {run.run_id for run in runs}
    for reason, key in once_per_lot.items():
        # a run's lot is delivered once per stock order signed for from it: `_reckon_runs` holds those to the
        # units the warehouse allocated, so twice-posted deliveries show there
        counted = Counter(tuple(m[k] for k in key) for m in movements if m["reason"] == reason
                          and not (reason == "delivery" and m["production_order"] in run_ids))
        for found, count in counted.items():
            if count > 1:
                result.duplicate(f"{reason} movements", f"{found}: {count} times", count - 1)
    promised = Counter((m["item"], m["lot"]) for m in movements if m["reason"] == "allocation" and m["quantity"] > 0)
    for found, count in promised.items():
        if count > 1:
            result.duplicate("allocations", f"{found}: allocated {count} times", count - 1)

    # every expected flush posted once, with exactly what the BOM says
    flushes = expected_flushes(catalogue, orders, runs)
    posted: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for m in movements:
        if m["reason"] == "backflush" and m["flush_id"] is not None:
            posted[m["flush_id"]][m["item"]] -= m["quantity"]
    for flush_id, (order_id, need) in flushes.items():
        got = {k: v for k, v in posted.get(flush_id, {}).items() if v}
        if got != need:
            result.problem(f"flush {flush_id} of {order_id}: posted {got}, the BOM says {need}")
    # reversed runs are undone like cancelled orders: every movement of theirs nets to zero
    cancelled_orders = {o.order_id for o in orders if o.cancelled} | {r.run_id for r in runs if r.reverse}
    for flush_id, got in posted.items():
        if flush_id in flushes:
            continue
        owners = {m["production_order"] for m in movements if m["flush_id"] == flush_id}
        if not owners <= cancelled_orders:
            result.problem(f"flush {flush_id} ({owners}) posted {dict(got)} but no such flush was expected")
    result.figures["flushes posted (expected)"] = f"{sum(1 for f in flushes if f in posted)} ({len(flushes)})"

    # cancelled orders: every movement netted to zero, per item, location and lot
    net: dict[tuple[str, str, str, str, bool], Decimal] = defaultdict(Decimal)
    for m in movements:
        if m["production_order"] in cancelled_orders:
            net[(m["production_order"], m["item"], m["location"], m["lot"], m["reason"] == "allocation")] += m["quantity"]
    for key, quantity in net.items():
        if quantity:
            result.problem(f"cancelled order {key[0]}: {key[1]} {key[2]}/{key[3]} nets {quantity}, not 0")
    result.figures["reversal movements"] = sum(1 for m in movements if m["reason"] == "reversal")

    # ledger totals per component against the explosion of the orders
    want = expected_consumption(catalogue, orders, runs)
    consumed: dict[str, Decimal] = defaultdict(Decimal)
    on_hand: dict[str, Decimal] = defaultdict(Decimal)
    for m in movements:
        if m["location"] == fg or m["reason"] == "allocation":
            continue
        on_hand[m["item"]] += m["quantity"]
        if m["reason"] in ("backflush", "reversal", "manual_issue", "scrap"):
            consumed[m["item"]] -= m["quantity"]
    consumed_nonzero = {k: v for k, v in consumed.items() if v}
    if consumed_nonzero != want:
        result.problem(f"ledger consumption {dict(sorted(consumed_nonzero.items()))} != computed from the orders "
                       f"{dict(sorted(want.items()))}")
    for item in sorted(set(on_hand) | {i for i, _lot in received}):
        should = sum((q for (i, _lot), q in received.items() if i == item), Decimal(0)) - want.get(item, Decimal(0))
        if on_hand.get(item, Decimal(0)) != should:
            result.problem(f"{item}: on hand {on_hand.get(item)} != received - consumed = {should}")
    result.figures["components consumed (ledger = computed)"] = {
        item: f"{format(consumed.get(item, 0), 'f')} = {format(quantity, 'f')}" for item, quantity in sorted(want.items())}

    # finished goods: produced lots once each, on hand what is neither delivered nor cancelled
    production = await dbs.production()
    lots = await dbs.rows("manufacturer", mf_tables.finished_lots)
    produced: dict[str, Decimal] = defaultdict(Decimal)
    for lot in lots:
        produced[lot["order_id"]] += lot["quantity"]
    fg_on_hand: dict[str, Decimal] = defaultdict(Decimal)
    for m in movements:
        if m["location"] == fg and m["reason"] != "allocation" and m["production_order"]:
            fg_on_hand[m["production_order"]] += m["quantity"]
    for order in orders:
        row = production.get(order.order_id)
        if order.form in ("pre", "post"):
            if row is None:
                result.problem(f"{order.order_id}: no production order at the manufacturer")
                continue
            if produced.get(order.order_id) != order.quantity:
                result.problem(f"{order.order_id}: produced {produced.get(order.order_id)}, ordered {order.quantity}")
            want_status = "allocated" if order.form == "pre" else "delivered" if order.sign else "completed"
            if row["status"] != want_status:
                result.problem(f"{order.order_id}: production order {row['status']}, expected {want_status}")
            want_fg = Decimal(0) if order.sign else Decimal(order.quantity)
            if fg_on_hand.get(order.order_id, Decimal(0)) != want_fg:
                result.problem(f"{order.order_id}: {fg_on_hand.get(order.order_id)} finished on hand, expected {want_fg}")
        elif order.cancelled and row is not None and row["status"] != "cancelled":
            result.problem(f"{order.order_id}: production order {row['status']}, expected cancelled")
        elif order.kind == "qc" and (row is None or row["status"] != "quality-failed"):
            result.problem(f"{order.order_id}: production order {row and row['status']}, expected quality-failed")
        elif order.flow == "stock" and row is not None:
            result.problem(f"{order.order_id}: a stock order has a production order ({row['status']})")
    parked = await dbs.rows("manufacturer", mf_tables.parked_flushes)
    result.figures["parked flushes (posted / cancelled / waiting)"] = (
        f"{sum(1 for p in parked if p['status'] == 'posted')} / {sum(1 for p in parked if p['status'] == 'cancelled')}"
        f" / {sum(1 for p in parked if p['status'] == 'waiting')}")
    if any(p["status"] == "waiting" for p in parked):
        result.problem(f"parked flushes still waiting: {[p['flush_id'] for p in parked if p['status'] == 'waiting']}")


async def _reckon_warehouse(dbs: Databases, by_id: dict[str, PlannedOrder], result: Reckoning) -> None:
    units = await dbs.rows("warehouse", wh_tables.stock_units)
    per_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for unit in units:
        per_order[unit["order_id"]].append(unit)
    lot_totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for unit in units:
        lot_totals[(unit["order_id"], unit["lot"])] += unit["quantity"]
    consigned = Decimal(0)
    for order_id, order in by_id.items():
        mine = per_order.get(order_id, [])
        total = sum((u["quantity"] for u in mine), Decimal(0))
        if order.form == "pre":
            expected_lots = {(order_id, f"{order_id}-1"): Decimal(order.quantity)}
            shape = {(u["kind"], u["status"], u["owner"]) for u in mine}
            if shape != {("rack", "stored", "manufacturer")}:
                result.problem(f"{order_id}: rack units {shape}")
        elif order.form == "post":
            expected_lots = {}
            cumulative = 0
            for _id, quantity, _before in order.completions:
                cumulative += quantity
                expected_lots[(order_id, f"{order_id}-C{cumulative}")] = Decimal(quantity)
            consigned += total
            owner = order.holder if order.sign else "manufacturer"
            status = "delivered" if order.sign else "shipped"
            shape = {(u["kind"], u["status"], u["owner"]) for u in mine}
            if shape != {("consignment", status, owner)}:
                result.problem(f"{order_id}: consignment units {shape}, expected {('consignment', status, owner)}")
        elif order.flow == "stock":
            continue  # `_reckon_stock_sales`
        else:
            expected_lots = None
            if any(u["status"] != "released" for u in mine):
                result.problem(f"{order_id} (cancelled): units {[(u['lot'], u['status']) for u in mine]}")
            if order.form == "post-cancel" and total > order.completed:
                result.duplicate("stock units", f"{order_id}: {total} units stored for {order.completed} completed")
            continue
        got = {key: q for key, q in lot_totals.items() if key[0] == order_id}
        for key, quantity in got.items():
            if key in expected_lots and quantity > expected_lots[key]:
                result.duplicate("stock units", f"{key}: {quantity} units stored for a lot of {expected_lots[key]}")
        if got != expected_lots:
            result.problem(f"{order_id}: units per lot {got}, expected {expected_lots}")
    result.figures["consignment units (= completed)"] = (
        f"{format(consigned, 'f')} = "
        f"{sum(o.completed for o in by_id.values() if o.form == 'post')}")

    transfers = await dbs.rows("warehouse", wh_tables.ownership_transfers)
    moved: dict[str, Decimal] = defaultdict(Decimal)
    for t in transfers:
        moved[t["order_id"]] += t["quantity"]
    for order_id, order in by_id.items():
        want = Decimal(order.quantity) if order.sign else Decimal(0)
        if moved.get(order_id, Decimal(0)) > want:
            result.duplicate("ownership transfers", f"{order_id}: {moved[order_id]} moved for {want}")
        elif moved.get(order_id, Decimal(0)) != want:
            result.problem(f"{order_id}: ownership of {moved.get(order_id)} moved, expected {want}")
    waiting = await dbs.rows("warehouse", wh_tables.waiting_put_aways)
    if waiting:
        result.problem(f"put-aways still waiting: {[w['order_id'] for w in waiting]}")


#: Why the distributor dead-letters a holder's cancel of a stock order that shipped first: it knew it shipped, the
#: warehouse refused (`CancellationAfterShipmentError`), or it was signed for and closed already.
REFUSED_CANCEL = ("CancellationAfterShipmentError", "OrderAlreadyFinishedError")


def _reckon_stock_cancel_answers(by_id: dict[str, PlannedOrder], per_type: Counter[tuple[str, str]],
                                 result: Reckoning) -> None:
    """The warehouse and the distributor agree on every holder's cancel of a stock order: accepted by the
    warehouse exactly when the distributor cancelled it, never both accepted and refused."""
    for order_id, order in by_id.items():
        accepted = per_type.get((order_id, c.StockOrderCancellationAccepted.event_type), 0)
        refused = per_type.get((order_id, c.StockOrderCancellationRefused.event_type), 0)
        if order.kind != "stock-cancel":
            if accepted or refused:
                result.problem(f"{order_id}: nobody cancelled it, yet the warehouse answered a cancel "
                               f"({accepted} accepted, {refused} refused)")
        elif order.cancel_accepted and (accepted, refused) != (1, 0):
            result.problem(f"{order_id}: cancelled at the distributor, the warehouse accepted {accepted} and "
                           f"refused {refused} times")
        elif not order.cancel_accepted and accepted:
            result.problem(f"{order_id}: the warehouse accepted its cancel, yet it was signed for and closed")


# Events each service publishes at most once per order (a doubled effect would publish it twice, with two ids).
ONCE_PER_ORDER = {
    "distributor": (o.OrderForwarded, o.OrderCancelled, o.FinalOrderPlaced, inv.GoodsDirectedToRacks, c.OrderClosed,
                    o.StockOrderCancellationRequested),
    "manufacturer": (c.ProductionOrderRejected, c.QualityInspectionRecorded, inv.PreSaleInventoryDetailsForwarded,
                     c.GoodsAllocated),
    "warehouse": (inv.GoodsRacked, c.InventoryCheckReturned, c.GoodsShipped, c.GoodsSignedFor,
                  inv.GoodsReleasedFromStorage, c.StockOrderCancellationAccepted, c.StockOrderCancellationRefused),
}
# Events about a run each service publishes: once for every run, once for a reversed run only, or never.
PER_RUN: dict[str, tuple[tuple[type[Event], str], ...]] = {
    "manufacturer": ((inv.FinishedGoodsStocked, "every"), (inv.FinishedStockWithdrawalRequested, "reversed"),
                     (c.RunReversed, "reversed"), (c.RunReportRefused, "never")),
    "warehouse": ((c.FinishedStockWithdrawn, "reversed"), (c.FinishedStockWithdrawalRefused, "never")),
}
OUTBOXES = {"manufacturer": mf_tables.outbox, "distributor": dt_tables.outbox, "warehouse": wh_tables.outbox}
INBOXES = {"manufacturer": mf_tables.inbox, "distributor": dt_tables.inbox, "warehouse": wh_tables.inbox}


async def _reckon_runs(dbs: Databases, runs: Sequence[PlannedRun], fg: str, result: Reckoning) -> None:
    """Every run at the manufacturer once: stocked (its lot in the finished-goods location, less what holders
    signed for: every stock order is signed for by the end) or, reversed, cancelled with its lot gone."""
    if not runs:
        return
    production = await dbs.production()
    lots = {lot["lot"]: lot for lot in await dbs.rows("manufacturer", mf_tables.finished_lots)}
    movements = await dbs.rows("manufacturer", mf_tables.ledger_movements,
                               mf_tables.ledger_movements.c.production_order.in_([r.run_id for r in runs]))
    sold: dict[str, Decimal] = {}
    for allocation in await dbs.rows("warehouse", wh_tables.stock_allocations):
        sold[allocation["lot"]] = sold.get(allocation["lot"], Decimal(0)) + Decimal(allocation["quantity"])
    for run in runs:
        row = production.get(run.run_id)
        want_status = "cancelled" if run.reverse else "stocked"
        if row is None or row["status"] != want_status or row["flow"] != "run":
            result.problem(f"run {run.run_id}: {row and (row['flow'], row['status'], row['reason'])} at the "
                           f"manufacturer, expected a run {want_status}")
            continue
        if row["completed"] != run.quantity:
            result.problem(f"run {run.run_id}: produced {row['completed']}, reported {run.quantity}")
        lot = lots.get(run.lot)
        if lot is None or lot["order_id"] != run.run_id or lot["quantity"] != run.quantity \
                or (lot["cancelled_at"] is not None) != run.reverse:
            result.problem(f"run {run.run_id}: finished lot {lot}, expected {run.lot} of {run.quantity}"
                           f"{' cancelled' if run.reverse else ''}")
        at_fg = sum((m["quantity"] for m in movements if m["production_order"] == run.run_id
                     and m["location"] == fg and m["item"] == STOCK_ITEM and m["reason"] != "allocation"), Decimal(0))
        want_fg = Decimal(0) if run.reverse else Decimal(run.quantity) - sold.get(run.lot, Decimal(0))
        if at_fg != want_fg:
            result.problem(f"run {run.run_id}: {at_fg} of lot {run.lot} in {fg}, expected {want_fg} (made "
                           f"{run.quantity}, signed for {sold.get(run.lot, Decimal(0))})")
    result.figures["runs at the manufacturer (stocked / reversed)"] = (
        f"{sum(1 for r in runs if (production.get(r.run_id) or {}).get('status') == 'stocked')} / "
        f"{sum(1 for r in runs if (production.get(r.run_id) or {}).get('status') == 'cancelled')}")


async def _reckon_stock_sales(dbs: Databases, by_id: dict[str, PlannedOrder], runs: Sequence[PlannedRun],
                              result: Reckoning) -> None:
    """The warehouse's finished-goods stock: run quantities reported = lots stocked minus reversed; no run's
    lot allocated above what it racked; every stock order served whole from the runs' lots, signed for, and its
    units its holder's."""
    stock_orders = {order_id: order for order_id, order in by_id.items() if order.flow == "stock"}
    if not runs and not stock_orders:
        return
    stocked = {r["run_id"]: r for r in await dbs.rows("warehouse", wh_tables.finished_stock)}
    by_run = {run.run_id: run for run in runs}
    if set(stocked) != set(by_run):
        result.problem(f"runs stocked at the warehouse {sorted(stocked)}, reported {sorted(by_run)}")
    for run in runs:
        row = stocked.get(run.run_id)
        want = "withdrawn" if run.reverse else "stocked"
        if row is not None and (row["lot"], row["quantity"], row["status"]) != (run.lot, run.quantity, want):
            result.problem(f"run {run.run_id} at the warehouse: {row['lot']} {row['quantity']} {row['status']}, "
                           f"expected {run.lot} {run.quantity} {want}")
    reported = sum(run.quantity for run in runs)
    reversed_ = sum(run.quantity for run in runs if run.reverse)
    in_stock = sum((r["quantity"] for r in stocked.values() if r["status"] == "stocked"), Decimal(0))
    if in_stock != reported - reversed_:
        result.problem(f"runs reported {reported} - reversed {reversed_} != stocked for sale {in_stock}")

    allocations = await dbs.rows("warehouse", wh_tables.stock_allocations)
    allocated_of_run: dict[str, Decimal] = defaultdict(Decimal)
    allocated_to: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for a in allocations:
        allocated_of_run[a["run_id"]] += a["quantity"]
        allocated_to[(a["order_id"], a["lot"])] += a["quantity"]
    units = await dbs.rows("warehouse", wh_tables.stock_units)
    free_of_run: dict[str, Decimal] = defaultdict(Decimal)
    for unit in units:
        if unit["order_id"] in by_run and unit["status"] == "stored":
            free_of_run[unit["order_id"]] += unit["quantity"]
    for run in runs:
        taken = allocated_of_run.get(run.run_id, Decimal(0))
        if run.reverse and (taken or free_of_run.get(run.run_id)):
            result.problem(f"reversed run {run.run_id}: {taken} allocated, {free_of_run.get(run.run_id)} still racked")
        elif taken > run.quantity:
            result.duplicate("stock allocations", f"run {run.run_id}: {taken} allocated of {run.quantity} racked")
        elif not run.reverse and taken + free_of_run.get(run.run_id, Decimal(0)) != run.quantity:
            result.problem(f"run {run.run_id}: {taken} allocated + {free_of_run.get(run.run_id)} free != "
                           f"{run.quantity} racked")
    lot_of_run = {run.lot for run in runs if not run.reverse}
    orders = {r["order_id"]: r for r in await dbs.rows("warehouse", wh_tables.stock_orders)}
    for order_id, order in stock_orders.items():
        row = orders.get(order_id)
        if order.cancel_accepted:
            # the distributor cancelled it on the warehouse's word: the warehouse must hold it cancelled, nothing
            # of it shipped, allocated or delivered
            taken = {lot: q for (oid, lot), q in allocated_to.items() if oid == order_id}
            mine = [(u["lot"], u["status"]) for u in units if u["order_id"] == order_id]
            if row is None or row["status"] != "cancelled" or row["shipped"] or taken or mine:
                result.problem(f"stock order {order_id} cancelled at the distributor, at the warehouse "
                               f"{row and (row['status'], row['shipped'])}, allocated {taken}, units {mine}")
            continue
        if row is None or row["status"] != "shipped" or row["shipped"] != order.quantity:
            result.problem(f"stock order {order_id}: {row and (row['status'], row['shipped'])} at the warehouse, "
                           f"expected all {order.quantity} shipped")
        mine = [u for u in units if u["order_id"] == order_id]
        shape = {(u["kind"], u["status"], u["owner"]) for u in mine}
        if shape != {("rack", "delivered", order.holder)}:
            result.problem(f"stock order {order_id}: units {shape}, expected {('rack', 'delivered', order.holder)}")
        per_lot: dict[str, Decimal] = defaultdict(Decimal)
        for unit in mine:
            per_lot[unit["lot"]] += unit["quantity"]
        allocated = {lot: q for (oid, lot), q in allocated_to.items() if oid == order_id}
        if sum(per_lot.values(), Decimal(0)) > order.quantity:
            result.duplicate("stock units", f"{order_id}: {dict(per_lot)} for an order of {order.quantity}")
        elif dict(per_lot) != allocated or sum(per_lot.values(), Decimal(0)) != order.quantity \
                or not set(per_lot) <= lot_of_run:
            result.problem(f"stock order {order_id}: units per lot {dict(per_lot)}, allocated {allocated}, "
                           f"ordered {order.quantity} from the runs' lots {sorted(lot_of_run)}")
    demand = sum(order.quantity for order in stock_orders.values() if not order.cancel_accepted)
    free = sum(free_of_run.values(), Decimal(0))
    if free != reported - reversed_ - demand:
        result.problem(f"{free} units free for sale, expected stocked {reported - reversed_} - sold {demand}")
    result.figures["finished-goods stock (reported - reversed = sold + free)"] = (
        f"{reported} - {reversed_} = {sum(allocated_of_run.values(), Decimal(0))} + {free}")
    awaited = Counter(e["order_id"] for e in await dbs.rows("distributor", dt_tables.order_events)
                      if e["event_type"] == c.FinishedStockAwaited.event_type)
    cancels = [order for order in stock_orders.values() if order.kind == "stock-cancel"]
    result.figures["stock orders cancelled by their holders (accepted / refused: shipped first)"] = (
        f"{sum(1 for o in cancels if o.cancel_accepted)} / {sum(1 for o in cancels if not o.cancel_accepted)}")
    result.figures["stock orders (that waited for stock, signed for in parts)"] = (
        f"{len(stock_orders)} ({sum(1 for o in stock_orders if awaited[o])}, "
        f"{sum(1 for o in stock_orders.values() if len(o.signatures) > 1)})")


async def _reckon_outboxes(dbs: Databases, by_id: dict[str, PlannedOrder], runs: Sequence[PlannedRun],
                           result: Reckoning) -> None:
    unpublished: dict[str, int] = {}
    dead: list[str] = []
    refused_cancels: Counter[str] = Counter()
    totals: dict[str, int] = {}
    inbox_totals: dict[str, str] = {}
    for service, outbox in OUTBOXES.items():
        rows = await dbs.rows(service, outbox)
        totals[service] = len(rows)
        unpublished[service] = sum(1 for r in rows if r["published_at"] is None)
        per_type = Counter((r["correlation_id"], r["event_type"]) for r in rows)
        for model in ONCE_PER_ORDER[service]:
            for order_id, order in by_id.items():
                count = per_type.get((order_id, model.event_type), 0)
                allowed = 1
                if order.flow == "stock" and model in (c.GoodsShipped, c.GoodsSignedFor):
                    # a delivery in parts ships and is signed for part by part: its units are summed below
                    allowed = len(order.signatures) if model is c.GoodsSignedFor else int(order.quantity)
                if count > allowed:
                    result.duplicate(f"{service} {model.__name__}", f"{order_id}: published {count} times",
                                     count - allowed)
        for model, when in PER_RUN.get(service, ()):
            for run in runs:
                count = per_type.get((run.run_id, model.event_type), 0)
                want = 1 if when == "every" or (when == "reversed" and run.reverse) else 0
                if count > want:
                    result.duplicate(f"{service} {model.__name__}", f"run {run.run_id}: published {count} times",
                                     count - want)
                elif count < want:
                    result.problem(f"run {run.run_id}: {service} published {model.__name__} {count} times")
        if service == "warehouse":
            shipped: dict[str, Decimal] = defaultdict(Decimal)
            parts: Counter[str] = Counter()
            for r in rows:
                if r["event_type"] == c.GoodsShipped.event_type and r["correlation_id"] in by_id:
                    shipped[r["correlation_id"]] += Decimal(json.loads(r["value"])["quantity"])
                    parts[r["correlation_id"]] += 1
            stock_orders = [order for order in by_id.values() if order.flow == "stock"]
            result.figures["stock orders shipped in parts"] = sorted(o.order_id for o in stock_orders
                                                                     if parts[o.order_id] > 1)
            for order in stock_orders:
                if order.in_parts and parts[order.order_id] < 2:
                    result.problem(f"{order.order_id} waited alone for stock and got one unit short of it first, "
                                   f"yet shipped in {parts[order.order_id]} part(s)")
            for order_id, order in by_id.items():
                if order.flow != "stock" or shipped.get(order_id, Decimal(0)) == (
                        0 if order.cancel_accepted else order.quantity):
                    continue
                text = f"{order_id}: GoodsShipped for {shipped.get(order_id)} units, ordered {order.quantity}"
                if shipped.get(order_id, Decimal(0)) > order.quantity:
                    result.duplicate("stock shipments", text)
                else:
                    result.problem(text)
        for order_id, order in by_id.items():
            if service == "manufacturer" and order.form == "post":
                for model in (c.ProductionCompleted, inv.GoodsTurnedOver):
                    count = per_type.get((order_id, model.event_type), 0)
                    if count > len(order.completions):
                        result.duplicate(f"manufacturer {model.__name__}",
                                         f"{order_id}: {count} for {len(order.completions)} completions",
                                         count - len(order.completions))
        if service == "warehouse":
            _reckon_stock_cancel_answers(by_id, per_type, result)
        for r in rows:
            if r["topic"].endswith(".dlq"):
                headers = {name: base64.b64decode(value).decode(errors="replace")
                           for name, value in json.loads(r["headers"] or "[]")}
                order = by_id.get(r["correlation_id"])
                if service == "distributor" and order is not None and order.kind == "stock-cancel" \
                        and not order.cancel_accepted and headers.get("ce_type") == \
                        o.OrderCancellationRequested.event_type and headers.get("dlq_error_type") in REFUSED_CANCEL:
                    refused_cancels[order.order_id] += 1  # the holder's cancel, refused: the goods had shipped
                    continue
                dead.append(f"{service}: {r['correlation_id']} {headers.get('ce_type')}: "
                            f"{headers.get('dlq_error_type')}: {headers.get('dlq_error_message', '')[:200]}")
        inbox = await dbs.rows(service, INBOXES[service])
        outcomes = Counter(r["outcome"] for r in inbox)
        inbox_totals[service] = f"{len(inbox)} ({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))})"
    result.figures["inbox rows (by outcome)"] = inbox_totals
    result.figures["outbox rows"] = totals
    result.figures["unpublished outbox rows"] = unpublished
    result.figures["dead letters written (refused stock cancels)"] = f"{len(dead)} ({sum(refused_cancels.values())})"
    for order in by_id.values():
        want = 1 if order.kind == "stock-cancel" and not order.cancel_accepted else 0
        if refused_cancels[order.order_id] > want:
            result.duplicate("refused cancels", f"{order.order_id}: its cancel dead-lettered "
                                                f"{refused_cancels[order.order_id]} times")
        elif refused_cancels[order.order_id] < want:
            result.problem(f"{order.order_id}: shipped and signed for despite its holder's cancel, yet the cancel "
                           f"was never dead-lettered with the refusal")
    result.figures["refused stock cancels dead-lettered"] = sum(refused_cancels.values())
    if any(unpublished.values()):
        result.problem(f"outbox rows left unpublished: {unpublished}")
    if dead:
        result.problem(f"dead letters written during the run: {dead[:10]}")


_CONSUMED, _RETURNED = c.ConsignedComponentsConsumed.event_type, c.ConsignedComponentsReturned.event_type


async def _reckon_contracts(dbs: Databases, catalogue: BomCatalogue, orders: Sequence[PlannedOrder],
                            consignments: Sequence[Consignment], result: Reckoning) -> None:
    """Contract manufacturing: per owner and lot, consigned - consumed (net of returns) = on hand in the ledger,
    never negative, not at the end nor ever in the movement history; no consigned lot moved by another owner's
    order, an ordinary order or a run; `ConsignedComponentsConsumed` once per posted flush of an owner's order and
    `ConsignedComponentsReturned` once per reversed one, their lots and quantities those of the ledger's
    movements of that flush."""
    if not consignments:
        return
    by_id = {order.order_id: order for order in orders}
    owner_of = {(lot.item, lot.lot): lot.owner for lot in consignments}
    consigned = {(lot.item, lot.lot): Decimal(lot.quantity) for lot in consignments}
    movements = sorted(await dbs.rows("manufacturer", mf_tables.ledger_movements), key=lambda m: m["id"])
    on_hand: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    lowest: dict[tuple[str, str], Decimal] = {}
    # the ledger's own view of each flush of an owner's order: (flush, consumed or given back) -> whose lines
    flush_lines: dict[tuple[str, str], Counter[tuple[str, str, str]]] = defaultdict(Counter)
    for m in movements:
        key = (m["item"], m["lot"])
        if m["owner"] is not None and owner_of.get(key) != m["owner"]:
            result.problem(f"lot {key} moved as {m['owner']}'s ({m['reason']}), consigned by {owner_of.get(key)}")
        if key in owner_of and m["owner"] != owner_of[key]:
            result.problem(f"{owner_of[key]}'s lot {key} moved as {m['owner'] or 'our own'} ({m['reason']})")
        if m["reason"] == "allocation":
            continue
        if key in owner_of:
            on_hand[key] += m["quantity"]
            lowest[key] = min(lowest.get(key, Decimal(0)), on_hand[key])
            order = by_id.get(m["production_order"] or "")
            if m["reason"] != "receipt" and (order is None or order.owner != owner_of[key]):
                result.problem(f"{owner_of[key]}'s lot {key} moved by {m['production_order']} "
                               f"({(order.owner or 'an ordinary order') if order else 'not an order of the mix'}): "
                               f"{m['reason']} "
                               f"{m['quantity']}")
        order = by_id.get(m["production_order"] or "")
        if order is not None and order.owner is not None and m["flush_id"] is not None \
                and m["reason"] in ("backflush", "reversal"):
            whose = owner_of.get(key, "own")
            way = _CONSUMED if m["reason"] == "backflush" else _RETURNED
            flush_lines[(m["flush_id"], way)][(whose, m["item"], m["lot"])] += abs(m["quantity"])

    rows = await dbs.rows("manufacturer", mf_tables.outbox, mf_tables.outbox.c.event_type.in_([_CONSUMED, _RETURNED]))
    reported: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    net_reported: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        report = json.loads(row["value"])
        order = by_id.get(report["order_id"])
        if order is None or order.owner is None or report["owner"] != order.owner:
            result.problem(f"{row['event_type']} for {report['order_id']} ({order and order.kind}) told to "
                           f"{report['owner']}, the order's owner {order and order.owner}")
        reported[(report["flush_id"], row["event_type"])].append(report)
        for line in report["consigned"]:
            sign = 1 if row["event_type"] == _CONSUMED else -1
            net_reported[(line["item"], line["lot"])] += sign * Decimal(line["quantity"])
    for (flush_id, way), reports in reported.items():
        if len(reports) > 1:
            result.duplicate(f"manufacturer {way.rsplit('.', 1)[-1]}", f"flush {flush_id}: told {len(reports)} "
                                                                       f"times", len(reports) - 1)
        report = reports[0]
        told = Counter({(report["owner"], line["item"], line["lot"]): Decimal(line["quantity"])
                        for line in report["consigned"]})
        told.update({("own", line["item"], line["lot"]): Decimal(line["quantity"]) for line in report["own"]})
        ledger = Counter({k: q for k, q in flush_lines.get((flush_id, way), Counter()).items() if q})
        if told != ledger:
            result.problem(f"{way.rsplit('.', 1)[-1]} of flush {flush_id} ({report['order_id']}) told "
                           f"{dict(told)}, the ledger moved {dict(ledger)}")
    for (flush_id, way) in flush_lines:
        if (flush_id, way) not in reported:
            result.problem(f"flush {flush_id} of an owner's order {way.rsplit('.', 1)[-1]} in the ledger, never "
                           f"told to the owner")
    expected = expected_flushes(catalogue, [o for o in orders if o.owner is not None])
    for flush_id, (order_id, _need) in expected.items():
        if len(reported.get((flush_id, _CONSUMED), ())) != 1:
            result.problem(f"flush {flush_id} of {order_id}: ConsignedComponentsConsumed told "
                           f"{len(reported.get((flush_id, _CONSUMED), ()))} times, expected once")

    per_owner: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 3)
    for key, quantity in consigned.items():
        used = net_reported.get(key, Decimal(0))
        if on_hand.get(key, Decimal(0)) != quantity - used or lowest.get(key, Decimal(0)) < 0:
            result.problem(f"{owner_of[key]}'s lot {key}: consigned {quantity} - consumed {used} != on hand "
                           f"{on_hand.get(key)} (lowest ever {lowest.get(key)})")
        figures = per_owner[owner_of[key]]
        figures[0] += quantity
        figures[1] += used
        figures[2] += on_hand.get(key, Decimal(0))
    result.figures["owner stock (consigned = consumed + on hand)"] = {
        owner: f"{format(a, 'f')} = {format(b, 'f')} + {format(h, 'f')}" for owner, (a, b, h) in per_owner.items()}
    parked = await dbs.rows("manufacturer", mf_tables.parked_flushes)
    late_owners = {lot.owner for lot in consignments if lot.late}
    short = [p for p in parked if any(f"of {owner}'s consigned stock" in p["reason"] for owner in late_owners)]
    if late_owners and not any(p["status"] == "posted" for p in short):
        # the driver sends the late lot only once a flush parked on the shortage: it must have posted since
        result.problem(f"no contract flush parked on its owner's shortage and released by the late consignment: "
                       f"{[(p['flush_id'], p['status']) for p in short]}")
    contract_parked = [p for p in parked if (by_id.get(p["order_id"]) or PlannedOrder("", "pre", "", 0, "")).contract]
    result.figures["contract flushes parked (on their owner's shortage; released)"] = (
        f"{len(contract_parked)} ({sum(1 for p in parked if 'consigned stock' in p['reason'])}; "
        f"{sum(1 for p in contract_parked if p['status'] == 'posted')})")
    result.figures["owner reports (consumed / returned)"] = (
        f"{sum(1 for _f, way in reported if way == _CONSUMED)} / {sum(1 for _f, way in reported if way == _RETURNED)}")


def seat_receipt(lot: str, quantity: int) -> md.ComponentsReceived:
    return md.ComponentsReceived(receipt_id=f"R-{lot}", item=SEAT, lot=lot, quantity=Decimal(quantity))


def order_placed(order: PlannedOrder) -> o.OrderPlaced:
    return o.OrderPlaced(order_id=order.order_id, order_holder=order.holder, flow=order.flow, item=order.item,
                         quantity=Decimal(order.quantity), ship_to="7 Quay Street, Harbourtown",
                         due_date=dt.date.today() + dt.timedelta(days=21), partial_deliveries=order.partial,
                         contract_manufacturing=order.contract, own_components_allowed=order.own_allowed)

