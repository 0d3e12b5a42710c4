"""A polled batch goes straight to `ServiceRuntime.consume`, not through FastStream's message pipeline.

FastStream's way from a polled batch to the handler (its parser building a message, context scopes, middlewares,
FastDepends resolving the argument) cost an eighth of a service's CPU at batches of one event, for nothing the
service uses. The subscriber's consume loop hands the records to the runtime itself (`consume_directly`); here
the distributor's real subscribers, on a real broker, apply an `OrderPlaced` without FastStream's
`process_message` running once, and a graceful stop still waits for the batch in hand.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from faststream._internal.endpoint.subscriber.usecase import SubscriberUsecase
from sqlalchemy import select
from support.broker import Broker

from backflush_distributor.adapters.tables import orders
from backflush_distributor.app import SERVICE as DISTRIBUTOR
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.topics import Topic
from backflush_shared.messaging.codec import encode
from backflush_shared.messaging.publish import EventPublisher, envelope_for, source_for
from backflush_shared.service import build_app
from backflush_shared.settings import ServiceSettings

pytestmark = [pytest.mark.kafka]


async def test_a_polled_batch_is_applied_without_faststreams_message_pipeline(
    kafka: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = ServiceSettings(service="distributor", database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
                               bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
                               health_port=0)
    app, runtime = build_app(DISTRIBUTOR, settings)
    pipeline_runs: list[Any] = []
    process_message = SubscriberUsecase.process_message

    async def counted(self: SubscriberUsecase, msg: Any) -> Any:  # type: ignore[type-arg]
        pipeline_runs.append(msg)
        return await process_message(self, msg)

    monkeypatch.setattr(SubscriberUsecase, "process_message", counted)
    await runtime.prepare()
    broker = app.broker
    assert broker is not None
    await broker.start()

    async def stored() -> list[str]:
        async with runtime.database.reading() as session:
            return list((await session.execute(select(orders.c.order_id))).scalars().all())

    try:
        event = o.OrderPlaced(order_id="DIRECT-1", order_holder="Direct Ltd", flow="pre", item="CHAIR-ERGO",
                              quantity=Decimal(1), ship_to="1 Direct Road", due_date=dt.date(2030, 1, 1))
        record = encode(event, envelope_for(event, source_for(event, otherwise="/backflush/tests")),
                        runtime.topics(Topic.ORDERS_INTAKE))
        async with EventPublisher(settings.bootstrap_servers, topic_prefix=settings.topic_prefix) as publisher:
            await publisher.send_records([record])
        deadline = time.monotonic() + 60
        while await stored() != ["DIRECT-1"]:
            assert time.monotonic() < deadline, "the order was never applied"
            await asyncio.sleep(0.1)
    finally:
        await broker.stop()
        await runtime.database.close()
    assert pipeline_runs == []


async def test_a_graceful_stop_waits_for_the_batch_in_hand(
    kafka: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = ServiceSettings(service="distributor", database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
                               bootstrap_servers=kafka.bootstrap_servers, topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
                               health_port=0)
    app, runtime = build_app(DISTRIBUTOR, settings)
    assert runtime.processor is not None
    started, finished = asyncio.Event(), asyncio.Event()
    process = runtime.processor.process

    async def slow(records: Any, **options: Any) -> Any:
        started.set()
        await asyncio.sleep(1.0)  # the stop comes while this batch is in hand
        result = await process(records, **options)
        finished.set()
        return result

    monkeypatch.setattr(runtime.processor, "process", slow)
    await runtime.prepare()
    broker = app.broker
    assert broker is not None
    await broker.start()
    try:
        event = o.OrderPlaced(order_id="DIRECT-2", order_holder="Direct Ltd", flow="pre", item="CHAIR-ERGO",
                              quantity=Decimal(1), ship_to="1 Direct Road", due_date=dt.date(2030, 1, 1))
        record = encode(event, envelope_for(event, source_for(event, otherwise="/backflush/tests")),
                        runtime.topics(Topic.ORDERS_INTAKE))
        async with EventPublisher(settings.bootstrap_servers, topic_prefix=settings.topic_prefix) as publisher:
            await publisher.send_records([record])
        await asyncio.wait_for(started.wait(), timeout=60)
    finally:
        await broker.stop()
    try:
        assert finished.is_set(), "the stop cancelled the batch in hand instead of waiting for it"
        async with runtime.database.reading() as session:
            assert (await session.execute(select(orders.c.order_id))).scalars().all() == ["DIRECT-2"]
    finally:
        await runtime.database.close()
