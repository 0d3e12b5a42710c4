"""Nothing lost, for real: a record nobody can read costs only itself, never its batch or a retry storm.

Each case sends records the services cannot read right next to good ones (one key, so one partition and, sent
together, one batch) and asserts that the bad record is dead-lettered at once with its reason while every good
one is applied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from backflush_shared.audit import AuditFinding, audit
from backflush_shared.persistence.database import Database

from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.messaging.codec import EncodedRecord
from support.broker import Broker
from support.e2e_paths import SAMPLE_DATA
from support.flows import Flows
from support.records import dead_letters, dead_letters_by_service, record_of, send
from support.stack import eventually, make_stack, read_db

from backflush_manufacturer.adapters import repository as manufacturer_repo

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


@pytest.fixture(scope="module")
async def lossless(kafka: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Flows]:
    """One stack for the module (each case uses keys of its own)."""
    stack = make_stack(kafka.bootstrap_servers, tmp_path_factory.mktemp("nothing-lost"))
    stack.start()
    try:
        flows = Flows(stack)
        await flows.load_master_data(SAMPLE_DATA)
        yield flows
    finally:
        stack.stop()


async def write_db(url: str, change: Any) -> Any:
    database = Database(url)
    try:
        async with database.transaction() as session:
            return await change(session)
    finally:
        await database.close()


def placed(order_id: str, *, quantity: str = "1") -> o.OrderPlaced:
    return o.OrderPlaced(order_id=order_id, order_holder="Lossless Ltd", flow="pre", item="CHAIR-ERGO",
                         quantity=Decimal(quantity), ship_to="7 Test Lane", due_date=dt.date.today())


async def all_known_to_the_distributor(flows: Flows, order_ids: list[str]) -> None:
    async def known() -> bool:
        return all([await flows.order(order_id) is not None for order_id in order_ids])
    await eventually(known, what=f"{len(order_ids)} orders in the distributor", stack=flows.stack)


def good_orders(flows: Flows, prefix: str, count: int, *, key: str) -> list[EncodedRecord]:
    return [record_of(flows.stack, placed(f"{prefix}-{n}"), key=key) for n in range(count)]


async def test_a_header_that_is_not_utf8_costs_only_its_own_record(lossless: Flows) -> None:
    """Five good orders, one with a header that is not UTF-8, five more, on one key in one send: the ten good ones
    are applied and the bad one is dead-lettered as 'malformed-header' (it used to lose the whole batch)."""
    stack = lossless.stack
    bad = record_of(stack, placed("NL-HDR-BAD"), key="NL-HDR")
    bad = EncodedRecord(bad.topic, bad.key, bad.value, [*bad.headers, ("x-trace", b"\xc3\x28")])
    good = good_orders(lossless, "NL-HDR", 10, key="NL-HDR")
    await send(stack, *good[:5], bad, *good[5:])
    # ce_type is readable, so only the distributor, whose event it is, sets it aside
    letters = await dead_letters_by_service(stack, "orders.intake", key="NL-HDR", services=("distributor",))
    assert {letter["dlq_error_type"] for letter in letters.values()} == {"malformed-header"}
    assert all("'x-trace'" in letter["dlq_error_message"] for letter in letters.values())
    await all_known_to_the_distributor(lossless, [f"NL-HDR-{n}" for n in range(10)])
    assert await lossless.order("NL-HDR-BAD") is None


async def test_json_nested_too_deep_is_dead_lettered_at_once(lossless: Flows) -> None:
    """About 20 KB of `{"a":` nested 10,000 deep makes the JSON parser recurse out of stack: unreadable, so
    set aside on the first attempt, and the good orders around it are applied."""
    stack = lossless.stack
    deep = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    bad = record_of(stack, placed("NL-DEEP-BAD"), key="NL-DEEP", value=deep)
    good = good_orders(lossless, "NL-DEEP", 4, key="NL-DEEP")
    await send(stack, *good[:2], bad, *good[2:])
    letters = await dead_letters_by_service(stack, "orders.intake", key="NL-DEEP", services=("distributor",))
    letter = letters["distributor"]
    assert (letter["dlq_error_type"], letter["dlq_attempts"]) == ("too-deep", "1")
    assert "nested too deep" in letter["dlq_error_message"]
    await all_known_to_the_distributor(lossless, [f"NL-DEEP-{n}" for n in range(4)])


async def test_the_audit_accounts_for_every_committed_offset_and_names_a_gap(lossless: Flows) -> None:
    """After normal flows every offset each group committed past is covered by a `consumed_ranges` row. Offsets
    before a partition's first recorded batch (committed before an upgrade brought `consumed_ranges`) are not
    reported lost: the detail says where accounting begins. Remove the distributor's row of a later batch and
    the audit names the partition and offsets that went unaccounted."""
    stack = lossless.stack
    await lossless.place("NL-AUDIT", flow="pre", quantity="1")
    await lossless.wait_state("NL-AUDIT", "closed")
    for n in (1, 2):  # two more batches of the distributor on NL-AUDIT's partition (each cancel is refused)
        await lossless.cancel("NL-AUDIT", reason=f"too late {n}")
        await dead_letters(stack, "orders.intake", key="NL-AUDIT", until=n)
    urls = {service: stack.database_url(service) for service in ("manufacturer", "distributor", "warehouse")}

    async def accounted() -> list[AuditFinding] | None:
        found = [f for f in await audit(urls, bootstrap_servers=stack.bootstrap_servers)
                 if f.check.endswith("every consumed offset accounted for")]
        return found if len(found) == 3 and all(f.ok for f in found) else None
    await eventually(accounted, what="every consumed offset accounted for", stack=stack)

    def drop_a_range(which: str) -> Any:
        """Delete the `which` ("first" or "last") range of a partition of `orders.intake` the distributor read in
        several batches (after the first deletion, the last is still not the partition's first)."""
        async def drop(session: Any) -> tuple[str, int, int, int]:
            rows = (await session.execute(text(
                "SELECT id, topic, \"partition\", first_offset, last_offset FROM consumed_ranges "
                "WHERE topic LIKE '%orders.intake' ORDER BY topic, \"partition\", first_offset"))).all()
            by_partition: dict[tuple[str, int], list[Any]] = {}
            for row in rows:
                by_partition.setdefault((row.topic, row.partition), []).append(row)
            ranges = next(found for found in by_partition.values() if len(found) >= 2)
            row = ranges[0] if which == "first" else ranges[-1]
            await session.execute(text("DELETE FROM consumed_ranges WHERE id = :id"), {"id": row.id})
            return row.topic, row.partition, row.first_offset, row.last_offset
        return drop

    # as after an upgrade: the partition's first batch was committed before `consumed_ranges` recorded anything
    topic, partition, _first, last = await write_db(urls["distributor"], drop_a_range("first"))
    findings = await audit(urls, bootstrap_servers=stack.bootstrap_servers)
    [begins_later] = [f for f in findings if f.check == "distributor: every consumed offset accounted for"]
    assert begins_later.ok, begins_later.detail
    assert "accounting begins at the first recorded batch: " in begins_later.detail
    assert f"{topic}[{partition}] from offset {last + 1}" in begins_later.detail

    topic, partition, first, last = await write_db(urls["distributor"], drop_a_range("last"))
    findings = await audit(urls, bootstrap_servers=stack.bootstrap_servers)
    [gap] = [f for f in findings if f.check == "distributor: every consumed offset accounted for"]
    assert not gap.ok
    assert f"{topic}[{partition}] offsets {first}..{last}" in gap.detail


async def test_an_event_on_a_topic_that_is_not_its_own_is_refused_and_changes_nothing(lossless: Flows) -> None:
    """A ComponentsReceived published on `orders` used to add stock: each topic takes only its own events."""
    stack = lossless.stack
    receipt = md.ComponentsReceived(receipt_id="R-NL-WRONG", item="SEAT-ASSY", lot="NL-WRONG", quantity=Decimal(50))
    home = record_of(stack, receipt)
    await send(stack, EncodedRecord(f"{stack.topic_prefix}orders", home.key, home.value, home.headers))
    letters = await dead_letters_by_service(stack, "orders", key=home.key.decode(), services=("manufacturer",))
    assert letters["manufacturer"]["dlq_error_type"] == "wrong-topic"
    assert f"belongs on '{stack.topic_prefix}master-data'" in letters["manufacturer"]["dlq_error_message"]

    async def lots(session: Any) -> set[str]:
        return {m.lot for m in (await manufacturer_repo.load_ledger(session, ["SEAT-ASSY"])).movements}
    assert "NL-WRONG" not in await read_db(stack.database_url("manufacturer"), lots)
    await lossless.place("NL-WRONG-NEXT", flow="pre", quantity="1")
    await lossless.wait_state("NL-WRONG-NEXT", "closed")


async def test_a_duplicate_header_and_a_foreign_correlation_id_are_refused(lossless: Flows) -> None:
    stack = lossless.stack
    doubled = record_of(stack, placed("NL-TWICE"))
    doubled = EncodedRecord(doubled.topic, doubled.key, doubled.value,
                            [*doubled.headers, ("ce_source", b"/someone/else")])
    foreign = record_of(stack, placed("NL-CORR"), header_changes={"ce_correlationid": "SOMEONE-ELSE"})
    await send(stack, doubled, foreign)
    [twice] = (await dead_letters_by_service(stack, "orders.intake", key="NL-TWICE", services=("distributor",))).values()
    assert (twice["dlq_error_type"], twice["dlq_error_message"]) == (
        "duplicate-header", "header 'ce_source' appears more than once")
    [corr] = (await dead_letters_by_service(stack, "orders.intake", key="NL-CORR", services=("distributor",))).values()
    assert corr["dlq_error_type"] == "correlation-mismatch"
    assert await lossless.order("NL-TWICE") is None and await lossless.order("NL-CORR") is None


async def test_a_dead_lettered_record_is_never_counted_as_what_it_claims_to_be(lossless: Flows) -> None:
    """A forged ConsignmentStockReceived whose ce_type header comes twice is dead-lettered by the warehouse. Its
    dead letter waits in the warehouse's outbox with the record's own headers; the audit counts only what the
    warehouse said itself, so its consignment stock still reconciles (found by the fuzz test, seed 928793)."""
    from backflush_shared.contracts import inventory_details as inv

    stack = lossless.stack
    forged = record_of(stack, inv.ConsignmentStockReceived(order_id="NL-FORGED", item="SCREW-M6", lot="L1",
                                                           quantity=Decimal("0.158"), owner="x", location="CS-1"))
    ce_type = dict(forged.headers)["ce_type"]
    # onto a topic the warehouse reads (it does not read its own `inventory-details.warehouse`)
    await send(stack, EncodedRecord(f"{stack.topic_prefix}inventory-details", forged.key, forged.value,
                                    [*forged.headers, ("ce_type", ce_type)]))
    letters = await dead_letters_by_service(stack, "inventory-details", key="NL-FORGED",
                                            services=("distributor", "warehouse"))
    assert letters["warehouse"]["dlq_error_type"] == "duplicate-header"
    findings = {f.check: f for f in await audit({"warehouse": stack.database_url("warehouse")})}
    consignment = findings["warehouse: consignment stock = stored - shipped"]
    assert consignment.ok, consignment.detail
