"""A batch reaches `ServiceRuntime.consume` without a hop to a worker thread.

FastDepends resolves a handler parameter taken from FastStream's context (`message: KafkaMessage`) with a sync
function that it runs on a worker thread: a thread hop, and an event-loop wake-up from that thread, per batch. At
batches of one event (orders trickling in) that cost the services more CPU than applying the event. The service's
subscriber takes the message from the context itself instead. FastStream's in-memory broker drives the real
subscriber here, on the distributor's real processor and a SQLite file.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from faststream.kafka import TestKafkaBroker
from sqlalchemy import select

from backflush_distributor.adapters.tables import orders
from backflush_distributor.app import SERVICE as DISTRIBUTOR
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.topics import Topic
from backflush_shared.messaging.codec import encode
from backflush_shared.messaging.publish import envelope_for, source_for
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import build_app
from backflush_shared.settings import ServiceSettings


async def test_a_batch_is_applied_without_a_worker_thread_hop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'distributor.db'}"
    await upgrade_to_head_async(url, DISTRIBUTOR.migrations)
    settings = ServiceSettings(service="distributor", database_url=url, bootstrap_servers="127.0.0.1:9")
    app, runtime = build_app(DISTRIBUTOR, settings)

    hops: list[Any] = []
    run_sync = anyio.to_thread.run_sync

    async def counting_run_sync(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting_run_sync)

    event = o.OrderPlaced(order_id="HOP-1", order_holder="Hop Ltd", flow="pre", item="CHAIR-ERGO",
                          quantity=Decimal(1), ship_to="1 Hop Road", due_date=dt.date(2030, 1, 1))
    record = encode(event, envelope_for(event, source_for(event, otherwise="/backflush/tests")),
                    runtime.topics(Topic.ORDERS_INTAKE))
    try:
        async with TestKafkaBroker(app.broker) as broker:
            await broker.publish(record.value, record.topic, key=record.key,
                                 headers={name: value.decode() for name, value in record.headers})
    finally:
        await runtime.database.close()

    async with runtime.database.reading() as session:
        stored = (await session.execute(select(orders.c.order_id))).scalars().all()
    assert stored == ["HOP-1"]  # the batch really went through the subscriber and the processor
    assert hops == [], f"worker-thread hops while applying one batch: {hops}"
