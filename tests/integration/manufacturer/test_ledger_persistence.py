"""The stock ledger, the exception queue and the master-data cache through the repository, on SQLite and PostgreSQL.

One contract, both databases: every test runs once per backend (`database_url` in this folder's conftest). The
domain decides every quantity; these tests check that what the domain decided survives the database exactly:
decimals to the last unit, the append order first-in-first-out follows, one transaction for a posting and the
idempotency record of the event that caused it, and compensating movements that restore every balance and lot.

Figures from `services/manufacturer/sample_data` (worked by hand):

- 50 CHAIR-ERGO, post: CASTOR-50 50 x 1.02 x 5 x 1.03 = 262.65 -> 263, taken first in first out: all 250 of
  CA-0915, then 13 of CA-1012; SEAT-ASSY 50: all 40 of SA-2411-01, then 10 of a later lot.
- 100 CHAIR-ERGO, pre: BASE-STAR-5 and GAS-LIFT-100 100 x 1.02 = 102 each, against 60 and 80 in stock.
- 100 CHAIR-ERGO, manual: GREASE-LI 100 x 1.02 x 0.015 x 1.10 = 1.683 kg against 0.500 kg; its policy is
  `allow`, so 1.183 kg goes onto the NEGATIVE lot.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from backflush_manufacturer.adapters import repository as repo
from backflush_manufacturer.adapters import tables
from backflush_manufacturer.domain import (
    NEGATIVE_LOT,
    Bom,
    BomLine,
    FlushPoint,
    FlushRequest,
    Genealogy,
    Item,
    LedgerMovement,
    MovementReason,
    NegativeStockPolicy,
    ParkedFlush,
    PostedFlush,
    Receipt,
    StockLedger,
    StockPolicies,
    backflush,
    receive,
    reprocess_parked,
    reverse_order,
)
from backflush_manufacturer.domain import ledger as ledger_module
from backflush_manufacturer.domain.units import KG, PCS
from backflush_manufacturer.master_data_files import MasterData, load_master_data
from backflush_shared.contracts.master_data import ComponentsReceived
from backflush_shared.messaging.codec import ConsumedEvent, decode, encode
from backflush_shared.messaging.publish import envelope_for, source_for
from backflush_shared.persistence.database import Database
from backflush_shared.persistence.inbox import Claim, Inbox
from backflush_shared.unit_of_work import UnitOfWork, unit_of_work
from support.consumed import Record

D = Decimal
SAMPLE_DATA = Path(__file__).resolve().parents[3] / "services" / "manufacturer" / "sample_data"


@pytest.fixture(scope="module")
def sample() -> MasterData:
    return load_master_data(SAMPLE_DATA)


async def append(database: Database, movements: Sequence[LedgerMovement]) -> None:
    async with database.transaction() as session:
        await repo.append(session, movements)


async def load(database: Database, items: Sequence[str] | None = None) -> StockLedger:
    async with database.reading() as session:
        return await repo.load_ledger(session, items)


def lots_of(ledger: StockLedger) -> dict[tuple[str, str], tuple[tuple[str, Decimal, Decimal], ...]]:
    """Every lot of every item at every location, in FIFO order, with on hand and allocated."""
    places = dict.fromkeys((m.item, m.location) for m in ledger.movements)
    return {
        (item, location): tuple((lot.lot, lot.on_hand, lot.allocated) for lot in ledger.lots(item, location))
        for item, location in places
    }


def without_empty_negative_lots(lots: dict[tuple[str, str], tuple[tuple[str, Decimal, Decimal], ...]]
                                ) -> dict[tuple[str, str], tuple[tuple[str, Decimal, Decimal], ...]]:
    return {place: tuple(lot for lot in ls if lot != (NEGATIVE_LOT, 0, 0)) for place, ls in lots.items()}


# -- movements and balances ----------------------------------------------------------------------------------------


async def test_movements_load_back_as_appended_with_exact_decimals(database: Database, sample: MasterData) -> None:
    odd = [
        LedgerMovement("FOAM-PU", "MAIN", "FP-TINY", D("0.001"), MovementReason.RECEIPT, "r-tiny"),
        LedgerMovement("FOAM-PU", "MAIN", "FP-HUGE", D("123456789012.345"), MovementReason.RECEIPT, "r-huge"),
        LedgerMovement("FOAM-PU", "MAIN", "FP-HUGE", D("-0.125"), MovementReason.BACKFLUSH, "f-1",
                       production_order="PO-1", flush_id="f-1", into_item="CHAIR-ERGO", into_lot="PO-1-1"),
        LedgerMovement("FABRIC-MESH", "WIP", "FM-1002", D("93.500"), MovementReason.RECEIPT, "r-wip"),
        LedgerMovement("SEAT-ASSY", "MAIN", "SA-2411-01", D(7), MovementReason.ALLOCATION, "a-1",
                       production_order="PO-2"),
    ]
    appended = [*sample.initial_movements(), *odd]

    await append(database, appended)
    loaded = await load(database)

    assert list(loaded.movements) == appended
    # not only equal as numbers: the same digits, so 0.500 kg stays 0.500 and never becomes 0.5 or 0.49999...
    assert [str(m.quantity) for m in loaded.movements] == [str(m.quantity) for m in appended]
    expected = StockLedger.from_movements(appended)
    assert loaded.balances() == expected.balances()
    assert loaded.allocations() == expected.allocations()
    assert loaded.on_hand("FOAM-PU") == D("123456789117.721")  # 60.000 + 45.500 + 0.001 + 123456789012.345 - 0.125
    assert loaded.available("SEAT-ASSY") == D(33)


async def test_a_thousand_grams_add_up_to_exactly_one_kilogram(database: Database) -> None:
    grams = [LedgerMovement("GREASE-LI", "MAIN", "G-01", D("0.001"), MovementReason.RECEIPT, f"g-{n}")
             for n in range(1000)]

    await append(database, grams)
    ledger = await load(database, ["GREASE-LI"])

    assert ledger.on_hand("GREASE-LI") == D("1.000")  # as floats: 1.0000000000000007


async def test_lots_keep_their_append_order_for_first_in_first_out(database: Database, sample: MasterData) -> None:
    await append(database, sample.initial_movements())
    # received last, named first: FIFO follows the append order (the id), never the lot's name
    late = receive(sample.catalogue, StockLedger(), Receipt("r-late", "CASTOR-50", "CA-0001", D(500)))
    seats = receive(sample.catalogue, StockLedger(), Receipt("r-seats", "SEAT-ASSY", "SA-0002", D(20)))
    await append(database, [*late, *seats])

    ledger = await load(database, ["CASTOR-50"])
    assert [lot.lot for lot in ledger.lots("CASTOR-50")] == ["CA-0915", "CA-1012", "CA-0001"]

    request = FlushRequest("f-post-50", "PO-1", "CHAIR-ERGO", FlushPoint.POST, D(50), finished_lot="PO-1-1")
    outcome = backflush(sample.catalogue, await load(database), request, sample.policies)
    assert isinstance(outcome, PostedFlush)
    await append(database, outcome.movements)

    ledger = await load(database, ["CASTOR-50"])
    assert [(lot.lot, lot.on_hand) for lot in ledger.lots("CASTOR-50")] == [
        ("CA-0915", D(0)), ("CA-1012", D(387)), ("CA-0001", D(500))
    ]
    seat_lots = (await load(database, ["SEAT-ASSY"])).lots("SEAT-ASSY")
    assert [(lot.lot, lot.on_hand) for lot in seat_lots] == [("SA-2411-01", D(0)), ("SA-0002", D(10))]


# -- one transaction: the posting and the event that caused it ------------------------------------------------------




def consumed_receipt(offset: int = 0) -> ConsumedEvent:
    """A ComponentsReceived as the consumer reads it from Kafka: CloudEvents headers, JSON value."""
    event = ComponentsReceived(receipt_id="R-77", item="SCREW-M6", lot="SC-7777", quantity=D(777))
    source = source_for(event, otherwise="/backflush/tests")  # a service topic's events come from its writer
    encoded = encode(event, envelope_for(event, source), "master-data")
    decoded = decode(Record.of(encoded, offset))
    assert isinstance(decoded, ConsumedEvent), decoded
    return decoded


async def apply_receipt(database: Database, inbox: Inbox, consumed: ConsumedEvent, sample: MasterData,
                        *, fail_after_posting: bool = False) -> Claim:
    """What a handler does: claim the event, post its movements, all in one transaction."""
    async with database.transaction() as session:
        claim = await inbox.claim(session, consumed)
        if claim is not Claim.NEW:
            return claim
        event = consumed.event
        assert isinstance(event, ComponentsReceived)
        ledger = await repo.load_ledger(session, [event.item])
        receipt = Receipt(str(consumed.envelope.event_id), event.item, event.lot, event.quantity)
        await repo.append(session, receive(sample.catalogue, ledger, receipt))
        if fail_after_posting:
            raise RuntimeError("the process died before the commit")
    return claim


async def inbox_ids(database: Database) -> list[str]:
    async with database.reading() as session:
        return list((await session.execute(select(tables.inbox.c.event_id))).scalars())


async def movement_count(database: Database) -> int:
    async with database.reading() as session:
        return int((await session.execute(select(func.count()).select_from(tables.ledger_movements))).scalar_one())


async def test_a_posting_and_its_inbox_record_commit_together(database: Database, sample: MasterData) -> None:
    inbox = Inbox(tables.inbox)
    consumed = consumed_receipt()

    assert await apply_receipt(database, inbox, consumed, sample) is Claim.NEW

    assert await inbox_ids(database) == [str(consumed.envelope.event_id)]
    ledger = await load(database)
    assert ledger.on_hand("SCREW-M6", lot="SC-7777") == D(777)
    assert [m.event_id for m in ledger.movements] == [str(consumed.envelope.event_id)]


async def test_a_redelivered_event_posts_nothing(database: Database, sample: MasterData) -> None:
    inbox = Inbox(tables.inbox)
    consumed = consumed_receipt()
    await apply_receipt(database, inbox, consumed, sample)

    redelivered = decode(Record(consumed.origin.topic, 0, 1, consumed.origin.key, consumed.origin.value,
                                 list(consumed.origin.headers)))
    assert isinstance(redelivered, ConsumedEvent)
    assert await apply_receipt(database, inbox, redelivered, sample) is Claim.DUPLICATE

    assert await movement_count(database) == 1
    assert (await load(database)).on_hand("SCREW-M6") == D(777)


async def test_a_failure_before_commit_rolls_back_the_posting_and_the_inbox_record(
    database: Database, sample: MasterData
) -> None:
    inbox = Inbox(tables.inbox)
    consumed = consumed_receipt()

    with pytest.raises(RuntimeError, match="died before the commit"):
        await apply_receipt(database, inbox, consumed, sample, fail_after_posting=True)

    assert await inbox_ids(database) == []
    assert await movement_count(database) == 0
    # so the redelivery is new, and posts once
    assert await apply_receipt(database, inbox, consumed, sample) is Claim.NEW
    assert (await load(database)).on_hand("SCREW-M6") == D(777)


# -- reversal ------------------------------------------------------------------------------------------------------


async def test_flush_then_reverse_leaves_every_balance_and_lot_as_before(
    database: Database, sample: MasterData
) -> None:
    """100 chairs: pre at release, post at completion, and the manual grease issue under `allow`, which takes
    0.500 kg of G-01 and leaves 1.183 kg on the NEGATIVE lot. Cancelling the order reverses all three."""
    await append(database, sample.initial_movements())
    before = await load(database)
    policies = StockPolicies(NegativeStockPolicy.ALLOW, sample.policies.overrides)

    for flush in (FlushPoint.PRE, FlushPoint.POST, FlushPoint.MANUAL):
        request = FlushRequest(f"PO-9:{flush}", "PO-9", "CHAIR-ERGO", flush, D(100), finished_lot="PO-9-1")
        outcome = backflush(sample.catalogue, await load(database), request, policies)
        assert isinstance(outcome, PostedFlush)
        await append(database, outcome.movements)

    flushed = await load(database)
    assert flushed.on_hand("GREASE-LI", lot=NEGATIVE_LOT) == D("-1.183")
    assert (flushed.on_hand("BASE-STAR-5", lot="BS-1001"), flushed.on_hand("BASE-STAR-5", lot=NEGATIVE_LOT)) == (
        D(0), D(-42)
    )
    assert Genealogy.from_movements(flushed.movements).components_of("CHAIR-ERGO", "PO-9-1")

    await append(database, reverse_order(flushed, "PO-9", "cancel-PO-9"))

    after = await load(database)
    assert after.balances() == before.balances()
    # the NEGATIVE lots the flush opened stay in the ledger's history, at zero; every other lot is as before
    assert without_empty_negative_lots(lots_of(after)) == lots_of(before)
    assert Genealogy.from_movements(after.movements).links == ()
    assert len(after) > len(flushed) > len(before), "a reversal appends; nothing is deleted"


async def test_a_reversal_after_a_settling_receipt_leaves_the_received_lot_whole(
    database: Database, sample: MasterData
) -> None:
    """The grease flush leaves 1.183 kg owed on NEGATIVE; a receipt of 2.000 kg into G-02 settles it (G-02 keeps
    0.817). Reversing the order gives G-01 its 0.500 back and G-02 its full 2.000: as if the flush never posted."""
    await append(database, sample.initial_movements())
    request = FlushRequest("PO-8:manual", "PO-8", "CHAIR-ERGO", FlushPoint.MANUAL, D(100), finished_lot="PO-8-1")
    outcome = backflush(sample.catalogue, await load(database), request, sample.policies)
    assert isinstance(outcome, PostedFlush) and outcome.alerts
    await append(database, outcome.movements)
    receipt = Receipt("r-grease", "GREASE-LI", "G-02", D("2.000"))
    await append(database, receive(sample.catalogue, await load(database), receipt))
    settled = await load(database, ["GREASE-LI"])
    assert [(lot.lot, lot.on_hand) for lot in settled.lots("GREASE-LI")] == [
        ("G-01", D(0)), ("G-02", D("0.817")), (NEGATIVE_LOT, D(0))
    ]

    await append(database, reverse_order(await load(database), "PO-8", "cancel-PO-8"))

    after = await load(database, ["GREASE-LI"])
    assert [(lot.lot, lot.on_hand) for lot in after.lots("GREASE-LI")] == [
        ("G-01", D("0.500")), ("G-02", D("2.000")), (NEGATIVE_LOT, D(0))
    ]


# -- the exception queue -------------------------------------------------------------------------------------------


async def test_a_parked_flush_round_trips_and_posts_once_receipts_cover_it(
    database: Database, sample: MasterData
) -> None:
    await append(database, sample.initial_movements())
    request = FlushRequest("PO-5:release", "PO-5", "CHAIR-ERGO", FlushPoint.PRE, D(100), D(0), "MAIN", "PO-5-1")
    outcome = backflush(sample.catalogue, await load(database), request, sample.policies)
    assert isinstance(outcome, ParkedFlush)
    assert {s.item: (s.needed, s.available) for s in outcome.shortages} == {
        "BASE-STAR-5": (D(102), D(60)), "GAS-LIFT-100": (D(102), D(80))
    }
    async with unit_of_work(database) as uow:
        await repo.park(uow, outcome, order_id="PO-5", step="release", reason="short", cause_event_id="e-5")

    async with database.reading() as session:
        [entry] = await repo.read_waiting_parked(session)
    assert (entry.order_id, entry.step, entry.status, entry.reason) == ("PO-5", "release", "waiting", "short")
    assert entry.parked.request == request
    assert entry.parked.requirements == outcome.requirements
    assert [(r.item, str(r.quantity), r.unit) for r in entry.parked.requirements] == [
        ("BASE-STAR-5", "102", PCS), ("GAS-LIFT-100", "102", PCS)
    ]

    for receipt in (Receipt("r-bs", "BASE-STAR-5", "BS-2", D(42)), Receipt("r-gl", "GAS-LIFT-100", "GL-2", D(22))):
        await append(database, receive(sample.catalogue, await load(database), receipt))
    async with unit_of_work(database) as uow:
        waiting = await repo.waiting_parked(uow)
        ledger = await repo.load_ledger(uow.session)
        result = reprocess_parked(ledger, [e.parked for e in waiting], sample.policies)
        assert [p.flush_id for p in result.posted] == ["PO-5:release"]
        await repo.append(uow.session, result.movements)
        await repo.resolve_parked(uow, "PO-5:release", "posted")

    async with database.reading() as session:
        assert await repo.read_waiting_parked(session) == []
        [resolved] = await repo.all_parked(session)
    assert resolved.status == "posted"
    ledger = await load(database)
    assert ledger.on_hand("BASE-STAR-5") == 0 and ledger.on_hand("GAS-LIFT-100") == 0
    assert {(link.component, link.component_lot): link.quantity
            for link in Genealogy.from_movements(ledger.movements).components_of("CHAIR-ERGO", "PO-5-1")} == {
        ("BASE-STAR-5", "BS-1001"): D(60), ("BASE-STAR-5", "BS-2"): D(42),
        ("GAS-LIFT-100", "GL-1003"): D(80), ("GAS-LIFT-100", "GL-2"): D(22),
    }


async def test_the_queue_keeps_arrival_order_and_decimal_requirements(database: Database, sample: MasterData) -> None:
    """Two manual flushes under `park`, each after 5 chairs already flushed, both short of grease (0.500 kg).
    Partial-safe (kg, 3 decimals, half-up): 45 chairs 45.9 x 0.0165 = 0.75735 -> 0.757, 5 chairs 0.08415 -> 0.084,
    so 40 more take 0.757 - 0.084 = 0.673 kg; 40 chairs 40.8 x 0.0165 = 0.6732 -> 0.673, so 35 more take
    0.673 - 0.084 = 0.589 kg. Both wait, in the order they arrived."""
    await append(database, sample.initial_movements())
    park_all = StockPolicies(NegativeStockPolicy.PARK)
    for order, quantity in (("PO-B", 40), ("PO-A", 35)):
        request = FlushRequest(f"{order}:manual", order, "CHAIR-ERGO", FlushPoint.MANUAL, D(quantity),
                               D(5), "MAIN", None)
        outcome = backflush(sample.catalogue, await load(database), request, park_all)
        assert isinstance(outcome, ParkedFlush)
        async with unit_of_work(database) as uow:
            await repo.park(uow, outcome, order_id=order, step="completion", reason="grease", cause_event_id="e")

    async with database.reading() as session:
        queue = await repo.read_waiting_parked(session)
    assert [e.order_id for e in queue] == ["PO-B", "PO-A"]
    assert [[(r.item, str(r.quantity), r.unit) for r in e.parked.requirements if r.item == "GREASE-LI"]
            for e in queue] == [[("GREASE-LI", "0.673", KG)], [("GREASE-LI", "0.589", KG)]]
    assert queue[0].parked.request.completed_before == D(5)
    assert queue[0].parked.request.finished_lot is None


# -- the master-data cache -----------------------------------------------------------------------------------------


async def test_the_master_data_cache_reloads_after_a_change(database: Database) -> None:
    cache, other_instance = repo.MasterDataCache(), repo.MasterDataCache()
    async with unit_of_work(database) as uow:
        for item in (Item("KIT", PCS), Item("BOLT", PCS), Item("OIL", KG)):
            await repo.save_item(uow, item, None)
        await repo.save_bom(uow, Bom("KIT", (BomLine("BOLT", D(4)), BomLine("OIL", D("0.125"), D("0.1")))))

    async with database.reading() as session:
        first = await cache.get(UnitOfWork(session))
        again = await cache.get(UnitOfWork(session))
        await other_instance.get(UnitOfWork(session))
    assert again is first, "unchanged master data is served from the cache"
    assert first.catalogue.bom("KIT") == Bom("KIT", (BomLine("BOLT", D(4)), BomLine("OIL", D("0.125"), D("0.1"))))

    async with unit_of_work(database) as uow:
        await repo.save_bom(uow, Bom("KIT", (BomLine("BOLT", D(6), flush=FlushPoint.PRE),)))
        await repo.save_item(uow, Item("OIL", KG, description="engine oil"), "allow")

    async with database.reading() as session:
        changed = await cache.get(UnitOfWork(session))
        seen_elsewhere = await other_instance.get(UnitOfWork(session))
    assert changed.version != first.version
    assert changed.catalogue.bom("KIT") == Bom("KIT", (BomLine("BOLT", D(6), flush=FlushPoint.PRE),))
    assert changed.catalogue.item("OIL").description == "engine oil"
    assert changed.overrides == {"OIL": NegativeStockPolicy.ALLOW}
    assert seen_elsewhere.catalogue == changed.catalogue, "a second instance never serves the stale BOM"


async def test_the_ledger_cache_keeps_what_commits_and_forgets_what_rolls_back(database: Database) -> None:
    """The in-memory ledger equals the table after commits of several appends each, after a rollback, and after a
    movement another path wrote: it catches up from its high water mark, never twice (on both backends)."""
    cache = repo.LedgerCache(enabled=True)

    def receipt(lot: str, quantity: str) -> LedgerMovement:
        return LedgerMovement("FOAM-PU", "MAIN", lot, D(quantity), MovementReason.RECEIPT, f"r-{lot}")

    async with unit_of_work(database) as uow:
        await cache.load(uow)
        await cache.append(uow, [receipt("L1", "1.5")])
        await cache.append(uow, [receipt("L2", "2"), receipt("L3", "3")])
    with pytest.raises(RuntimeError):
        async with unit_of_work(database) as uow:
            await cache.append(uow, [receipt("GONE", "100")])
            raise RuntimeError("rolled back")
    await append(database, [receipt("ELSEWHERE", "0.25")])  # committed without the cache
    async with unit_of_work(database) as uow:
        await cache.append(uow, [receipt("L4", "4")])
    async with unit_of_work(database) as uow:
        cached = await cache.load(uow)
    assert lots_of(cached) == lots_of(await load(database))
    assert cached.on_hand("FOAM-PU", "MAIN") == D("10.75")


class _Refused(Exception):
    """A handler's refusal of one event (the processor rolls back its savepoint and keeps the batch going)."""


