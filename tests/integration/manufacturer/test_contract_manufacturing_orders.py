"""Contract manufacturing on the manufacturer's database (SQLite and PostgreSQL), through its batch processor.

A DESK is 1 TOP (pre) and 4 LEG (post). Worked by hand: the manufacturer holds OWN-T 100 TOP and OWN-L 400 LEG
(received first, so they are the oldest lots); BRAND-A consigns TOP A-T1 3 and A-T2 10 and LEG A-L1 40; BRAND-B
consigns TOP B-T1 50. BRAND-A's order CM-1 for 5 desks flushes at release TOP 5 = A-T1 3 + A-T2 2 and at its
completion LEG 20 from A-L1; the manufacturer's lots and BRAND-B's are left alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from support.manufacturer_feed import dead_letter_reasons, emitted, feed, rows

from backflush_manufacturer import queries
from backflush_shared.audit import audit_service
from backflush_shared.contracts.common import Flow, OrderProcessingInfo
from backflush_shared.contracts.completions import ComponentIssueReported, CompletionReported
from backflush_shared.contracts.master_data import (
    BomDefined,
    BomLineDefinition,
    ComponentsConsigned,
    ComponentsReceived,
    ItemDefined,
)
from backflush_shared.contracts.orders import OrderCancelled, OrderForwarded
from backflush_shared.persistence.database import Database

PERIOD = datetime.now(UTC).strftime("%Y-%m")


def master_data() -> list[object]:
    return [
        *(ItemDefined(item=item, unit="pcs", decimals=0) for item in ("DESK", "TOP", "LEG")),
        BomDefined(parent="DESK", lines=[BomLineDefinition(component="TOP", quantity_per=Decimal(1), flush="pre"),
                                         BomLineDefinition(component="LEG", quantity_per=Decimal(4), flush="post")]),
        ComponentsReceived(receipt_id="R-1", item="TOP", lot="OWN-T", quantity=Decimal(100)),
        ComponentsReceived(receipt_id="R-2", item="LEG", lot="OWN-L", quantity=Decimal(400)),
    ]


def consign(owner: str, item: str, lot: str, quantity: int) -> ComponentsConsigned:
    return ComponentsConsigned(receipt_id=f"{owner}:{lot}", owner=owner, item=item, lot=lot,
                               quantity=Decimal(quantity))


def contract_order(order_id: str, quantity: int, owner: str | None = "BRAND-A", *,
                   own_allowed: bool = False) -> OrderForwarded:
    return OrderForwarded(order_id=order_id, flow=Flow.POST, item="DESK", quantity=Decimal(quantity),
                          processing=OrderProcessingInfo(order_holder=owner or "Acme", ship_to="Main Street 1",
                                                         due_date=date(2030, 1, 31)),
                          components_owner=owner, own_components_allowed=own_allowed)


def lots(report: dict[str, object], part: str = "consigned") -> list[tuple[object, ...]]:
    return [(line["item"], line["lot"], line["quantity"]) for line in report[part]]  # type: ignore[index,union-attr]


async def consigned_stock(url: str) -> None:
    await feed(url, master_data())
    await feed(url, [consign("BRAND-A", "TOP", "A-T1", 3), consign("BRAND-B", "TOP", "B-T1", 50),
                     consign("BRAND-A", "TOP", "A-T2", 10), consign("BRAND-A", "LEG", "A-L1", 40)])


async def statement(url: str, owner: str) -> dict[str, tuple[int, ...]]:
    database = Database(url)
    try:
        async with database.reading() as session:
            view = await queries.consignment_statement(session, owner, PERIOD)
    finally:
        await database.close()
    assert view.ledger_checked and view.ledger_mismatches == []
    assert all(line.reconciles for line in view.lines)
    return {line.lot: (int(line.opening), int(line.received), int(line.consumed), int(line.scrapped),
                       int(line.closing)) for line in view.lines}


async def audit_clean(url: str) -> None:
    findings = await audit_service("manufacturer", url)
    assert all(f.ok for f in findings), [f for f in findings if not f.ok]
    names = {f.check for f in findings}
    assert {"manufacturer: owner stock never negative",
            "manufacturer: consigned lots consumed only by their owner's orders"} <= names


async def test_a_contract_order_flushes_the_owners_lots_only_and_reports_each_flush(database_url: str) -> None:
    await consigned_stock(database_url)
    await feed(database_url, [contract_order("CM-1", 5)])
    await feed(database_url, [CompletionReported(order_id="CM-1", quantity=Decimal(5))])
    assert await rows(database_url, "SELECT item, lot, quantity, owner FROM ledger_movements "
                                    "WHERE production_order = 'CM-1' AND reason = 'backflush' ORDER BY id") == [
        ("TOP", "A-T1", "-3", "BRAND-A"), ("TOP", "A-T2", "-2", "BRAND-A"), ("LEG", "A-L1", "-20", "BRAND-A")]
    release, completion = await emitted(database_url, "backflush.completion.consigned-components-consumed")
    assert (release["owner"], release["order_id"], release["flush_point"]) == ("BRAND-A", "CM-1", "pre")
    assert lots(release) == [("TOP", "A-T1", "3"), ("TOP", "A-T2", "2")] and release["own"] == []
    assert lots(completion) == [("LEG", "A-L1", "20")]
    assert await rows(database_url, "SELECT status FROM production_orders") == [("completed",)]
    assert await statement(database_url, "BRAND-A") == {
        "A-T1": (0, 3, 3, 0, 0), "A-T2": (0, 10, 2, 0, 8), "A-L1": (0, 40, 20, 0, 20)}
    assert await statement(database_url, "BRAND-B") == {"B-T1": (0, 50, 0, 0, 50)}
    await audit_clean(database_url)


async def test_an_ordinary_order_never_takes_a_consigned_lot(database_url: str) -> None:
    """O-1 (no owner) for 5 desks takes OWN-T and OWN-L; a second, O-2, for 100 more TOP than we own parks
    although BRAND-A's and BRAND-B's lots hold 63 TOP."""
    await consigned_stock(database_url)
    await feed(database_url, [contract_order("O-1", 5, owner=None), contract_order("O-2", 96, owner=None)])
    assert await rows(database_url, "SELECT production_order, lot, quantity FROM ledger_movements "
                                    "WHERE reason = 'backflush' ORDER BY id") == [("O-1", "OWN-T", "-5")]
    assert await rows(database_url, "SELECT order_id, status FROM parked_flushes") == [("O-2", "waiting")]
    assert await emitted(database_url, "backflush.completion.consigned-components-consumed") == []
    await audit_clean(database_url)


async def test_an_owner_shortage_parks_even_under_allow_and_a_consignment_releases_it(database_url: str) -> None:
    await feed(database_url, master_data(), policy="allow")
    await feed(database_url, [consign("BRAND-A", "TOP", "A-T1", 3)], policy="allow")
    await feed(database_url, [contract_order("CM-2", 5)], policy="allow")
    assert await rows(database_url, "SELECT count(*) FROM ledger_movements WHERE lot = 'NEGATIVE'") == [(0,)]
    [parked] = await emitted(database_url, "backflush.completion.backflush-parked")
    assert "TOP: needs 5 pcs, 3 available of BRAND-A's consigned stock" in str(parked["reason"])
    await feed(database_url, [consign("BRAND-A", "TOP", "A-T2", 10)], policy="allow")
    assert await rows(database_url, "SELECT status FROM parked_flushes") == [("posted",)]
    assert await rows(database_url, "SELECT status FROM production_orders") == [("released",)]
    [consumed] = await emitted(database_url, "backflush.completion.consigned-components-consumed")
    assert lots(consumed) == [("TOP", "A-T1", "3"), ("TOP", "A-T2", "2")]
    await audit_clean(database_url)


async def test_an_owner_shortage_is_rejected_under_reject(database_url: str) -> None:
    await feed(database_url, master_data(), policy="reject")
    await feed(database_url, [consign("BRAND-A", "TOP", "A-T1", 3), contract_order("CM-3", 5)], policy="reject")
    [rejected] = await emitted(database_url, "backflush.completion.production-order-rejected")
    assert rejected["code"] == "insufficient-component-stock"
    assert await rows(database_url, "SELECT status FROM production_orders") == [("rejected",)]


async def test_own_components_make_up_the_shortage_and_a_cancellation_gives_each_unit_back(
        database_url: str) -> None:
    """CM-4 allows own components: TOP 5 = A-T1 3 + OWN-T 2 (sold to BRAND-A). Its cancellation gives 3 back to
    A-T1 (still BRAND-A's) and 2 to OWN-T; the statement nets the flush out."""
    await feed(database_url, master_data())
    await feed(database_url, [consign("BRAND-A", "TOP", "A-T1", 3), contract_order("CM-4", 5, own_allowed=True)])
    [consumed] = await emitted(database_url, "backflush.completion.consigned-components-consumed")
    assert lots(consumed) == [("TOP", "A-T1", "3")] and lots(consumed, "own") == [("TOP", "OWN-T", "2")]
    await feed(database_url, [OrderCancelled(order_id="CM-4", reason="brand changed its mind", stage="released")])
    [returned] = await emitted(database_url, "backflush.completion.consigned-components-returned")
    assert lots(returned) == [("TOP", "A-T1", "3")] and lots(returned, "own") == [("TOP", "OWN-T", "2")]
    assert await rows(database_url, "SELECT owner, quantity FROM ledger_movements WHERE lot = 'A-T1' "
                                    "ORDER BY id") == [("BRAND-A", "3"), ("BRAND-A", "-3"), ("BRAND-A", "3")]
    assert await statement(database_url, "BRAND-A") == {"A-T1": (0, 3, 0, 0, 3)}
    await audit_clean(database_url)


async def test_scrap_of_an_owners_order_draws_the_owners_lot_and_shows_as_scrapped(database_url: str) -> None:
    await consigned_stock(database_url)
    await feed(database_url, [contract_order("CM-5", 2)])
    await feed(database_url, [ComponentIssueReported(order_id="CM-5", component="LEG", quantity=Decimal(3),
                                                     kind="scrap")])
    scrap = (await emitted(database_url, "backflush.completion.consigned-components-consumed"))[-1]
    assert scrap["flush_point"] == "scrap" and lots(scrap) == [("LEG", "A-L1", "3")]
    assert (await statement(database_url, "BRAND-A"))["A-L1"] == (0, 40, 0, 3, 37)
    await audit_clean(database_url)


async def test_a_lot_keeps_one_owner(database_url: str) -> None:
    await consigned_stock(database_url)
    await feed(database_url, [consign("BRAND-B", "TOP", "OWN-T", 5), consign("BRAND-B", "TOP", "A-T1", 5)],
               dead_letters=2)
    reasons = await dead_letter_reasons(database_url)
    assert "belongs to the manufacturer" in reasons[0] and "belongs to brand owner BRAND-A" in reasons[1], reasons
