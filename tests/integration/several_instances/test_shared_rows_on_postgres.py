"""Several instances of one service on one PostgreSQL database: what two transactions may not both do.

Each test races two transactions the way two instances (or two topic consumers of one instance) race on
PostgreSQL at READ COMMITTED: the first one reads and writes and holds its transaction open for a moment; the
second starts meanwhile from what it can see. Whatever the second decides must rest on what the first committed.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import structlog
from aiokafka import AIOKafkaConsumer
from sqlalchemy import insert, select

from backflush_distributor.adapters import repository as orders_repo
from backflush_distributor.app import SERVICE as DISTRIBUTOR
from backflush_distributor.domain.lifecycle import Order
from backflush_distributor.handlers import build_handlers as distributor_handlers
from backflush_manufacturer.adapters import repository as stock_repo
from backflush_manufacturer.adapters import tables as manufacturer_tables
from backflush_manufacturer.app import SERVICE as MANUFACTURER
from backflush_manufacturer.domain import FlushPoint, FlushRequest, LedgerMovement, MovementReason, ParkedFlush
from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.common import RackPlacement
from backflush_shared.contracts.topics import TopicNames
from backflush_shared.messaging.admin import ensure_topics
from backflush_shared.messaging.codec import ConsumedEvent, EncodedRecord, decode, encode
from backflush_shared.messaging.processor import Handler
from backflush_shared.unit_of_work import UnitOfWork, unit_of_work
from backflush_shared.messaging.publish import envelope_for, source_for
from backflush_shared.messaging.relay import OutboxRelay
from backflush_shared.persistence.database import Database
from backflush_shared.persistence.locks import ConcurrentUpdateError
from backflush_shared.persistence.outbox import Outbox
from backflush_shared.service import ServiceDefinition
from backflush_warehouse.adapters import tables as warehouse_tables
from backflush_warehouse.app import SERVICE as WAREHOUSE
from backflush_warehouse.handlers import build_handlers as warehouse_handlers
from support.consumed import Record

pytestmark = pytest.mark.postgres

D = Decimal
T = TypeVar("T")
HOLD = 0.6  # how long the first transaction stays open after its work, so the second starts inside it
TOPICS = TopicNames("")
FreshDatabase = Callable[[ServiceDefinition], Awaitable[str]]  # the `fresh_database` fixture


async def _second(work: Awaitable[T]) -> T:
    await asyncio.sleep(HOLD / 3)  # the first transaction has read and written by now, and not committed
    return await work


async def race(first: Awaitable[Any], second: Awaitable[T]) -> list[Any]:
    return list(await asyncio.gather(first, _second(second)))




_offsets = iter(range(1_000_000))


def consumed(event: Event) -> ConsumedEvent:
    source = source_for(event, otherwise="/backflush/tests")  # a service topic's events come from its writer
    encoded = encode(event, envelope_for(event, source), TOPICS(event.topic))
    decoded = decode(Record.of(encoded, next(_offsets)))
    assert isinstance(decoded, ConsumedEvent), decoded
    return decoded


async def apply(database: Database, outbox: Outbox, handler: Handler, event: Event, *, hold: float = 0.0) -> None:
    """One event through one handler in one transaction, held open for `hold` seconds before it commits."""
    async with database.transaction() as session:
        uow = UnitOfWork(session, outbox)
        uow.applying(consumed(event), structlog.get_logger("test"))
        await handler(uow, uow.event)
        await asyncio.sleep(hold)
        await uow.committing()
        assert uow.outgoing is not None
        await uow.outgoing.flush()
    uow.committed()


def outbox_of(service: Any) -> Outbox:
    return Outbox(service.outbox_table, TOPICS, source=f"/backflush/{service.name}")


# -- manufacturer: an item's lots ----------------------------------------------------------------------------------


async def _take_if_available(database: Database, flush_id: str, quantity: Decimal, *, hold: float = 0.0) -> bool:
    """What a flush does on PostgreSQL: load the item's ledger, decide from it, append, commit."""
    async with database.transaction() as session:
        ledger = await stock_repo.LedgerCache(enabled=False).load(UnitOfWork(session), ["SCREW-M6"])
        if ledger.on_hand("SCREW-M6", "MAIN", "SC-1") < quantity:
            return False
        await stock_repo.append(session, [LedgerMovement("SCREW-M6", "MAIN", "SC-1", -quantity,
                                                         MovementReason.BACKFLUSH, flush_id, production_order=flush_id,
                                                         flush_id=flush_id)])
        await asyncio.sleep(hold)
        return True


