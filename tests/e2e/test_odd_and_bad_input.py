"""Odd order and bad input: each refused with a clear reason, none corrupting state, the services going on."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from backflush_shared.contracts import orders as o
from backflush_shared.contracts.envelope import Envelope
from backflush_shared.local_stack import LocalStack
from backflush_shared.messaging.codec import encode
from backflush_shared.messaging.publish import EventPublisher
from support.e2e_paths import SAMPLE_DATA
from support.broker import Broker
from support.flows import Flows
from support.stack import eventually, make_stack
from support.topics import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def dead_letters(stack: LocalStack, topic: str, *, key: str, until: int = 1) -> list[dict[str, str]]:
    records = await read_topic(stack.bootstrap_servers, f"{stack.topic_prefix}{topic}.dlq", key=key, until=until)
    return [r.headers for r in records]


async def test_an_event_for_an_unknown_order_is_dead_lettered_with_the_reason(flows: Flows) -> None:
    """A completion reported before any order exists ("a completion before its order") is refused by the
    manufacturer, and by the distributor, which has no order to file it under; the next order goes through."""
    await flows.complete("NO-SUCH-ORDER", "3")
    letters = await dead_letters(flows.stack, "completions.shop-floor", key="NO-SUCH-ORDER", until=2)
    by_service = {h["dlq_failed_by"]: h for h in letters}
    assert sorted(by_service) == ["distributor", "manufacturer"]
    assert by_service["distributor"]["dlq_error_type"] == "UnknownOrderError"
    letter = by_service["manufacturer"]
    assert letter["dlq_error_type"] == "UnknownProductionOrderError"
    assert "no production order" in letter["dlq_error_message"]
    assert letter["dlq_failed_by"] == "manufacturer"
    assert letter["dlq_original_topic"] == f"{flows.stack.topic_prefix}completions.shop-floor"
    await flows.place("AFTER-1", flow="pre", quantity="1")
    await flows.wait_state("AFTER-1", "closed")


async def test_a_duplicate_order_id_with_different_content_is_refused_and_the_first_stands(flows: Flows) -> None:
    await flows.place("DUP-1", flow="pre", quantity="2")
    await flows.wait_state("DUP-1", "closed")
    await flows.place("DUP-1", flow="pre", quantity="7")
    [letter] = await dead_letters(flows.stack, "orders.intake", key="DUP-1")
    assert letter["dlq_error_type"] == "DuplicateOrderError"
    assert "first one stands" in letter["dlq_error_message"]
    order = await flows.order("DUP-1")
    assert order is not None and order["quantity"] == 2 and order["state"] == "closed"
    assert (await flows.consumed_by("DUP-1"))["SEAT-ASSY"] == 2


async def test_a_completion_over_the_order_quantity_is_refused_and_posts_nothing(flows: Flows) -> None:
    await flows.place("QTY-1", flow="post", quantity="5")
    await flows.wait_production("QTY-1", "released")
    released = await flows.consumed_by("QTY-1")
    await flows.complete("QTY-1", "6")
    [letter] = await dead_letters(flows.stack, "completions.shop-floor", key="QTY-1")
    assert letter["dlq_error_type"] == "CompletionExceedsOrderError"
    assert "exceeds what remains to complete: 5 of 5" in letter["dlq_error_message"]
    assert await flows.consumed_by("QTY-1") == released
    await flows.complete("QTY-1", "5")
    await flows.wait_state("QTY-1", "shipped", waiting_for="signature")


async def test_a_signature_for_an_order_not_shipped_is_refused(flows: Flows) -> None:
    await flows.place("SIGN-1", flow="post", quantity="3")
    await flows.wait_production("SIGN-1", "released")
    await flows.sign("SIGN-1", by="Too Early")
    [letter] = await dead_letters(flows.stack, "orders.intake", key="SIGN-1")
    assert (letter["dlq_failed_by"], letter["dlq_error_type"]) == ("warehouse", "NotShippedError")
    assert "not shipped" in letter["dlq_error_message"]
    order = await flows.order("SIGN-1")
    assert order is not None and order["state"] == "forwarded" and order["waiting_for"] == "production"


async def test_unreadable_records_are_dead_lettered_and_the_next_order_goes_through(flows: Flows) -> None:
    """Not JSON, failing validation, an unknown type, an unknown version: each set aside on orders.intake.dlq with the
    reason and its origin, by the distributor that could not read it; then a good order is processed."""
    stack = flows.stack
    good = o.OrderPlaced(order_id="BAD-0", order_holder="x", flow="pre", item="CHAIR-ERGO", quantity=Decimal(1),
                         ship_to="x", due_date=dt.date.today())

    def record(key: str, value: bytes, **header_changes: str) -> object:
        envelope = Envelope.new(event_type=good.event_type, schema_version=1, correlation_id=key, source="/tests")
        encoded = encode(good, envelope, f"{stack.topic_prefix}{good.topic}")
        headers = [(k, header_changes[k].encode() if k in header_changes else v) for k, v in encoded.headers]
        return type(encoded)(encoded.topic, key.encode(), value, headers)

    not_json = record("BAD-1", b"{not json")
    invalid = record("BAD-2", json.dumps({**good.model_dump(mode="json"), "quantity": "-3"}).encode())
    unknown_type = record("BAD-3", good.model_dump_json().encode(), ce_type="backflush.order.teleported")
    unknown_version = record("BAD-4", good.model_dump_json().encode(), ce_schemaversion="9")
    async with EventPublisher(stack.bootstrap_servers, topic_prefix=stack.topic_prefix) as publisher:
        await publisher.send_records([not_json, invalid, unknown_type, unknown_version])  # type: ignore[list-item]
    await flows.place("GOOD-1", flow="pre", quantity="1")
    await flows.wait_state("GOOD-1", "closed")

    expected = {"BAD-1": "not-json", "BAD-2": "invalid-event", "BAD-3": "unknown-event-type",
                "BAD-4": "unknown-schema-version"}
    for key, error_type in expected.items():
        letters = await dead_letters(stack, "orders.intake", key=key)
        by_distributor = [h for h in letters if h["dlq_failed_by"] == "distributor"]
        assert [h["dlq_error_type"] for h in by_distributor] == [error_type], key
        assert by_distributor[0]["dlq_original_topic"] == f"{stack.topic_prefix}orders.intake"
        assert by_distributor[0]["dlq_original_offset"].isdigit()
    invalid_letter = (await dead_letters(stack, "orders.intake", key="BAD-2"))[0]
    assert "quantity" in invalid_letter["dlq_error_message"]
    assert await flows.order("BAD-2") is None


async def test_an_order_waits_visibly_for_rack_space_and_can_be_cancelled_while_it_waits(
    kafka: Broker, tmp_path: Path
) -> None:
    """One rack of 12: a first order of 10 is racked; a second of 5 is produced but waits for rack space and says
    so. Cancelling it drops the waiting put-away and reverses its flushes; the first order's rack stays used."""
    stack = make_stack(kafka.bootstrap_servers, tmp_path / "stack",
                       extra_env={"warehouse": {"BACKFLUSH_RACKS": "DC-A1=12"}})
    stack.start()
    try:
        flows = Flows(stack)
        await flows.load_master_data(SAMPLE_DATA)
        await flows.place("RACK-1", flow="pre", quantity="10")
        await flows.wait_state("RACK-1", "closed")
        await flows.place("RACK-2", flow="pre", quantity="5")
        waiting = await flows.wait_state("RACK-2", "directed-to-racks",
                                         waiting_for="rack space: 5 units needed, 2 free")
        assert waiting["waiting_since"] is not None
        [put_away] = await flows.waiting_put_aways()
        assert (put_away["order_id"], put_away["quantity"]) == ("RACK-2", Decimal(5))

        await flows.cancel("RACK-2", reason="no room at the distribution center")
        await flows.wait_state("RACK-2", "cancelled")

        async def reversed_() -> bool:
            return await flows.consumed_by("RACK-2") == {} and await flows.waiting_put_aways() == []
        await eventually(reversed_, what="RACK-2 reversed and its put-away dropped", stack=stack)
        assert [(u["order_id"], u["location"], u["quantity"]) for u in await flows.warehouse_units()] == [
            ("RACK-1", "DC-A1", Decimal(10))
        ]
    finally:
        stack.stop()
