"""`backflush dlq list`, `backflush dlq replay` and `backflush audit` on a live stack.

Each command runs at least once as a person runs it (a subprocess with the stack's broker, prefix and databases);
the other steps call the same functions directly, because every command start costs seconds of imports.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from decimal import Decimal
from typing import Any

import pytest

from backflush_shared.audit import audit
from backflush_shared.dead_letters import read_dead_letters, replay, replayed_ids
from backflush_shared.contracts import completions as c
from backflush_shared.local_stack import LocalStack
from backflush_shared.messaging.processor import HEADER_REPLAY_OF
from support.flows import Flows
from support.records import (
    backflush,
    broker_args,
    database_args,
    dead_letters,
    record_of,
    send,
)
from support.stack import eventually, read_db
from support.topics import read_topic

from backflush_manufacturer.adapters.tables import inbox as manufacturer_inbox

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

#: What one completion of 4 CHAIR-ERGO flushes at its post lines, and then 4 + 1 cumulatively
#: (CASTOR-50: 4 x 1.02 x 5 x 1.03 = 21.012 -> 22, then 5 x 5.253 = 26.265 -> 27; SCREW-M6: 49.92 -> 50, 62.4 -> 63).
AFTER_4 = {"CASTOR-50": 22, "SCREW-M6": 50, "SEAT-ASSY": 4, "BACKREST-MESH": 4, "ARMREST-PAIR": 4}
AFTER_5 = {"CASTOR-50": 27, "SCREW-M6": 63, "SEAT-ASSY": 5, "BACKREST-MESH": 5, "ARMREST-PAIR": 5}
RELEASE_OF_10 = {"BASE-STAR-5": 11, "GAS-LIFT-100": 11}


def dlq_list(stack: LocalStack, *args: str) -> list[dict[str, Any]]:
    result = backflush("dlq", "list", *broker_args(stack), "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def dlq_replay(stack: LocalStack, *args: str) -> dict[str, Any]:
    result = backflush("dlq", "replay", *broker_args(stack), "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def replay_now(stack: LocalStack, **options: Any) -> dict[str, Any]:
    """What `dlq replay --json` prints, without starting a process."""
    return (await replay(stack.bootstrap_servers, stack.topic_prefix, **options)).as_json()


async def listed_now(stack: LocalStack, *topics: str) -> list[dict[str, Any]]:
    """What `dlq list --json` prints, without starting a process."""
    done = await replayed_ids(stack.bootstrap_servers, stack.topic_prefix)
    return [d.as_json(replayed=d.id in done)
            for d in await read_dead_letters(stack.bootstrap_servers, stack.topic_prefix, topics)]


async def completed(flows: Flows, order_id: str, quantity: int) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        row = await flows.production_order(order_id)
        return row if row and row["completed"] == quantity else None
    return await eventually(check, what=f"{order_id} completed {quantity}", stack=flows.stack)


async def test_dlq_list_shows_dead_letters_and_replay_applies_a_refused_completion_once(flows: Flows) -> None:
    """A completion reported before its order is refused by the manufacturer and the distributor; `dlq list`
    shows both dead letters. Once the order is released, `dlq replay` puts the record back once: the completion
    flushes once. Replaying again publishes nothing, and even the replayed record sent again changes nothing."""
    stack = flows.stack
    await flows.complete("RPL-1", "4")
    early = await dead_letters(stack, "completions.shop-floor", key="RPL-1", until=2)
    event_id = early[0]["ce_id"]
    # and an unreadable record on another topic, so that the list shows more than one kind
    await send(stack, record_of(stack, c.CompletionReported(order_id="RPL-X", quantity=Decimal(1)),
                                value=b"not json at all"))
    await dead_letters(stack, "completions.shop-floor", key="RPL-X", until=2)

    listed = [d for d in dlq_list(stack) if d["key"] in ("RPL-1", "RPL-X")]
    assert sorted((d["key"], d["failed_by"], d["error_type"]) for d in listed) == [
        ("RPL-1", "distributor", "UnknownOrderError"),
        ("RPL-1", "manufacturer", "UnknownProductionOrderError"),
        ("RPL-X", "distributor", "not-json"),
        ("RPL-X", "manufacturer", "not-json"),
    ]
    for letter in listed:
        assert letter["dlq_topic"] == f"{stack.topic_prefix}completions.shop-floor.dlq"
        assert letter["original_topic"] == f"{stack.topic_prefix}completions.shop-floor"
        assert isinstance(letter["original_offset"], int) and letter["attempts"] == 1
        assert letter["failed_at"] and letter["error_message"] and letter["replayed"] is False
    refused = {d["failed_by"]: d for d in listed if d["key"] == "RPL-1"}
    assert "no production order" in refused["manufacturer"]["error_message"]
    assert refused["manufacturer"]["event_id"] == event_id
    table = backflush("dlq", "list", *broker_args(stack), "--topic", "completions.shop-floor")
    assert table.returncode == 0, table.stderr
    for text in ("4 dead letters", "UnknownProductionOrderError", "not-json", refused["manufacturer"]["id"]):
        assert text in table.stdout
    assert await listed_now(stack, "orders") == []

    # the cause is fixed: the order exists and is released
    await flows.place("RPL-1", flow="post", quantity="10")
    await flows.wait_production("RPL-1", "released")
    assert await flows.consumed_by("RPL-1") == RELEASE_OF_10

    ids = sorted(d["id"] for d in refused.values())
    planned = await replay_now(stack, ids=[ids[0]], dry_run=True)
    assert planned["dry_run"] is True and [sorted(r["dead_letters"]) for r in planned["replayed"]] == [ids]
    assert await flows.consumed_by("RPL-1") == RELEASE_OF_10  # a dry run publishes nothing

    replayed = dlq_replay(stack, "--topic", "completions.shop-floor", "--id", ids[1])
    [record] = replayed["replayed"]
    assert sorted(record["dead_letters"]) == ids  # both services' dead letters of the one record, put back once
    assert (record["topic"], record["key"], record["event_id"]) == (
        f"{stack.topic_prefix}completions.shop-floor", "RPL-1", event_id)
    await completed(flows, "RPL-1", 4)
    assert await flows.consumed_by("RPL-1") == {**RELEASE_OF_10, **AFTER_4}
    # the distributor took it too (it reads the replayed record before the ProductionCompleted behind it)
    await flows.wait_state("RPL-1", "in-production", waiting_for="completion of the remaining 6")
    assert (await flows.history("RPL-1")).count(c.CompletionReported.event_type) == 1

    async def inbox_outcome(session: Any) -> str:
        row = (await session.execute(manufacturer_inbox.select().where(manufacturer_inbox.c.event_id == event_id))
               ).mappings().one()
        return str(row["outcome"])
    assert await read_db(stack.database_url("manufacturer"), inbox_outcome) == "applied"

    # replaying again publishes nothing: both dead letters are marked replayed
    again = backflush("dlq", "replay", *broker_args(stack), "--topic", "completions.shop-floor")
    assert again.returncode == 0, again.stderr
    for text in ("replayed 0 records", "2 dead letters were replayed before and are left alone",
                 "2 dead letters of unreadable records left alone (name them with --id, or add --unreadable)"):
        assert text in again.stdout
    again = await replay_now(stack, topics=["completions.shop-floor"])
    assert again["replayed"] == [] and sorted(again["already_replayed"]) == ids
    unreadable = sorted(d["id"] for d in listed if d["key"] == "RPL-X")
    assert sorted(again["left_unreadable"]) == unreadable  # replayed only when asked for: it would fail again
    assert [sorted(r["dead_letters"]) for r in (await replay_now(stack, unreadable=True, dry_run=True))["replayed"]
            ] == [unreadable]
    assert {d["id"]: d["replayed"] for d in await listed_now(stack)} == {**dict.fromkeys(ids, True),
                                                                        **dict.fromkeys(unreadable, False)}

    # even the replayed record, sent once more by hand, is a duplicate for every inbox; the next completion counts
    on_topic = await read_topic(stack.bootstrap_servers, f"{stack.topic_prefix}completions.shop-floor", key="RPL-1",
                                until=2)
    [replayed_record] = [r for r in on_topic if HEADER_REPLAY_OF in r.headers]
    assert replayed_record.headers[HEADER_REPLAY_OF] in ids
    assert not any(name.startswith("dlq_") and name != HEADER_REPLAY_OF for name in replayed_record.headers)
    original = record_of(stack, c.CompletionReported(order_id="RPL-1", quantity=Decimal(4)))
    resent = type(original)(original.topic, b"RPL-1", replayed_record.value or b"",
                            [(k, v.encode()) for k, v in replayed_record.headers.items()])
    await send(stack, resent)
    await flows.complete("RPL-1", "1")
    await completed(flows, "RPL-1", 5)
    assert await flows.consumed_by("RPL-1") == {**RELEASE_OF_10, **AFTER_5}
    assert await flows.on_hand("CASTOR-50") == 650 - AFTER_5["CASTOR-50"]


async def test_a_replayed_event_refused_again_becomes_a_new_dead_letter(flows: Flows) -> None:
    """Replayed before its cause is fixed, a refused event is refused again: a new dead letter (pointing at the
    replayed record and naming the dead letter it replays) that can be replayed in turn once the order exists."""
    stack = flows.stack
    await flows.complete("RPL-2", "2")
    first = await dead_letters(stack, "completions.shop-floor", key="RPL-2", until=2)
    replayed = await replay_now(stack, ids=[first[0]["dlq_id"]])
    assert len(replayed["replayed"]) == 1
    letters = await dead_letters(stack, "completions.shop-floor", key="RPL-2", until=4)
    second = [h for h in letters if HEADER_REPLAY_OF in h]
    assert sorted(h["dlq_failed_by"] for h in second) == ["distributor", "manufacturer"]
    [replay_of] = {h[HEADER_REPLAY_OF] for h in second}
    assert replay_of in {h["dlq_id"] for h in first}
    assert {h["dlq_original_offset"] for h in second} != {h["dlq_original_offset"] for h in first}

    await flows.place("RPL-2", flow="post", quantity="2")
    await flows.wait_production("RPL-2", "released")
    result = await replay_now(stack, topics=["completions.shop-floor"])
    assert [sorted(r["dead_letters"]) for r in result["replayed"]] == [sorted(h["dlq_id"] for h in second)]
    await flows.wait_state("RPL-2", "shipped", waiting_for="signature")
    assert (await flows.production_order("RPL-2"))["completed"] == 2
    assert (await replay_now(stack))["replayed"] == []


async def test_audit_is_clean_after_normal_flows_and_names_each_breach(flows: Flows) -> None:
    stack = flows.stack
    await flows.place("AUD-PRE", flow="pre", quantity="2")
    await flows.place("AUD-POST", flow="post", quantity="3")
    await flows.place("AUD-X", flow="post", quantity="2")
    await flows.wait_production("AUD-POST", "released")
    await flows.complete("AUD-POST", "3")
    await flows.wait_state("AUD-POST", "shipped", waiting_for="signature")
    await flows.sign("AUD-POST", by="A. Auditor")
    await flows.wait_production("AUD-X", "released")
    await flows.complete("AUD-X", "1")

    async def consigned() -> bool:
        return any(u["status"] == "stored" for u in await flows.warehouse_units("AUD-X"))
    await eventually(consigned, what="AUD-X's first unit in consignment storage", stack=stack)
    await flows.cancel("AUD-X")
    await flows.complete("RPL-NONE", "1")  # a refusal: the inbox says refused, the outbox holds its dead letter
    await flows.wait_state("AUD-PRE", "closed")
    await flows.wait_state("AUD-POST", "closed")
    await flows.wait_state("AUD-X", "cancelled")
    await dead_letters(stack, "completions.shop-floor", key="RPL-NONE", until=2)

    async def released_units() -> bool:
        return any(u["status"] == "released" for u in await flows.warehouse_units("AUD-X"))
    await eventually(released_units, what="AUD-X's consignment units released", stack=stack)

    urls = {service: stack.database_url(service) for service in ("manufacturer", "distributor", "warehouse")}

    async def clean() -> list[Any] | None:
        findings = await audit(urls)
        return findings if all(f.ok for f in findings) else None
    findings = await eventually(clean, what="a clean audit", stack=stack)
    checks = {f.check: f for f in findings}
    # issue 17 added "warehouse: stock-flow allocations never above racked units", "manufacturer: owner stock never
    # negative" and "manufacturer: consigned lots consumed only by their owner's orders"
    assert len(checks) == 34
    assert checks["distributor: every order finished or waiting with a reason"].detail.startswith("3 orders:")
    assert checks["warehouse: consignment stock = stored - shipped"].detail == (
        "stored 4 - shipped 3 - released 1 = 0 in consignment stock"
    )
    assert "1 refused" in checks["manufacturer: refused events dead-lettered"].detail

    result = backflush("audit", *database_args(stack))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "clean: every check passed" in result.stdout

    # corrupt each database by hand, with the services stopped
    stack.stop()
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)).replace(tzinfo=None).isoformat(sep=" ")

    def sqlite(service: str, *statements: tuple[str, tuple[Any, ...]]) -> None:
        path = stack.database_url(service).removeprefix("sqlite+aiosqlite:///")
        with sqlite3.connect(path) as connection:
            for statement, parameters in statements:
                connection.execute(statement, parameters)

    movement = ("INSERT INTO ledger_movements (item, location, lot, quantity, reason, event_id, posted_at) "
                "VALUES (?, 'MAIN', ?, ?, 'backflush', 'by-hand', ?)")
    lost = ("INSERT INTO outbox (event_id, event_type, correlation_id, topic, record_key, value, headers, created_at) "
            "VALUES (?, 'backflush.order.forwarded', 'AUD-LOST', 'orders', ?, ?, '[]', ?)")
    sqlite("distributor",
           (lost, (str(uuid.uuid4()), b"AUD-LOST", b"{}", old)),
           ("UPDATE orders SET state = 'forwarded', waiting_for = NULL, waiting_since = NULL WHERE order_id = ?",
            ("AUD-PRE",)))
    sqlite("manufacturer",
           (movement, ("CASTOR-50", "GHOST-LOT", "-5", old)),
           (movement, ("SEAT-ASSY", "NEGATIVE", "-1", old)))
    sqlite("warehouse",
           ("UPDATE stock_units SET status = 'stored' WHERE order_id = ? AND status = 'delivered'", ("AUD-POST",)))

    findings = await audit(urls)
    failed = {f.check: f.detail for f in findings if not f.ok}
    assert sorted(failed) == [
        "distributor: every order finished or waiting with a reason",
        "distributor: no order went back from its end",
        "distributor: outbox fully published",
        "manufacturer: NEGATIVE lots only where the policy allows",
        "manufacturer: lots consumed first in first out",
        "manufacturer: no real lot ever below zero in the history",
        "manufacturer: no real lot negative",
        "warehouse: consignment stock = stored - shipped",
        "warehouse: shipments match the units shipped",
        "warehouse: used space = units stored, per location",
    ]
    assert failed["distributor: outbox fully published"].startswith("1 of ")
    assert "oldest 3h old; 1 older than 10s" in failed["distributor: outbox fully published"]
    assert failed["distributor: every order finished or waiting with a reason"].startswith("1 of 3 orders")
    assert "AUD-PRE (forwarded" in failed["distributor: every order finished or waiting with a reason"]
    assert failed["manufacturer: no real lot negative"] == "1 below zero: CASTOR-50/MAIN/GHOST-LOT = -5"
    assert "SEAT-ASSY (policy park)" in failed["manufacturer: NEGATIVE lots only where the policy allows"]
    assert "consignment stock 3 differs" in failed["warehouse: consignment stock = stored - shipped"]
    assert "AUD-POST: shipment of 3, units out 0" in failed["warehouse: shipments match the units shipped"]
    assert failed["manufacturer: no real lot ever below zero in the history"].startswith(
        "1 went below zero: CASTOR-50/MAIN/GHOST-LOT -5 at movement #")
    assert "took CASTOR-50/MAIN/GHOST-LOT while" in failed["manufacturer: lots consumed first in first out"]
    assert failed["distributor: no order went back from its end"] == (
        "1 went back: AUD-PRE: stored forwarded, history ends closed")
    # the ledger itself still adds up: the domain and the raw sums agree on the corrupted rows too
    assert next(f for f in findings if f.check == "manufacturer: ledger balances = sums of movements").ok

    result = backflush("audit", *database_args(stack))
    assert result.returncode == 1
    assert result.stdout.count("FAIL") == 10 and "10 breaches" in result.stdout
    # under a global `allow` policy (read from the manufacturer's variable) the negative SEAT-ASSY lot is no breach
    allowed = backflush("audit", *database_args(stack), "--json", env={"BACKFLUSH_NEGATIVE_STOCK_POLICY": "allow"})
    assert allowed.returncode == 1
    as_json = json.loads(allowed.stdout)
    assert as_json["ok"] is False and len(as_json["findings"]) == 34
    assert sorted(f["check"] for f in as_json["findings"] if not f["ok"]) == [
        check for check in sorted(failed) if check != "manufacturer: NEGATIVE lots only where the policy allows"
    ]