async def test_two_flushes_of_one_lot_cannot_both_take_what_only_one_of_them_can(fresh_database: FreshDatabase) -> None:
    database = Database(await fresh_database(MANUFACTURER))
    try:
        async with database.transaction() as session:
            await stock_repo.append(session, [LedgerMovement("SCREW-M6", "MAIN", "SC-1", D(10), MovementReason.RECEIPT,
                                                             "receipt-1")])

        taken = await race(_take_if_available(database, "flush-1", D(8), hold=HOLD),
                           _take_if_available(database, "flush-2", D(8)))

        async with database.reading() as session:
            ledger = await stock_repo.load_ledger(session, ["SCREW-M6"])
    finally:
        await database.close()
    assert taken == [True, False]
    assert ledger.on_hand("SCREW-M6", "MAIN", "SC-1") == D(2)


async def _take_through_cache(database: Database, cache: stock_repo.LedgerCache, flush_id: str, quantity: Decimal,
                              *, hold: float = 0.0) -> bool:
    """The same flush through an instance's in-memory ledger (what the service runs with)."""
    async with unit_of_work(database) as uow:
        ledger = await cache.load(uow, ["SCREW-M6"])
        if ledger.on_hand("SCREW-M6", "MAIN", "SC-1") < quantity:
            return False
        await cache.append(uow, [LedgerMovement("SCREW-M6", "MAIN", "SC-1", -quantity, MovementReason.BACKFLUSH,
                                                    flush_id, production_order=flush_id, flush_id=flush_id)])
        await asyncio.sleep(hold)
        return True


async def test_two_instances_in_memory_ledgers_see_each_others_flushes_and_never_overdraw_a_lot(
        fresh_database: FreshDatabase) -> None:
    """Each instance keeps the committed ledger in memory and catches up from the table: what the other instance
    committed meanwhile (while this one waited for the stock lock, or long before) is in what it decides from."""
    url = await fresh_database(MANUFACTURER)
    first, second = Database(url), Database(url)
    first_cache, second_cache = stock_repo.LedgerCache(enabled=True), stock_repo.LedgerCache(enabled=True)
    try:
        async with unit_of_work(first) as uow:
            await first_cache.append(uow, [LedgerMovement("SCREW-M6", "MAIN", "SC-1", D(10),
                                                          MovementReason.RECEIPT, "receipt-1")])
        async with unit_of_work(second) as uow:  # the second instance has cached the receipt too
            assert (await second_cache.load(uow, ["SCREW-M6"])).on_hand("SCREW-M6", "MAIN", "SC-1") == D(10)

        raced = await race(_take_through_cache(first, first_cache, "flush-1", D(8), hold=HOLD),
                           _take_through_cache(second, second_cache, "flush-2", D(8)))
        after_race = [await _take_through_cache(second, second_cache, "flush-3", D(2)),
                      await _take_through_cache(first, first_cache, "flush-4", D(1))]

        async with first.reading() as session:
            ledger = await stock_repo.load_ledger(session, ["SCREW-M6"])
    finally:
        await first.close()
        await second.close()
    assert raced == [True, False]
    assert after_race == [True, False], "each cache holds what the other instance took"
    assert ledger.on_hand("SCREW-M6", "MAIN", "SC-1") == D(0)


class _Refused(Exception):
    """A handler's refusal of one event: the processor rolls back its savepoint and goes on with the batch."""


