"""CPU per event of the three services' batch paths, in-process, on a real SQLite file.

`python -m bench.handlers` builds each service's real `BatchProcessor` (as `ServiceRuntime.create` does, without a
broker), feeds it the records N orders of both flows put on the topics it reads -- in batches of 500, the stages
of many orders together, as `make bench` delivers them with thousands of orders at once -- and prints the CPU
each service spends per record it applies. No Kafka: what is measured is decode, inbox, handlers, history,
outbox and the commit, which is what issue 18's per-order budget is spent on besides the broker client.

`--before REF` runs the same feed on REF's sources too (a temporary worktree, `bench.run.before_tree`), in the
same invocation, so each before/after pair is measured under the same load of the machine. `--profile FILE`
writes a cProfile of the measured batches (ours) for `python -m pstats` or snakeviz.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

SERVICE_NAMES = ("manufacturer", "distributor", "warehouse")
#: The components of the bench's item: two flushed at release, two at completion (the post flow flushes twice).
PARTS = 4


def _events(order_id: str, flow: str, start: dt.datetime) -> list[Any]:
    """The events of one order, in the order they happen, on every topic (each service reads some of them)."""
    from backflush_shared.contracts import completions as c
    from backflush_shared.contracts import inventory_details as inv
    from backflush_shared.contracts import orders as o
    from backflush_shared.contracts.common import (
        ConsumedComponent, OrderProcessingInfo, QualityCertificate, RackPlacement,
    )

    from backflush_manufacturer.domain.identifiers import completion_lot, finished_lot

    # the manufacturer's names of the order's finished lot (its inventory check and shipment name it)
    item, one = "CHAIR-ERGO", Decimal(1)
    lot = finished_lot(order_id, 1) if flow == "pre" else completion_lot(order_id, "1")
    processing = OrderProcessingInfo(order_holder="Bench Holder", ship_to="1 Bench Road", due_date=dt.date(2030, 1, 1))
    certificate = QualityCertificate(certificate_id=f"QC-{order_id}", item=item, lot=lot, inspected_by="QA",
                                     inspected_at=start, plan="always-pass")
    components = [ConsumedComponent(item=f"PART-{n}", quantity=Decimal(2), unit="pcs", lots=[f"PL-{n}"])
                  for n in range(PARTS)]
    placed = o.OrderPlaced(order_id=order_id, order_holder="Bench Holder", flow=flow, item=item, quantity=one,
                           ship_to="1 Bench Road", due_date=dt.date(2030, 1, 1))
    forwarded = o.OrderForwarded(order_id=order_id, flow=flow, item=item, quantity=one, processing=processing)
    completed = c.ProductionCompleted(order_id=order_id, item=item, lot=lot, quantity=one, cumulative_quantity=one,
                                      order_quantity=one, certificate=certificate if flow == "pre" else None)
    if flow == "pre":
        return [
            placed, forwarded,
            c.ComponentsBackflushed(order_id=order_id, flush_point="pre", produced_quantity=one, components=components),
            c.QualityInspectionRecorded(order_id=order_id, item=item, passed=True, inspected_by="QA"),
            completed,
            inv.PreSaleInventoryDetailsForwarded(order_id=order_id, item=item, lot=lot, quantity=one,
                                                 certificate=certificate, processing=processing),
            inv.GoodsDirectedToRacks(order_id=order_id, item=item, lot=lot, quantity=one,
                                     certificate_id=certificate.certificate_id),
            inv.GoodsRacked(order_id=order_id, item=item, lot=lot,
                            placements=[RackPlacement(location="DC-BENCH", quantity=one)]),
            c.InventoryCheckReturned(order_id=order_id, item=item, lot=lot, quantity=one, locations=["DC-BENCH"]),
            c.GoodsAllocated(order_id=order_id, item=item, lot=lot, quantity=one),
            c.OrderClosed(order_id=order_id, closed_by="distributor"),
        ]
    return [
        placed, forwarded,
        c.ComponentsBackflushed(order_id=order_id, flush_point="pre", produced_quantity=one, components=components),
        c.CompletionReported(order_id=order_id, quantity=one),
        c.ComponentsBackflushed(order_id=order_id, flush_point="post", produced_quantity=one, components=components),
        completed,
        inv.GoodsTurnedOver(order_id=order_id, item=item, lot=lot, quantity=one, owner="manufacturer"),
        inv.ConsignmentStockReceived(order_id=order_id, item=item, lot=lot, quantity=one, owner="manufacturer",
                                     location="CS-BENCH"),
        o.FinalOrderPlaced(order_id=order_id, item=item, quantity=one, ship_to="1 Bench Road",
                           order_holder="Bench Holder"),
        c.GoodsShipped(order_id=order_id, item=item, quantity=one, ship_to="1 Bench Road", lots=[lot]),
        c.DeliverySigned(order_id=order_id, signed_by="Bench Holder", signed_at=start),
        c.GoodsSignedFor(order_id=order_id, item=item, quantity=one, signed_by="Bench Holder", signed_at=start,
                         previous_owner="manufacturer", new_owner="Bench Holder"),
        c.OrderClosed(order_id=order_id, closed_by="distributor"),
    ]


class _Record:
    __slots__ = ("topic", "partition", "offset", "key", "value", "headers")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, bytes]]) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.key, self.value, self.headers = key, value, headers


def master_data(orders: int) -> list[Any]:
    """What the manufacturer must know before the orders: the items, the BOM, the inspection plan, and receipts of
    every component (ten lots each, FIFO takes them in turn) covering every order with some to spare."""
    from backflush_shared.contracts import master_data as md

    events: list[Any] = [md.ItemDefined(item="CHAIR-ERGO", unit="pcs", decimals=0)]
    events += [md.ItemDefined(item=f"PART-{n}", unit="pcs", decimals=0) for n in range(PARTS)]
    events.append(md.BomDefined(parent="CHAIR-ERGO", lines=[
        md.BomLineDefinition(component=f"PART-{n}", quantity_per=Decimal(2), flush="pre" if n % 2 else "post")
        for n in range(PARTS)]))
    events.append(md.InspectionPlanDefined(item="CHAIR-ERGO", rule="pass"))
    per_lot = Decimal(2 * orders // 10 + 10)
    events += [md.ComponentsReceived(receipt_id=f"R-{n}-{k}", item=f"PART-{n}", lot=f"PL-{n}-{k}", quantity=per_lot)
               for k in range(10) for n in range(PARTS)]
    return events


def _encoded(events: list[Any]) -> list[_Record]:
    from backflush_shared.contracts.topics import TopicNames
    from backflush_shared.messaging.codec import encode
    from backflush_shared.messaging.publish import envelope_for, source_for

    topics = TopicNames()
    offsets: dict[str, int] = {}
    records: list[_Record] = []
    for event in events:
        topic = topics(event.topic)
        encoded = encode(event, envelope_for(event, source_for(event, otherwise="/backflush/bench")), topic)
        offset = offsets[topic] = offsets.get(topic, -1) + 1
        records.append(_Record(topic, 0, offset, encoded.key, encoded.value, list(encoded.headers)))
    return records


def feed(orders: int) -> list[_Record]:
    """Every record of `orders` orders (half of each flow), stage by stage: stage k of every order, then k + 1."""
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    lives = [_events(f"B-{n:06d}", "pre" if n % 2 else "post", start) for n in range(orders)]
    return _encoded([life[stage] for stage in range(max(len(life) for life in lives)) for life in lives
                     if stage < len(life)])


async def measure(service: str, orders: int, batch: int, profile: str | None) -> dict[str, Any]:
    from backflush_shared.persistence.migrations import upgrade_to_head_async
    from backflush_shared.service import ServiceRuntime

    setup: list[_Record] = []
    if service == "manufacturer":
        from backflush_manufacturer.app import SERVICE as definition
        from backflush_manufacturer.settings import ManufacturerSettings as settings_class
        extra: dict[str, Any] = {}
        setup = _encoded(master_data(orders))  # applied before the measured batches, not measured
    elif service == "distributor":
        from backflush_distributor.app import SERVICE as definition
        from backflush_shared.settings import ServiceSettings as settings_class
        extra = {}
    else:
        from backflush_warehouse.app import SERVICE as definition
        from backflush_warehouse.settings import WarehouseSettings as settings_class
        extra = {"racks": "DC-BENCH=1000000000", "consignment_locations": "CS-BENCH=1000000000"}
    with tempfile.TemporaryDirectory(prefix=f"bench-handlers-{service}-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / f'{service}.db'}"
        await upgrade_to_head_async(url, definition.migrations)
        runtime = ServiceRuntime.create(definition, settings_class(service=service, database_url=url,
                                                                   bootstrap_servers="127.0.0.1:9", **extra))
        processor = runtime.processor
        assert processor is not None
        processor.hand_over = lambda _rows: None  # what the relay would publish: not measured here
        if definition.on_prepare is not None:
            await definition.on_prepare(runtime)
        try:  # what `serve` does once the service is built; a --before tree may predate it
            from backflush_shared.gc_tuning import settle_after_start
        except ImportError:
            pass
        else:
            settle_after_start()
        read = {runtime.topics(model.topic) for model in processor.handlers}  # the topics it subscribes to
        records = [r for r in feed(orders) if r.topic in read]
        if setup:
            for start in range(0, len(setup), batch):
                await processor.process(setup[start:start + batch])
        profiler = cProfile.Profile() if profile else None
        cpu = 0.0
        applied = ignored = refused = 0
        states: dict[str, int] = {}
        try:
            for start in range(0, len(records), batch):
                chunk = records[start:start + batch]
                if profiler is not None:
                    profiler.enable()
                before = time.process_time()
                result = await processor.process(chunk)
                cpu += time.process_time() - before
                if profiler is not None:
                    profiler.disable()
                applied, ignored, refused = (applied + result.applied, ignored + result.ignored,
                                             refused + result.refused)
            if service == "manufacturer":  # where the orders ended: the feed must take each to its end
                from sqlalchemy import text

                async with runtime.database.reading() as session:
                    states = dict((await session.execute(text(
                        "SELECT status, COUNT(*) FROM production_orders GROUP BY status ORDER BY status"))).all())
        finally:
            await runtime.database.close()
        if profiler is not None and profile:
            profiler.dump_stats(f"{profile}.{service}")
    return {"service": service, "records": len(records), "applied": applied, "ignored": ignored,
            "refused": refused, "cpu_s": cpu, "us_per_record": cpu / len(records) * 1e6,
            "us_per_applied": cpu / max(applied, 1) * 1e6, "ms_per_order": cpu / orders * 1e3, "states": states}


def _run_here(args: argparse.Namespace) -> list[dict[str, Any]]:
    from backflush_shared.logging import configure_logging

    figures = []
    for name in args.services:
        # the services' own logging (JSON lines at INFO, as deployed), written where nobody reads it
        stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115 - closed below
        try:
            configure_logging(args.log_level, service=name)
            figures.append(asyncio.run(measure(name, args.orders, args.batch, args.profile)))
        finally:
            sys.stderr.close()
            sys.stderr = stderr
    return figures


def _run_tree(pythonpath: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """This script, on another tree's sources: one subprocess, its figures as JSON on stdout."""
    here = Path(__file__).resolve()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([pythonpath, str(here.parents[1])])}
    command = [sys.executable, "-m", "bench.handlers", "--json", "--orders", str(args.orders), "--batch",
               str(args.batch), "--services", ",".join(args.services), "--log-level", args.log_level]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def _line(label: str, figures: dict[str, Any]) -> str:
    return (f"{label:<8} {figures['service']:<12} {figures['records']:>7} records {figures['applied']:>7} applied "
            f"{figures['ignored']:>6} ignored {figures['refused']:>4} refused  {figures['us_per_record']:8.1f} µs/record "
            f"{figures['us_per_applied']:8.1f} µs/applied  {figures['ms_per_order']:6.3f} ms/order"
            + (f"  orders: {figures['states']}" if figures.get("states") else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.handlers", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--orders", type=int, default=3000, help="orders, half of each flow")
    parser.add_argument("--batch", type=int, default=500, help="records per batch")
    parser.add_argument("--services", default=",".join(SERVICE_NAMES), help="which services, comma-separated")
    parser.add_argument("--before", metavar="REF", help="also measure REF's sources, in the same invocation")
    parser.add_argument("--rounds", type=int, default=1, help="measure (before and after, alternating) this often")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile per service to FILE.<service>")
    parser.add_argument("--log-level", default="INFO", help="the services' log level (INFO: as deployed)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.services = [name for name in args.services.split(",") if name]
    if args.json:
        print(json.dumps(_run_here(args)))
        return 0
    runs: list[tuple[str, Callable[[], list[dict[str, Any]]]]] = [("ours", lambda: _run_here(args))]
    if args.before:
        from bench.run import before_tree

        with before_tree(args.before) as (commit, pythonpath):
            for _ in range(args.rounds):
                for figures in _run_tree(pythonpath, args):
                    print(_line(f"@{commit}"[:8], figures), flush=True)
                for figures in _run_here(args):
                    print(_line("ours", figures), flush=True)
        return 0
    for _ in range(args.rounds):
        for _label, run in runs:
            for figures in run():
                print(_line("ours", figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
