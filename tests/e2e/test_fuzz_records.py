"""Fuzz on the real broker: arbitrary records mixed with valid orders; nothing lost, nothing stuck, audit clean.

Hypothesis draws a few hundred records (contract events as they are, with mutated values or headers, and noise;
see support/fuzz.py) from a seed printed at the start; `BACKFLUSH_FUZZ_SEED=<seed>` replays the same records.
They are published between twelve valid orders on the three services running as processes. Then, once every
consumer group has caught up and every outbox is published:

- every record is accounted for by every service that consumes its topic: applied (its event id is in that
  service's inbox), ignored (an event type that service does not handle), or dead-lettered by it with a reason;
- every order the distributor holds is closed, rejected or cancelled, or waits for something an outside party can
  still bring (production or a completion from the shop floor, component stock, a quality inspection, a
  signature);
- `backflush audit` finds nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from backflush_shared.audit import audit
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.registry import model_for
from backflush_shared.contracts.topics import Topic, TopicNames
from backflush_shared.local_stack import LocalStack
from backflush_shared.messaging.codec import encode
from backflush_shared.messaging.publish import envelope_for, source_for
from support.crash import Databases, consumer_lag
from support.e2e_paths import SAMPLE_DATA
from support.flows import Flows
from support.fuzz import FuzzRecord, fuzz_record
from support.stack import eventually
from support.topics import read_to_end

from backflush_distributor.handlers import build_handlers as distributor_handlers
from backflush_warehouse.handlers import build_handlers as warehouse_handlers
from backflush_manufacturer.production import Production, handler_table
from backflush_manufacturer.settings import ManufacturerSettings

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

RECORDS_PER_DRAW = 40
DRAWS = 8
SERVICES = ("manufacturer", "distributor", "warehouse")

#: What an order may still wait for when everything is quiet: each can be ended by someone outside.
WAITS_THAT_CAN_END = (
    re.compile(r"^production$"),
    re.compile(r"^completion of the remaining "),
    re.compile(r"^component stock"),
    re.compile(r"^quality check"),
    re.compile(r"^signature"),
    re.compile(r"^finished-goods stock"),  # a stock order: served when a run report stocks its item
)


def say(line: str) -> None:
    print(f"[fuzz {time.strftime('%H:%M:%S')}] {line}", flush=True)


def draw_records(fuzz_seed: int) -> list[FuzzRecord]:
    """`DRAWS` x `RECORDS_PER_DRAW` records, the same ones for the same seed (hypothesis draws them)."""
    drawn: list[FuzzRecord] = []

    @seed(fuzz_seed)
    @settings(max_examples=DRAWS, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(fuzz_record(), min_size=RECORDS_PER_DRAW, max_size=RECORDS_PER_DRAW))
    def collect(records: list[FuzzRecord]) -> None:
        drawn.extend(records)

    collect()
    return drawn


def handled_types() -> dict[str, set[str]]:
    """The event types each service applies (the rest of its topics' events it ignores)."""
    production = Production(ManufacturerSettings(service="manufacturer"))
    return {
        "manufacturer": {model.event_type for model in handler_table(production)},
        "distributor": {model.event_type for model in distributor_handlers(None)},
        "warehouse": {model.event_type for model in warehouse_handlers(None)},
    }


def subscribed_topics(handled: dict[str, set[str]]) -> dict[str, set[str]]:
    from backflush_shared.contracts.registry import ALL_EVENTS

    return {service: {model.topic.value for model in ALL_EVENTS if model.event_type in types}
            for service, types in handled.items()}


def valid_orders(rng: random.Random) -> list[o.OrderPlaced]:
    due = dt.date.today() + dt.timedelta(days=10)
    return [o.OrderPlaced(order_id=f"VALID-{n}", order_holder="Acme Offices", flow="pre" if n < 8 else "post",
                          item="CHAIR-ERGO", quantity=Decimal(rng.randint(1, 3)), ship_to="1 Depot Road",
                          due_date=due)
            for n in range(12)]


async def publish_all(stack: LocalStack, records: list[FuzzRecord], valid: list[o.OrderPlaced],
                      rng: random.Random) -> list[tuple[FuzzRecord, str, int, int]]:
    """Send everything, valid orders spread among the fuzz; returns each fuzz record with where it landed."""
    topics = TopicNames(stack.topic_prefix)
    slots = sorted(rng.sample(range(len(records)), len(valid)))
    placed = iter(valid)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, enable_idempotence=True)
    await producer.start()
    landed = []
    try:
        for index, record in enumerate(records):
            if slots and index == slots[0]:
                slots.pop(0)
                order = next(placed)
                source = source_for(order, otherwise="/backflush/tests")
                encoded = encode(order, envelope_for(order, source), topics(order.topic))
                await producer.send_and_wait(encoded.topic, encoded.value, key=encoded.key, headers=encoded.headers)
            name = topics(Topic(record.topic))
            meta = await producer.send_and_wait(name, record.value, key=record.key, headers=list(record.headers))
            landed.append((record, name, meta.partition, meta.offset))
    finally:
        await producer.stop()
    return landed