class _LostRace(Exception):
    """What rolls a batch back after its events were applied (the other instance committed the same events)."""


async def test_an_instance_whose_batch_rolls_back_counts_what_the_other_instance_committed_in_its_place_once(
        fresh_database: FreshDatabase) -> None:
    """After a rebalance both instances apply one batch: the second commits it; the first applies it too, with a
    savepoint per event because another event of the batch is refused, reads the stock again after the refusal,
    and then rolls back (its inbox finds the events taken). Its in-memory ledger must hold the receipt once, the
    one the second instance committed: it held its own rolled-back copy as well, and let a flush take stock the
    table does not have (the crash test's cancelled order given back twice is the same double count)."""
    url = await fresh_database(MANUFACTURER)
    first, second = Database(url), Database(url)
    first_cache, second_cache = stock_repo.LedgerCache(enabled=True), stock_repo.LedgerCache(enabled=True)
    receipt = LedgerMovement("SCREW-M6", "MAIN", "SC-1", D(10), MovementReason.RECEIPT, "receipt-1")
    try:
        async with unit_of_work(second) as uow:
            await second_cache.append(uow, [receipt])
        with pytest.raises(_LostRace):
            async with unit_of_work(first) as uow:
                async with uow.savepoint():  # the receipt event, applied again
                    await first_cache.append(uow, [receipt])
                with pytest.raises(_Refused):
                    async with uow.savepoint():  # an event the handler refuses
                        raise _Refused
                async with uow.savepoint():  # a later event of the batch reads the stock
                    await first_cache.load(uow, ["SCREW-M6"])
                raise _LostRace
        overdrawn = await _take_through_cache(first, first_cache, "flush-1", D(15))
        async with first.reading() as session:
            ledger = await stock_repo.load_ledger(session, ["SCREW-M6"])
    finally:
        await first.close()
        await second.close()
    assert not overdrawn, "the first instance counted the receipt twice"
    assert ledger.on_hand("SCREW-M6", "MAIN", "SC-1") == D(10)


async def test_a_parked_flush_is_resolved_once_and_a_second_resolution_is_a_retryable_conflict(
        fresh_database: FreshDatabase) -> None:
    database = Database(await fresh_database(MANUFACTURER))
    request = FlushRequest("flush-7", "PO-7", "CHAIR-ERGO", FlushPoint.POST, D(1), finished_lot="PO-7-1")
    try:
        async with database.transaction() as session:
            await stock_repo.park(UnitOfWork(session), ParkedFlush(request, (), ()), order_id="PO-7", step="completion",
                                  reason="waits", cause_event_id="cause-7")
        async with database.transaction() as session:
            await stock_repo.resolve_parked(UnitOfWork(session), "flush-7", "posted")

        with pytest.raises(ConcurrentUpdateError):
            async with database.transaction() as session:
                await stock_repo.resolve_parked(UnitOfWork(session), "flush-7", "posted")
        async with database.reading() as session:
            statuses = (await session.execute(select(manufacturer_tables.parked_flushes.c.status))).scalars().all()
    finally:
        await database.close()
    assert statuses == ["posted"]


# -- distributor: one order, two events ----------------------------------------------------------------------------


async def test_two_events_of_one_order_applied_at_once_both_keep_their_milestone(fresh_database: FreshDatabase) -> None:
    database = Database(await fresh_database(DISTRIBUTOR))
    outbox = outbox_of(DISTRIBUTOR)
    handlers = distributor_handlers(None)
    try:
        async with unit_of_work(database) as uow:
            await orders_repo.add(uow, Order("ORD-1", "pre", "CHAIR-ERGO", D(5)), fingerprint="f",
                                  order_holder="Holder", ship_to="Dock", due_date=date(2027, 1, 1), priority="normal",
                                  at=orders_repo.now())
        inspected = c.QualityInspectionRecorded(order_id="ORD-1", item="CHAIR-ERGO", passed=True, inspected_by="QA")
        racked = inv.GoodsRacked(order_id="ORD-1", item="CHAIR-ERGO", lot="L-1",
                                 placements=[RackPlacement(location="DC-A1", quantity=D(5))])

        await race(apply(database, outbox, handlers[type(inspected)], inspected, hold=HOLD),
                   apply(database, outbox, handlers[type(racked)], racked))

        async with database.reading() as session:
            row = await orders_repo.load(session, "ORD-1")
    finally:
        await database.close()
    assert row is not None
    assert (row.order.milestones.quality_passed, row.order.milestones.racked) == (True, True)


