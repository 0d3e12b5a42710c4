"""The partition-aware retry of `ServiceRuntime.consume`, on the distributor's real processor and a SQLite file.

A record whose handler fails for an unexpected (transient) reason holds back only its own partition: that
partition is rewound to the record and paused for an exponentially growing delay, the other partitions' records
are applied and their offsets committed (by the offset timer, never past the rewound record), the record is applied exactly once when it finally succeeds, and after
5 attempts it is dead-lettered with `dlq_attempts=5` so that its partition moves on.

The consumer and the batch message are fakes that record what the runtime asks of them; everything else (the
codec, the inbox, the savepoints, the handlers, the outbox) is the distributor's own code on a real database.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from backflush_shared import service as service_module
from backflush_shared.contracts import orders as o
from backflush_shared.messaging.codec import encode
from backflush_shared.unit_of_work import UnitOfWork
from backflush_shared.messaging.publish import envelope_for, source_for
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import CONFLICT_RETRIES, MAX_ATTEMPTS, ServiceRuntime
from backflush_shared.settings import ServiceSettings

from backflush_distributor.adapters.tables import inbox, orders, outbox
from backflush_distributor.app import SERVICE as DISTRIBUTOR

TOPIC = "orders.intake"  # where OrderPlaced arrives
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


@dataclass
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(eq=False)  # hashable by identity, like the real consumer (positions are kept per consumer)
class FakeConsumer:
    """Records what the runtime asks of the Kafka consumer."""

    calls: list[tuple[str, TopicPartition, int | None]] = field(default_factory=list)
    committed: dict[TopicPartition, int] = field(default_factory=dict)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.calls.append(("seek", partition, offset))

    def pause(self, *partitions: TopicPartition) -> None:
        self.calls.extend(("pause", p, None) for p in partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.calls.extend(("resume", p, None) for p in partitions)

    def assignment(self) -> set[TopicPartition]:
        return {P0, P1}

    def take(self) -> list[tuple[str, TopicPartition, int | None]]:
        taken, self.calls = self.calls, []
        return taken


@dataclass
class FakeMessage:
    consumer: FakeConsumer
    acks: int = 0

    async def ack(self) -> None:
        self.acks += 1


def placed(order_id: str, partition: int, offset: int) -> FakeRecord:
    event = o.OrderPlaced(order_id=order_id, order_holder="Retry Ltd", flow="pre", item="CHAIR-ERGO",
                          quantity=Decimal(1), ship_to="1 Retry Road", due_date=dt.date(2030, 1, 1))
    source = source_for(event, otherwise="/backflush/tests")  # a service topic's events come from its writer
    encoded = encode(event, envelope_for(event, source), TOPIC)
    return FakeRecord(TOPIC, partition, offset, encoded.key, encoded.value, encoded.headers)


@dataclass
class Setup:
    runtime: ServiceRuntime
    consumer: FakeConsumer
    delays: list[float]
    failures_left: dict[str, int]
    calls: dict[str, int]
    deadlocks_left: dict[str, int]

    async def consume(self, *records: FakeRecord) -> FakeMessage:
        message = FakeMessage(self.consumer)
        await self.runtime.consume(list(records), message)  # type: ignore[arg-type]
        assert message.acks == 0  # no commit per batch: the offset timer commits what the batches noted
        assert self.runtime.offsets is not None
        await self.runtime.offsets.commit(self.consumer)  # the timer's tick
        return message

    async def rows(self, table: Any) -> list[dict[str, Any]]:
        async with self.runtime.database.reading() as session:
            return [dict(r) for r in (await session.execute(select(table))).mappings().all()]

    async def order_ids(self) -> list[str]:
        return sorted(r["order_id"] for r in await self.rows(orders))

    async def forwarded(self) -> list[str]:
        return sorted(r["correlation_id"] for r in await self.rows(outbox)
                      if r["event_type"] == o.OrderForwarded.event_type)


class Deadlock(Exception):
    """What asyncpg raises when PostgreSQL broke a deadlock by aborting this transaction."""

    sqlstate = "40P01"


@pytest.fixture
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'distributor.db'}"
    await upgrade_to_head_async(url, DISTRIBUTOR.migrations)
    settings = ServiceSettings(service="distributor", database_url=url, bootstrap_servers="127.0.0.1:9")
    runtime = ServiceRuntime.create(DISTRIBUTOR, settings)
    assert runtime.processor is not None

    failures_left: dict[str, int] = {}
    calls: dict[str, int] = {}
    deadlocks_left: dict[str, int] = {}
    apply_order = runtime.processor.handlers[o.OrderPlaced]

    async def flaky(uow: UnitOfWork, event: o.OrderPlaced) -> None:
        """The distributor's own handler, behind a database that fails for some orders a number of times."""
        order_id = event.order_id
        calls[order_id] = calls.get(order_id, 0) + 1
        if failures_left.get(order_id, 0) > 0:
            failures_left[order_id] -= 1
            raise OperationalError("INSERT INTO orders ...", {}, Exception("database is locked"))
        if deadlocks_left.get(order_id, 0) > 0:
            deadlocks_left[order_id] -= 1
            raise OperationalError("UPDATE orders ...", {}, Deadlock("deadlock detected"))
        await apply_order(uow, event)

    runtime.processor.handlers[o.OrderPlaced] = flaky

    # the pause of a partition is a timer on the running loop: record its delay, keep it real
    delays: list[float] = []

    class Loop:
        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            self.loop = loop

        def call_later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
            delays.append(delay)
            return self.loop.call_later(delay, callback, *args)

    monkeypatch.setattr(service_module, "asyncio",
                        SimpleNamespace(get_running_loop=lambda: Loop(asyncio.get_running_loop()),
                                        sleep=asyncio.sleep))
    try:
        yield Setup(runtime, FakeConsumer(), delays, failures_left, calls, deadlocks_left)
    finally:
        await runtime.database.close()


