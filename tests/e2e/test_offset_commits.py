"""Kafka offsets are committed on a timer, after the database transaction, never past what the database holds.

- A batch's offsets wait for the next timed commit (`BACKFLUSH_OFFSET_COMMIT_INTERVAL_SECONDS`), not a round
  trip each: a service killed after its transaction but before that commit reads the batch again, and the inbox
  makes the redelivery change nothing; after the restart the offsets are committed within the interval.
- A batch holding only other services' events opens no transaction: its accounting waits for the next one, and
  its offset waits for its accounting, so `backflush audit` finds every committed offset accounted for (that it
  opens no transaction is shown in tests/unit/shared/test_batch_fast_path.py).
- A graceful stop (SIGTERM) commits what is applied before the consumers leave.

On a real broker, with the distributor (which applies an `OrderPlaced`) and the warehouse (which reads the same
topic, `orders.intake`, and ignores it).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from backflush_shared.audit import offsets_accounted
from backflush_shared.contracts import orders as o
from backflush_shared.local_stack import LocalStack
from support.broker import Broker
from support.records import log_entries, record_of, send
from support.stack import eventually, make_stack, read_db

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

NEVER = "600"  # seconds: no timed commit happens while the test looks
SOON = "0.5"


def a_stack(kafka: Broker, tmp_path: Path) -> LocalStack:
    interval = {"BACKFLUSH_OFFSET_COMMIT_INTERVAL_SECONDS": NEVER}
    return make_stack(kafka.bootstrap_servers, tmp_path, services=("distributor", "warehouse"),
                      extra_env={"distributor": interval, "warehouse": interval})


def placed(order_id: str) -> o.OrderPlaced:
    return o.OrderPlaced(order_id=order_id, order_holder="Offsets Ltd", flow="pre", item="CHAIR-ERGO",
                         quantity=Decimal(1), ship_to="1 Offset Road", due_date=dt.date(2030, 1, 1))


async def committed(stack: LocalStack, service: str) -> int:
    """How many records of `orders.intake` the service's group committed past (the topic holds one record)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{stack.topic_prefix}{service}.orders.intake")
    finally:
        await admin.close()
    return sum(max(meta.offset, 0) for meta in offsets.values())


async def accounted(stack: LocalStack, service: str) -> int:
    """How many records of `orders.intake` the service's `consumed_ranges` account for."""
    async def count(session: object) -> int:
        from sqlalchemy import text
        rows = (await session.execute(text(  # type: ignore[attr-defined]
            "SELECT first_offset, last_offset FROM consumed_ranges WHERE topic LIKE '%orders.intake'"))).all()
        return len({offset for first, last in rows for offset in range(first, last + 1)})
    return await read_db(stack.database_url(service), count)


async def audit_is_clean(stack: LocalStack, service: str) -> None:
    async def check(session: object) -> list[object]:
        return await offsets_accounted(session, service, stack.bootstrap_servers)  # type: ignore[arg-type]
    [finding] = await read_db(stack.database_url(service), check)
    assert finding.ok, finding.detail  # type: ignore[attr-defined]


async def test_a_service_killed_before_its_timed_offset_commit_reads_the_batch_again_and_the_inbox_absorbs_it(
    kafka: Broker, tmp_path: Path,
) -> None:
    stack = a_stack(kafka, tmp_path)
    stack.start()
    try:
        record = record_of(stack, placed("OFFSETS-1"))
        event_id = dict(record.headers)["ce_id"].decode()
        await send(stack, record)
        await eventually(lambda: accounted(stack, "distributor"), what="the distributor's transaction", stack=stack)

        # applied and accounted in the database, not yet committed to Kafka: the timer has not come round
        assert await committed(stack, "distributor") == 0
        # the warehouse ignored it (its range went with the transaction of the event the distributor sent on)
        assert await committed(stack, "warehouse") == 0

        for name in ("distributor", "warehouse"):
            stack.kill(name)
            stack.processes[name].env["BACKFLUSH_OFFSET_COMMIT_INTERVAL_SECONDS"] = SOON
            stack.restart(name)

        async def skipped() -> bool:
            return any(entry.get("event") == "duplicate event skipped" and entry.get("event_id") == event_id
                       for entry in log_entries(stack, "distributor"))
        # (the killed consumers' group membership must time out first: up to aiokafka's 10 s session timeout)
        await eventually(skipped, timeout=60, what="the redelivered event skipped by the inbox", stack=stack)
        for name in ("distributor", "warehouse"):
            await eventually(lambda name=name: committed(stack, name), timeout=60,  # type: ignore[misc]
                             what=f"the {name}'s offset committed by the timer", stack=stack)
            assert await accounted(stack, name) == 1
            await audit_is_clean(stack, name)
    finally:
        stack.stop()


async def test_a_graceful_stop_commits_the_applied_offsets_before_the_consumers_leave(
    kafka: Broker, tmp_path: Path,
) -> None:
    stack = a_stack(kafka, tmp_path)
    stack.start()
    try:
        await send(stack, record_of(stack, placed("OFFSETS-2")))
        await eventually(lambda: accounted(stack, "distributor"), what="the distributor's transaction", stack=stack)
        assert await committed(stack, "distributor") == 0  # the timer never comes round in this test
    finally:
        stack.stop()
    for name in ("distributor", "warehouse"):
        assert "FastStream app shut down gracefully." in stack.processes[name].log_path.read_text()
        assert await committed(stack, name) == 1
        assert await accounted(stack, name) == 1
        await audit_is_clean(stack, name)