# -- warehouse: rack space and cancelled orders --------------------------------------------------------------------


async def _warehouse(fresh_database: FreshDatabase, capacity: int) -> Database:
    database = Database(await fresh_database(WAREHOUSE))
    async with database.transaction() as session:
        await session.execute(insert(warehouse_tables.locations).values(code="DC-A1", kind="rack",
                                                                         capacity=D(capacity), position=0))
    return database


async def _used_and_stored(database: Database) -> tuple[Decimal, Decimal]:
    units = warehouse_tables.stock_units
    async with database.reading() as session:
        used = (await session.execute(select(warehouse_tables.locations.c.used))).scalar_one()
        stored = (await session.execute(select(units.c.quantity).where(units.c.status == "stored"))).scalars().all()
    return D(used), sum(stored, D(0))


def _directed(order_id: str, quantity: int) -> inv.GoodsDirectedToRacks:
    return inv.GoodsDirectedToRacks(order_id=order_id, item="CHAIR-ERGO", lot=f"{order_id}-1", quantity=D(quantity),
                                    certificate_id=f"CERT-{order_id}")


async def test_two_put_aways_at_once_never_fill_a_rack_beyond_its_capacity(fresh_database: FreshDatabase) -> None:
    database = await _warehouse(fresh_database, capacity=10)
    outbox, handler = outbox_of(WAREHOUSE), warehouse_handlers(None)[inv.GoodsDirectedToRacks]
    try:
        await race(apply(database, outbox, handler, _directed("ORD-A", 6), hold=HOLD),
                   apply(database, outbox, handler, _directed("ORD-B", 6)))
        used, stored = await _used_and_stored(database)
        async with database.reading() as session:
            waiting = (await session.execute(select(warehouse_tables.waiting_put_aways.c.order_id))).scalars().all()
    finally:
        await database.close()
    assert (used, stored) == (D(6), D(6))
    assert waiting == ["ORD-B"]


async def test_goods_put_away_while_their_order_is_cancelled_are_not_left_stored(fresh_database: FreshDatabase) -> None:
    database = await _warehouse(fresh_database, capacity=10)
    outbox, handlers = outbox_of(WAREHOUSE), warehouse_handlers(None)
    cancelled = o.OrderCancelled(order_id="ORD-C", reason="customer", stage="in-production")
    try:
        await race(apply(database, outbox, handlers[o.OrderCancelled], cancelled, hold=HOLD),
                   apply(database, outbox, handlers[inv.GoodsDirectedToRacks], _directed("ORD-C", 4)))
        used, stored = await _used_and_stored(database)
    finally:
        await database.close()
    assert (used, stored) == (D(0), D(0))


def _stock_order(order_id: str, quantity: int) -> o.OrderForwarded:
    from backflush_shared.contracts.common import Flow, OrderProcessingInfo

    return o.OrderForwarded(order_id=order_id, flow=Flow.STOCK, item="SEAT-ASSY", quantity=D(quantity),
                            processing=OrderProcessingInfo(order_holder="ACME", ship_to="dock 1",
                                                           due_date=date(2026, 12, 24)))