async def test_a_failing_record_holds_back_only_its_partition_and_is_applied_once_when_it_succeeds(
    setup: Setup,
) -> None:
    a, b = placed("A", 0, 10), placed("B", 0, 11)
    c, d = placed("C", 1, 5), placed("D", 1, 6)
    setup.failures_left["A"] = 5  # each round fails twice: with its batch, then alone

    await setup.consume(a, b, c, d)
    # the batch failed as a whole; record by record, A failed and its partition was rewound to it and paused,
    # B waits behind it (not tried: the rest of the partition is read again), C and D went through
    assert setup.consumer.take() == [("seek", P0, 10), ("pause", P0, None)]
    assert setup.consumer.committed == {P0: 10, P1: 7}  # at what was rewound, past what was applied
    assert await setup.order_ids() == ["C", "D"]
    assert await setup.forwarded() == ["C", "D"]
    assert setup.calls == {"A": 2, "C": 1, "D": 1}
    await asyncio.sleep(0.45)
    assert setup.consumer.take() == [("resume", P0, None)]  # after the first delay the partition reads again

    await setup.consume(a, b)  # partition 0 read again from A: A fails again, rewound and paused longer
    assert setup.consumer.take() == [("seek", P0, 10), ("pause", P0, None)]
    assert await setup.order_ids() == ["C", "D"]
    assert setup.consumer.committed == {P0: 10, P1: 7}
    await setup.consume(a, b)  # the database answers again: A and B are applied, in order
    assert setup.consumer.take() == []
    assert setup.consumer.committed == {P0: 12, P1: 7}
    assert await setup.order_ids() == ["A", "B", "C", "D"]
    assert setup.delays == [0.4, 0.8]  # exponential backoff per attempt
    assert setup.calls == {"A": 6, "B": 1, "C": 1, "D": 1}

    # applied exactly once: one inbox row, one OrderForwarded; a redelivery of the whole batch changes nothing
    await setup.consume(a, b, c, d)
    assert await setup.forwarded() == ["A", "B", "C", "D"]
    assert sorted(r["outcome"] for r in await setup.rows(inbox)) == ["applied"] * 4
    assert not [r for r in await setup.rows(outbox) if r["topic"].endswith(".dlq")]
    assert setup.runtime._failures == {}


async def test_a_record_still_failing_after_five_attempts_is_dead_lettered_and_its_partition_moves_on(
    setup: Setup,
) -> None:
    a, b = placed("A", 0, 10), placed("B", 0, 11)
    c = placed("C", 1, 5)
    setup.failures_left["A"] = 1_000

    await setup.consume(a, b, c)
    for _attempt in range(2, MAX_ATTEMPTS):
        assert setup.consumer.take() == [("seek", P0, 10), ("pause", P0, None)]
        await setup.consume(a, b)
    assert setup.consumer.take() == [("seek", P0, 10), ("pause", P0, None)]
    assert await setup.order_ids() == ["C"]

    await setup.consume(a, b)  # the fifth attempt fails too: A is set aside and B, behind it, is applied
    assert setup.consumer.take() == []
    assert await setup.order_ids() == ["B", "C"]
    assert setup.delays == [0.4, 0.8, 1.6, 3.2]

    [letter] = [r for r in await setup.rows(outbox) if r["topic"] == f"{TOPIC}.dlq"]
    headers = {name: base64.b64decode(value).decode() for name, value in json.loads(letter["headers"])}
    assert letter["event_id"] == f"dlq:distributor:{TOPIC}:0:10"
    assert letter["record_key"] == b"A" and letter["value"] == a.value
    assert headers["dlq_attempts"] == str(MAX_ATTEMPTS) == "5"
    assert headers["dlq_error_type"] == "OperationalError"
    assert "database is locked" in headers["dlq_error_message"]
    assert (headers["dlq_original_topic"], headers["dlq_original_partition"], headers["dlq_original_offset"]) == (
        TOPIC, "0", "10")
    assert headers["dlq_failed_by"] == "distributor"
    assert headers["ce_id"] == {k: v.decode() for k, v in a.headers}["ce_id"]  # the record's own headers
    # A left no trace but its dead letter: no order, no inbox row, no event; a redelivery finds the letter written
    assert "A" not in [r["correlation_id"] for r in await setup.rows(inbox)]
    await setup.consume(a, b)
    assert setup.consumer.take() == [("seek", P0, 10), ("pause", P0, None)]  # a redelivered A fails afresh
    assert len([r for r in await setup.rows(outbox) if r["topic"] == f"{TOPIC}.dlq"]) == 1


