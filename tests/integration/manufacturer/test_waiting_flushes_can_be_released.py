"""Every parked flush waits for something that can happen, and the audit says so when one does not.

The database is filled the way the running manufacturer fills it: each event encoded into a Kafka record and applied
by the service's own batch processor (inbox, handlers, outbox), only without a broker. The story: post-product
order SO-A for 60 CHAIR-ERGO needs 62 BASE-STAR-5 at release (61.2 rounded up), 60 are in stock, so its release
parks (entry 1); a completion of 10 reported meanwhile queues behind it (entry 2).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import text

from backflush_manufacturer.master_data_events import events_from
from backflush_manufacturer.master_data_files import load_master_data
from backflush_shared.audit import AuditFinding, audit_service
from backflush_shared.contracts.common import Flow, OrderProcessingInfo
from backflush_shared.contracts.completions import CompletionReported
from backflush_shared.contracts.master_data import ComponentsReceived
from backflush_shared.contracts.orders import OrderForwarded
from backflush_shared.persistence.database import Database
from support.manufacturer_feed import SAMPLE_DATA, feed

CHECK = "manufacturer: every waiting parked flush can be released"


async def _parked_release_then_completion_behind_it(url: str, completed: int = 10) -> None:
    await feed(url, events_from(load_master_data(SAMPLE_DATA)))
    await feed(url, [OrderForwarded(
        order_id="SO-A", flow=Flow.POST, item="CHAIR-ERGO", quantity=Decimal(60),
        processing=OrderProcessingInfo(order_holder="Acme Offices", ship_to="Main Street 1",
                                       due_date=date(2030, 1, 31)),
    )])
    await feed(url, [CompletionReported(order_id="SO-A", quantity=Decimal(completed), reported_by="line 2")])


async def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    database = Database(url)
    try:
        async with database.reading() as session:
            return [tuple(row) for row in (await session.execute(text(sql))).all()]
    finally:
        await database.close()


async def _change(url: str, sql: str) -> None:
    database = Database(url)
    try:
        async with database.transaction() as session:
            await session.execute(text(sql))
    finally:
        await database.close()


async def _finding(url: str) -> AuditFinding:
    return next(f for f in await audit_service("manufacturer", url) if f.check == CHECK)


async def test_a_completion_behind_its_parked_release_does_not_post_when_other_stock_arrives(
        database_url: str) -> None:
    await _parked_release_then_completion_behind_it(database_url)
    await feed(database_url, [ComponentsReceived(receipt_id="R-SEAT", item="SEAT-ASSY", lot="SA-NEW",
                                                  quantity=Decimal(30))])
    assert await _rows(database_url, "SELECT id, step, status FROM parked_flushes ORDER BY id") == [
        (1, "release", "waiting"), (2, "completion", "waiting")]
    assert await _rows(database_url, "SELECT count(*) FROM finished_lots") == [(0,)]


async def test_once_the_release_posts_the_completion_behind_it_posts_too(database_url: str) -> None:
    await _parked_release_then_completion_behind_it(database_url)
    await feed(database_url, [ComponentsReceived(receipt_id="R-BS", item="BASE-STAR-5", lot="BS-NEW",
                                                  quantity=Decimal(2))])
    assert await _rows(database_url, "SELECT id, status FROM parked_flushes ORDER BY id") == [
        (1, "posted"), (2, "posted")]
    assert (await _finding(database_url)).ok


async def test_the_audit_passes_on_flushes_that_wait_for_stock(database_url: str) -> None:
    await _parked_release_then_completion_behind_it(database_url)
    finding = await _finding(database_url)
    assert finding.ok, finding.detail
    assert finding.detail.startswith("2 waiting")


async def test_the_audit_names_a_flush_that_waits_for_an_unknown_item(database_url: str) -> None:
    await _parked_release_then_completion_behind_it(database_url)
    await _change(database_url, "UPDATE parked_flushes SET request = replace(request, '\"BASE-STAR-5\"', "
                                "'\"NO-SUCH-ITEM\"') WHERE id = 1")
    finding = await _finding(database_url)
    assert not finding.ok and "#1 SO-A: needs unknown items NO-SUCH-ITEM" in finding.detail


async def test_the_audit_names_a_flush_whose_production_order_does_not_exist(database_url: str) -> None:
    await _parked_release_then_completion_behind_it(database_url)
    await _change(database_url, "UPDATE parked_flushes SET order_id = 'SO-GONE' WHERE id = 2")
    finding = await _finding(database_url)
    assert not finding.ok and "#2 SO-GONE: no such production order" in finding.detail


async def test_the_audit_names_a_flush_behind_an_earlier_one_of_its_order_that_no_longer_waits(
        database_url: str) -> None:
    await _parked_release_then_completion_behind_it(database_url)
    await _change(database_url, "UPDATE parked_flushes SET status = 'posted' WHERE id = 1")
    finding = await _finding(database_url)
    assert not finding.ok
    assert "#2 SO-A: waits behind an earlier flush of its order, but none waits" in finding.detail


async def test_the_audit_names_a_flush_waiting_after_its_order_gave_up_an_earlier_one(database_url: str) -> None:
    await _parked_release_then_completion_behind_it(database_url)
    await _change(database_url, "UPDATE parked_flushes SET status = 'cancelled' WHERE id = 1")
    finding = await _finding(database_url)
    assert not finding.ok and "#2 SO-A: an earlier flush of its order was cancelled (#1)" in finding.detail


async def test_a_flush_no_longer_behind_its_order_says_what_it_waits_for_now(database_url: str) -> None:
    """A completion of 50 needs 50 SEAT-ASSY, 40 are in stock. Once the release posts, the completion waits for
    seat assemblies, and the exception queue says so instead of naming a wait that is over."""
    await _parked_release_then_completion_behind_it(database_url, completed=50)
    await feed(database_url, [ComponentsReceived(receipt_id="R-BS", item="BASE-STAR-5", lot="BS-NEW",
                                                  quantity=Decimal(2))])
    assert await _rows(database_url, "SELECT id, status, reason FROM parked_flushes ORDER BY id") == [
        (1, "posted", "BASE-STAR-5: needs 62 pcs, 60 available"),
        (2, "waiting", "SEAT-ASSY: needs 50 pcs, 40 available")]
    assert (await _finding(database_url)).ok
