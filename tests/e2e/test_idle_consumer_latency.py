"""An idle consumer takes a record the moment it arrives, however long its poll waits (`BACKFLUSH_POLL_TIMEOUT_MS`).

The poll timeout sets how often an idle service wakes (CPU at low load), never how long a record waits: FastStream's
own batch loop slept as long as the timeout after every empty poll, and a record arriving during that sleep waited
it out. Here the timeout is 1 s and records arrive 1.2 s apart, each just after an empty poll ended (where that
sleep was): each is applied within 0.4 s, not after the rest of the sleep.

On a real broker, with the distributor applying `OrderPlaced`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from backflush_shared.contracts import orders as o
from backflush_shared.messaging.publish import EventPublisher
from support.broker import Broker
from support.records import record_of
from support.stack import eventually, make_stack, read_db

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

POLL_TIMEOUT_MS = 1000
GAP_SECONDS = 1.2
#: a hop on a busy test machine takes tens of milliseconds; a record that waited out the sleep, about 0.8 s
PROMPT_SECONDS = 0.4


def placed(order_id: str) -> o.OrderPlaced:
    return o.OrderPlaced(order_id=order_id, order_holder="Idle Ltd", flow="pre", item="CHAIR-ERGO",
                         quantity=Decimal(1), ship_to="1 Idle Road", due_date=dt.date(2030, 1, 1))


async def test_a_record_reaching_an_idle_consumer_is_applied_at_once_not_after_its_poll_timeout(
    kafka: Broker, tmp_path: Path,
) -> None:
    stack = make_stack(kafka.bootstrap_servers, tmp_path, services=("distributor",),
                       extra_env={"distributor": {"BACKFLUSH_POLL_TIMEOUT_MS": str(POLL_TIMEOUT_MS)}})
    stack.start()

    async def applied_at() -> dict[tuple[int, int], dt.datetime]:
        """When the distributor's transaction took each record of `orders.intake` (its accounting row)."""
        async def read(session: object) -> dict[tuple[int, int], dt.datetime]:
            rows = (await session.execute(text(  # type: ignore[attr-defined]
                "SELECT partition, first_offset, last_offset, recorded_at FROM consumed_ranges "
                "WHERE topic LIKE '%orders.intake'"))).all()
            return {(partition, offset): dt.datetime.fromisoformat(str(at)).replace(tzinfo=dt.UTC)
                    for partition, first, last, at in rows for offset in range(first, last + 1)}
        return await read_db(stack.database_url("distributor"), read)

    try:
        async with EventPublisher(stack.bootstrap_servers, topic_prefix=stack.topic_prefix) as publisher:
            # the first record waits for the consumer group to form; the ones measured find the consumer idle
            await publisher.send_records([record_of(stack, placed("IDLE-0"))])
            await eventually(applied_at, what="the first order applied", stack=stack)
            sent_at: list[dt.datetime] = []
            for number in range(1, 6):
                await asyncio.sleep(GAP_SECONDS)  # the poll that began at the last record ended empty 0.2 s ago
                sent_at.append(dt.datetime.now(dt.UTC))
                await publisher.send_records([record_of(stack, placed(f"IDLE-{number}"))])
            started = time.monotonic()
            while len(await applied_at()) < 6 and time.monotonic() - started < 30:
                await asyncio.sleep(0.2)
        taken = await applied_at()
        assert len(taken) == 6, taken
        # sent 1.2 s apart: in time order, the applied records pair with their sends (the first is the warm-up)
        waits = sorted(taken.values())[1:]
        delays = [(applied - sent).total_seconds() for applied, sent in zip(waits, sent_at, strict=True)]
        assert max(delays) < PROMPT_SECONDS, f"seconds from send to applied: {[round(d, 3) for d in delays]}"
    finally:
        stack.stop()