async def test_a_refused_event_is_applied_again_only_when_replayed_from_its_dead_letter(setup: Setup) -> None:
    """A refusal is final for ordinary redeliveries (the inbox keeps the event as refused); a record carrying
    `dlq_replay_of` (put back by `backflush dlq replay`) is applied again, once."""
    event = o.OrderCancellationRequested(order_id="Z", reason="too early", requested_by="tests")
    source = source_for(event, otherwise="/backflush/tests")  # a service topic's events come from its writer
    encoded = encode(event, envelope_for(event, source), TOPIC)
    cancel = FakeRecord(TOPIC, 2, 0, encoded.key, encoded.value, encoded.headers)

    async def outcome() -> str:
        [row] = [r for r in await setup.rows(inbox) if r["correlation_id"] == "Z" and r["event_type"] == event.event_type]
        return str(row["outcome"])

    await setup.consume(cancel)  # before its order: refused, dead-lettered
    assert await outcome() == "refused"
    await setup.consume(placed("Z", 2, 1))
    await setup.consume(cancel)  # an ordinary redelivery: still refused, nothing cancelled, no second dead letter
    assert await outcome() == "refused"
    [order] = [r for r in await setup.rows(orders) if r["order_id"] == "Z"]
    assert order["state"] != "cancelled"

    replayed = FakeRecord(TOPIC, 2, 7, encoded.key, encoded.value,
                          encoded.headers + [("dlq_replay_of", b"dlq:distributor:orders:2:0")])
    await setup.consume(replayed)
    assert await outcome() == "applied"
    [order] = [r for r in await setup.rows(orders) if r["order_id"] == "Z"]
    assert order["state"] == "cancelled"
    await setup.consume(replayed)  # replayed twice: a duplicate now
    cancelled = [r for r in await setup.rows(outbox) if r["event_type"] == o.OrderCancelled.event_type]
    assert len(cancelled) == 1
    letters = [r["event_id"] for r in await setup.rows(outbox) if r["topic"] == f"{TOPIC}.dlq"]
    assert letters == [f"dlq:distributor:{TOPIC}:2:0"]
    assert setup.consumer.take() == []


async def test_a_batch_that_lost_a_deadlock_is_run_again_whole_and_applied_without_partition_pauses(
    setup: Setup,
) -> None:
    a, b, c = placed("A", 0, 10), placed("B", 0, 11), placed("C", 1, 5)
    setup.deadlocks_left["B"] = 3  # another instance's transaction won three times in a row

    await setup.consume(a, b, c)

    assert setup.consumer.take() == []  # no record went one by one: no rewind, no pause
    assert await setup.order_ids() == ["A", "B", "C"]
    assert setup.calls == {"A": 4, "B": 4, "C": 1}  # the whole batch ran four times; C came after B
    assert not [r for r in await setup.rows(outbox) if r["topic"].endswith(".dlq")]


async def test_a_record_that_keeps_losing_races_one_by_one_is_retried_without_counting_attempts_and_applied(
    setup: Setup, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lost races (deadlocks) say nothing about the record: once the batch's conflict retries ran out, the record
    alone is retried on conflicts too, and a round it still loses pauses its partition without counting toward
    MAX_ATTEMPTS, so a valid event is never dead-lettered for losing races."""
    monkeypatch.setattr(service_module.random, "uniform", lambda low, high: 0.0)  # no jitter sleeps in the test
    a, b = placed("A", 0, 10), placed("B", 0, 11)
    rounds = MAX_ATTEMPTS + 1
    # each round: the batch runs 1 + CONFLICT_RETRIES times, then A alone as often; all lose, for `rounds` rounds
    setup.deadlocks_left["A"] = 2 * (CONFLICT_RETRIES + 1) * rounds

    await setup.consume(a, b)
    for _round in range(rounds):
        assert setup.consumer.take() == [("seek", P0, 10), ("pause", P0, None)]
        await setup.consume(a, b)

    assert setup.consumer.take() == []
    assert await setup.order_ids() == ["A", "B"]
    assert not [r for r in await setup.rows(outbox) if r["topic"].endswith(".dlq")]