async def test_two_stock_orders_at_once_never_take_the_same_finished_goods(fresh_database: FreshDatabase) -> None:
    """8 units racked for sale; SO-A (6) and SO-B (6) arrive at once on two instances: one ships, one waits."""
    database = await _warehouse(fresh_database, capacity=10)
    outbox, handlers = outbox_of(WAREHOUSE), warehouse_handlers(None)
    stocked = inv.FinishedGoodsStocked(run_id="R-1", item="SEAT-ASSY", lot="L-1", quantity=D(8))
    try:
        await apply(database, outbox, handlers[inv.FinishedGoodsStocked], stocked)
        await race(apply(database, outbox, handlers[o.OrderForwarded], _stock_order("SO-A", 6), hold=HOLD),
                   apply(database, outbox, handlers[o.OrderForwarded], _stock_order("SO-B", 6)))
        async with database.reading() as session:
            allocated = (await session.execute(select(warehouse_tables.stock_allocations.c.order_id,
                                                      warehouse_tables.stock_allocations.c.quantity))).all()
            waiting = (await session.execute(select(warehouse_tables.stock_orders.c.order_id).where(
                warehouse_tables.stock_orders.c.status == "waiting"))).scalars().all()
        used, stored = await _used_and_stored(database)
    finally:
        await database.close()
    assert [(order_id, D(q)) for order_id, q in allocated] == [("SO-A", D(6))]
    assert waiting == ["SO-B"]
    assert (used, stored) == (D(2), D(2))


# -- every service: the outbox relay and the migrations ------------------------------------------------------------


async def test_two_relays_of_one_database_publish_each_row_once(fresh_database: FreshDatabase, kafka: Any) -> None:
    database = Database(await fresh_database(WAREHOUSE))
    outbox = outbox_of(WAREHOUSE)
    topic = f"relay-race-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka.bootstrap_servers, [topic], partitions=1, replication=1)
    rows = 400
    async with database.transaction() as session:
        outgoing = outbox.buffer(session)
        for n in range(rows):
            await outgoing.add(EncodedRecord(topic, f"k{n % 7}".encode(), f"v{n}".encode(),
                                             [("ce_id", f"id-{n}".encode())]))
        await outgoing.flush()
    relays = [OutboxRelay(database, outbox, kafka.bootstrap_servers, batch_size=50) for _ in range(2)]
    try:
        for relay in relays:
            await relay.start()  # both publish at once, as two instances' relays do
        for _ in range(300):
            async with database.reading() as session:
                if await outbox.count_unpublished(session) == 0:
                    break
            await asyncio.sleep(0.1)
    finally:
        for relay in relays:
            await relay.stop()
        await database.close()

    values = await _read_all(kafka.bootstrap_servers, topic)
    assert len(values) == rows, f"{len(values) - len(set(values))} records published twice"
    assert values == [f"v{n}".encode() for n in range(rows)]  # and in the outbox's order


async def _read_all(bootstrap_servers: str, topic: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap_servers, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    values: list[bytes] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                return values
            for records in batch.values():
                values += [record.value for record in records if record.value is not None]
    finally:
        await consumer.stop()


async def test_instances_started_together_all_migrate_one_fresh_database(empty_database: str) -> None:
    # processes, as instances are (Alembic's context is global to a process), all starting at one instant
    script = ("import sys, time; from pathlib import Path; "
              "from backflush_shared.persistence.migrations import upgrade_to_head; "
              "time.sleep(max(0.0, float(sys.argv[3]) - time.time())); "
              "upgrade_to_head(sys.argv[1], Path(sys.argv[2]))")
    start_at = str(time.time() + 8)  # after every process has imported what it needs
    processes = [await asyncio.create_subprocess_exec(sys.executable, "-c", script, empty_database,
                                                      str(DISTRIBUTOR.migrations), start_at,
                                                      stdout=asyncio.subprocess.PIPE,
                                                      stderr=asyncio.subprocess.STDOUT)
                 for _ in range(6)]
    outputs = [(await process.communicate())[0].decode() for process in processes]

    failed = [output for process, output in zip(processes, outputs, strict=True) if process.returncode != 0]
    assert failed == [], failed[0][-2000:] if failed else ""