class _LostRace(Exception):
    """What ends a batch after its events were applied, e.g. another instance committed the same events first."""


async def test_the_ledger_cache_keeps_nothing_of_a_batch_that_rolls_back_after_a_refused_event(
        database: Database) -> None:
    """A batch run with a savepoint per event (as the processor runs one that holds a refused event): an event
    appends, the next is refused (its savepoint rolls back and the transaction's working ledger is dropped), a
    third reads the ledger again, which then holds the first event's movements; releasing that savepoint is no
    commit. When the batch then rolls back, the in-memory ledger must not keep those movements: it did, and a
    batch another instance committed in its place was counted twice (the PostgreSQL crash test's completion
    given back twice)."""
    cache = repo.LedgerCache(enabled=True)
    receipt = LedgerMovement("FOAM-PU", "MAIN", "L1", D(5), MovementReason.RECEIPT, "r-L1")
    with pytest.raises(_LostRace):
        async with unit_of_work(database) as uow:
            async with uow.savepoint():  # event 1: applied
                await cache.append(uow, [receipt])
            with pytest.raises(_Refused):
                async with uow.savepoint():  # event 2: refused
                    await cache.load(uow, ["FOAM-PU"])
                    raise _Refused
            async with uow.savepoint():  # event 3: reads the stock (the first event's receipt among it)
                assert (await cache.load(uow, ["FOAM-PU"])).on_hand("FOAM-PU", "MAIN") == D(5)
            raise _LostRace
    async with unit_of_work(database) as uow:
        cached = await cache.load(uow, ["FOAM-PU"])
    assert (await load(database, ["FOAM-PU"])).on_hand("FOAM-PU") == D(0)
    assert cached.on_hand("FOAM-PU") == D(0), "the in-memory ledger holds a receipt that was rolled back"


