"""An idle service's consumers wake about twice a second, not fifty times (`BACKFLUSH_POLL_TIMEOUT_MS`, 500 ms).

FastStream's batch loop polled for the timeout (20 ms) and slept as long again after every empty poll: each
consumer (one per topic, several per service) woke the event loop twice per 20 ms with nothing to do, which was
a good part of the cores an idle-ish service used at ten orders a second. A consumer now waits in one poll that
returns when records arrive (tests/e2e/test_idle_consumer_latency.py shows they are not delayed).

The distributor's real subscribers on a real broker, with the defaults; the polls are counted while nothing arrives.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from support.broker import Broker

from backflush_distributor.app import SERVICE as DISTRIBUTOR
from backflush_shared.service import build_app
from backflush_shared.settings import ServiceSettings

pytestmark = [pytest.mark.kafka]

IDLE_SECONDS = 3.0


async def test_an_idle_consumer_polls_about_twice_a_second_with_the_default_settings(
    kafka: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = ServiceSettings(service="distributor", database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
                               bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
                               health_port=0)
    app, runtime = build_app(DISTRIBUTOR, settings)
    polls: list[float] = []
    getmany = AIOKafkaConsumer.getmany

    async def counted(self: AIOKafkaConsumer, *partitions: Any, **options: Any) -> Any:
        polls.append(time.monotonic())
        return await getmany(self, *partitions, **options)

    monkeypatch.setattr(AIOKafkaConsumer, "getmany", counted)
    await runtime.prepare()  # schema and topics
    broker = app.broker
    assert broker is not None
    await broker.start()
    try:
        consumers = [subscriber.consumer for subscriber in broker.subscribers]
        deadline = time.monotonic() + 60
        while not all(c is not None and c.assignment() for c in consumers):  # groups formed, partitions assigned
            assert time.monotonic() < deadline, "the distributor's consumers got no partitions"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # past the first polls of a new assignment
        started = time.monotonic()
        await asyncio.sleep(IDLE_SECONDS)
        idle_polls = [at for at in polls if at >= started]
    finally:
        await broker.stop()
        await runtime.database.close()

    per_consumer_per_second = len(idle_polls) / len(consumers) / IDLE_SECONDS
    assert per_consumer_per_second <= 3, (
        f"{len(idle_polls)} polls by {len(consumers)} idle consumers in {IDLE_SECONDS} s")