async def wait_until_quiet(stack: LocalStack, dbs: Databases) -> None:
    """Every group caught up and every outbox published, for three seconds in a row."""
    quiet_since: float | None = None
    state: dict[str, Any] = {}

    async def quiet() -> bool:
        nonlocal quiet_since
        state["lag"] = await consumer_lag(stack.bootstrap_servers, stack.topic_prefix)
        state["unpublished"] = await dbs.unpublished()
        if any(state["lag"].values()) or any(state["unpublished"].values()):
            quiet_since = None
            return False
        quiet_since = quiet_since or time.monotonic()
        return time.monotonic() - quiet_since > 3.0

    try:
        await eventually(quiet, timeout=240, what="every consumer group caught up and every outbox published",
                         stack=stack)
    except AssertionError as error:
        raise AssertionError(f"never quiet: {state}") from error


async def dead_letter_origins(stack: LocalStack) -> dict[str, dict[tuple[str, int, int], str]]:
    """Per service: each dead-lettered record's origin (topic, partition, offset) and the reason given."""
    by_service: dict[str, dict[tuple[str, int, int], str]] = defaultdict(dict)
    topics = TopicNames(stack.topic_prefix)
    for topic in Topic:
        for letter in await read_to_end(stack.bootstrap_servers, topics.dead_letter(topic)):
            h = letter.headers
            origin = (h["dlq_original_topic"], int(h["dlq_original_partition"]), int(h["dlq_original_offset"]))
            by_service[h["dlq_failed_by"]][origin] = f"{h['dlq_error_type']}: {h['dlq_error_message']}"
    return by_service


def event_type_of(record: FuzzRecord) -> str | None:
    """The record's ce_type as a service would read it, when it names a known type unambiguously."""
    found = [value for name, value in record.headers if name == "ce_type"]
    if len(found) != 1:
        return None
    try:
        text = found[0].decode()
    except UnicodeDecodeError:
        return None
    return text if any(model_for(text, version) for version in range(1, 10)) else None


async def test_arbitrary_records_are_each_applied_or_dead_lettered_and_no_order_is_stuck(
        stack: LocalStack, tmp_path: Path) -> None:
    fuzz_seed = int(os.environ.get("BACKFLUSH_FUZZ_SEED") or random.SystemRandom().randrange(1, 1_000_000))
    say(f"fuzz seed {fuzz_seed} (replay with BACKFLUSH_FUZZ_SEED={fuzz_seed})")
    records = draw_records(fuzz_seed)
    assert len(records) >= RECORDS_PER_DRAW * 4, "hypothesis drew too few records"
    flows = Flows(stack)
    await flows.load_master_data(SAMPLE_DATA)
    rng = random.Random(fuzz_seed)
    valid = valid_orders(rng)
    landed = await publish_all(stack, records, valid, rng)
    say(f"sent {len(landed)} fuzzed records and {len(valid)} valid orders")

    dbs = Databases(stack)
    try:
        await wait_until_quiet(stack, dbs)
        handled = handled_types()
        subscribed = subscribed_topics(handled)
        inbox_ids = {service: await _inbox_ids(dbs, service) for service in SERVICES}
        letters = await dead_letter_origins(stack)

        unaccounted = []
        for record, topic, partition, offset in landed:
            event_id = _header(record, "ce_id")
            event_type = event_type_of(record)
            for service in SERVICES:
                if record.topic not in subscribed[service]:
                    continue
                if (topic, partition, offset) in letters[service]:
                    continue
                if event_type is not None and event_type not in handled[service]:
                    continue  # ignored: another service's event
                if event_id is not None and event_id in inbox_ids[service]:
                    continue
                unaccounted.append(f"{service} @{topic}:{partition}:{offset} {record.describe()}")
        assert not unaccounted, f"seed {fuzz_seed}: records neither applied nor dead-lettered:\n" + "\n".join(
            unaccounted[:20])

        orders = await dbs.orders()
        stuck = [f"{order_id}: {row['state']} waiting for {row['waiting_for']!r}"
                 for order_id, row in orders.items()
                 if row["state"] not in ("closed", "rejected", "cancelled")
                 and not any(wait.match(row["waiting_for"] or "") for wait in WAITS_THAT_CAN_END)]
        assert not stuck, f"seed {fuzz_seed}: orders waiting for what cannot come:\n" + "\n".join(stuck)
        for order in valid:
            assert order.order_id in orders, f"seed {fuzz_seed}: valid order {order.order_id} never recorded"

        findings = await audit(dbs.urls, bootstrap_servers=stack.bootstrap_servers)
        failed = [f"{f.check}: {f.detail}" for f in findings if not f.ok]
        assert findings and not failed, f"seed {fuzz_seed}: audit:\n" + "\n".join(failed)
        say(f"fuzz seed {fuzz_seed}: {len(landed)} records accounted for, {len(orders)} orders, "
            f"{sum(len(v) for v in letters.values())} dead letters, audit clean")
    finally:
        await dbs.close()


async def _inbox_ids(dbs: Databases, service: str) -> set[str]:
    from sqlalchemy import text

    async with dbs.db[service].reading() as session:
        return {row[0] for row in await session.execute(text("SELECT event_id FROM inbox"))}


def _header(record: FuzzRecord, name: str) -> str | None:
    found = [value for key, value in record.headers if key == name]
    if len(found) != 1:
        return None
    try:
        return str(uuid.UUID(found[0].decode()))
    except (UnicodeDecodeError, ValueError):
        return None