async def test_a_savepoint_that_rolls_back_takes_its_movements_out_of_the_in_memory_ledger(
        database: Database) -> None:
    """A unit of work's savepoint that rolls back makes it forget its working ledger: what was appended inside it
    is gone from the table, so it is gone from what the unit of work commits into memory."""
    cache = repo.LedgerCache(enabled=True)

    def receipt(lot: str, quantity: str) -> LedgerMovement:
        return LedgerMovement("FOAM-PU", "MAIN", lot, D(quantity), MovementReason.RECEIPT, f"r-{lot}")

    async with unit_of_work(database) as uow:
        async with uow.savepoint():
            await cache.append(uow, [receipt("KEPT", "1")])
        with pytest.raises(_Refused):
            async with uow.savepoint():
                await cache.append(uow, [receipt("UNDONE", "7")])
                raise _Refused
    async with unit_of_work(database) as uow:
        cached = await cache.load(uow, ["FOAM-PU"])
    assert lots_of(cached) == lots_of(await load(database, ["FOAM-PU"]))
    assert cached.on_hand("FOAM-PU") == D(1)


async def test_a_transaction_catching_up_while_another_of_the_same_instance_adopts_its_commit_counts_it_once(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """One instance runs several topics' batches at once (PostgreSQL has no process-wide writer lock). A batch that
    committed adopts its ledger into memory while another batch of the same instance awaits its catch-up query
    (rows above the high water mark it read before the await). That batch must build on the ledger and the high
    water mark it read together: it built on the newly adopted ledger with the rows above the old mark, counted
    the first batch's movements twice, and a run's reversal then gave back twice what the run had consumed (the
    PostgreSQL crash test, seed 164128: components back twice, the run's lot -8)."""
    cache = repo.LedgerCache(enabled=True)
    receipt = LedgerMovement("FOAM-PU", "MAIN", "L1", D(5), MovementReason.RECEIPT, "r-L1")
    async with unit_of_work(database) as uow:
        await cache.load(uow)  # the cache is current: nothing in the table yet

    adopt_first: list[UnitOfWork] = []
    async with database.transaction() as session:
        first = UnitOfWork(session)
        await cache.append(first, [receipt])
        await first.committing()
    adopt_first.append(first)  # committed, not yet adopted: its coroutine has not resumed yet

    async with unit_of_work(database) as second:
        session_type = type(second.session)
        execute = session_type.execute

        async def execute_while_the_first_adopts(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
            if self is second.session and statement is repo._LEDGER_SINCE:
                for uow in adopt_first:
                    uow.committed()  # the first batch resumes while the second awaits its catch-up
                adopt_first.clear()
            return await execute(self, statement, *args, **kwargs)

        monkeypatch.setattr(session_type, "execute", execute_while_the_first_adopts)
        ledger = await cache.load(second, ["FOAM-PU"])
        monkeypatch.undo()
    assert not adopt_first, "the catch-up query never ran"
    assert ledger.on_hand("FOAM-PU", "MAIN", "L1") == D(5), "the first batch's receipt counted twice"
    async with unit_of_work(database) as uow:
        assert (await cache.load(uow, ["FOAM-PU"])).on_hand("FOAM-PU") == D(5)


async def test_a_transaction_copies_an_items_state_once_however_often_it_appends_and_leaves_the_cache_unchanged(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """An item's derived state (its lots, balances, debts) grows with every lot it ever had: a transaction that
    appends to the item many times (a batch of events) copies it at its first append only, then appends in place;
    the version held in memory for every other transaction does not change until the transaction commits. Each
    append copied the state, which was a fifth of the manufacturer's CPU in a 10,000-order run."""
    cache = repo.LedgerCache(enabled=True)

    def receipt(lot: str) -> LedgerMovement:
        return LedgerMovement("FOAM-PU", "MAIN", lot, D(1), MovementReason.RECEIPT, f"r-{lot}")

    async with unit_of_work(database) as uow:
        await cache.append(uow, [receipt(f"OLD{n}") for n in range(3)])
    async with unit_of_work(database) as uow:
        shared = cache._ledger  # what every transaction starting now builds on
        before = (shared.movements, shared.balances(), shared.lots("FOAM-PU"))
        copies: list[object] = []
        clone = ledger_module._ItemState.clone

        def counted(state: ledger_module._ItemState) -> ledger_module._ItemState:
            copies.append(state)
            return clone(state)

        monkeypatch.setattr(ledger_module._ItemState, "clone", counted)
        for n in range(20):
            await cache.append(uow, [receipt(f"NEW{n}")])
            assert (await cache.load(uow, ["FOAM-PU"])).on_hand("FOAM-PU", "MAIN") == D(4 + n)
        monkeypatch.undo()
        assert len(copies) <= 1, f"the item's state was copied {len(copies)} times in one transaction"
        assert cache._ledger is shared
        assert (shared.movements, shared.balances(), shared.lots("FOAM-PU")) == before, "the shared version changed"
    async with unit_of_work(database) as uow:
        cached = await cache.load(uow, ["FOAM-PU"])
    assert lots_of(cached) == lots_of(await load(database, ["FOAM-PU"]))
    assert cached.on_hand("FOAM-PU") == D(23)
