"""The bad input catalogue, each tried over the real broker against the three services as separate processes.

Every case asserts both halves of the promise: the bad record is dead-lettered with a clear reason in its headers
(and logged with it), and the service then processes the next message normally - the next message being a good
one with the same key, so on the same partition, right behind the bad one.

An unknown order is covered in test_odd_and_bad_input.py; an unknown item is a business refusal, not a dead letter.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import orders as o
from backflush_shared.local_stack import LocalStack
from support.broker import Broker
from support.e2e_paths import SAMPLE_DATA
from support.flows import Flows
from support.records import (
    dead_letters,
    dead_letters_by_service,
    json_with,
    record_of,
    records_on,
    send,
    wait_logged,
)
from support.stack import make_stack

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

#: The distributor's record size limit in this module (the smallest the setting allows is 1024 bytes).
SMALL_LIMIT = 2048


@pytest.fixture(scope="module")
async def catalogue(kafka: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Flows]:
    """One stack for the whole catalogue (each case uses keys of its own); the distributor takes small records."""
    stack = make_stack(kafka.bootstrap_servers, tmp_path_factory.mktemp("catalogue"),
                       extra_env={"distributor": {"BACKFLUSH_MAX_VALUE_BYTES": str(SMALL_LIMIT)}})
    stack.start()
    try:
        flows = Flows(stack)
        await flows.load_master_data(SAMPLE_DATA)
        yield flows
    finally:
        stack.stop()


def placed(order_id: str, *, quantity: str = "1", flow: str = "pre", item: str = "CHAIR-ERGO") -> o.OrderPlaced:
    return o.OrderPlaced(order_id=order_id, order_holder="Catalogue Ltd", flow=flow, item=item,
                         quantity=Decimal(quantity), ship_to="7 Test Lane", due_date=dt.date.today())


def assert_origin(letter: dict[str, str], stack: LocalStack, topic: str) -> None:
    """The headers every dead letter carries: where the record was, when, by whom, after how many attempts."""
    assert letter["dlq_original_topic"] == f"{stack.topic_prefix}{topic}"
    assert letter["dlq_original_partition"].isdigit() and letter["dlq_original_offset"].isdigit()
    assert letter["dlq_attempts"] == "1"
    assert letter["dlq_failed_at"] and letter["dlq_id"].startswith(f"dlq:{letter['dlq_failed_by']}:")


async def next_order_goes_through(flows: Flows, order_id: str) -> None:
    """A good order with the same key as the bad record: same partition, right behind it, processed normally."""
    await flows.place(order_id, flow="pre", quantity="1")
    await flows.wait_state(order_id, "closed")


async def assert_unreadable(flows: Flows, key: str, error_type: str, *, services: tuple[str, ...] = ("distributor",),
                            topic: str = "orders.intake") -> dict[str, dict[str, str]]:
    letters = await dead_letters_by_service(flows.stack, topic, key=key, services=services)
    for service, letter in letters.items():
        assert letter["dlq_error_type"] == error_type, (service, letter)
        assert_origin(letter, flows.stack, topic)
        await wait_logged(flows.stack, service, "unreadable record dead-lettered", error_type=error_type,
                          offset=letter["dlq_original_offset"], topic=letter["dlq_original_topic"])
    return letters


async def test_bytes_that_are_not_json(catalogue: Flows) -> None:
    await send(catalogue.stack, record_of(catalogue.stack, placed("CAT-NOTJSON"), value=b"\x89PNG\r\n\x1a\n{oops"))
    letters = await assert_unreadable(catalogue, "CAT-NOTJSON", "not-json")
    assert "the value is not JSON" in letters["distributor"]["dlq_error_message"]
    await next_order_goes_through(catalogue, "CAT-NOTJSON")


async def test_json_failing_validation(catalogue: Flows) -> None:
    bad = json_with(placed("CAT-INVALID"), ship_to=None, colour="red")
    await send(catalogue.stack, record_of(catalogue.stack, placed("CAT-INVALID"), value=bad))
    letters = await assert_unreadable(catalogue, "CAT-INVALID", "invalid-event")
    message = letters["distributor"]["dlq_error_message"]
    assert message.startswith("OrderPlaced: ") and "ship_to: Field required" in message and "colour" in message
    await next_order_goes_through(catalogue, "CAT-INVALID")


async def test_an_unknown_event_type(catalogue: Flows) -> None:
    """No service knows the type, so each one reading `orders.intake` sets it aside: it may have been meant for any."""
    record = record_of(catalogue.stack, placed("CAT-TYPE"), header_changes={"ce_type": "backflush.order.teleported"})
    await send(catalogue.stack, record)
    letters = await assert_unreadable(catalogue, "CAT-TYPE", "unknown-event-type",
                                      services=("distributor", "warehouse"))
    assert all("'backflush.order.teleported'" in h["dlq_error_message"] for h in letters.values())
    await next_order_goes_through(catalogue, "CAT-TYPE")


async def test_an_unknown_schema_version(catalogue: Flows) -> None:
    record = record_of(catalogue.stack, placed("CAT-VERSION"), header_changes={"ce_schemaversion": "7"})
    await send(catalogue.stack, record)
    letters = await assert_unreadable(catalogue, "CAT-VERSION", "unknown-schema-version")
    assert letters["distributor"]["dlq_error_message"] == "backflush.order.placed has no schema version 7 (known: 1)"
    await next_order_goes_through(catalogue, "CAT-VERSION")


async def test_missing_headers(catalogue: Flows) -> None:
    """Without `ce_id` and `ce_time` the event has no identity: the distributor, whose type it is, sets it aside.
    Without any header at all nobody can tell whose it is, so every service reading the topic sets it aside."""
    stack = catalogue.stack
    await send(stack,
               record_of(stack, placed("CAT-HEADERS"), drop_headers=["ce_id", "ce_time"]),
               record_of(stack, placed("CAT-NOHEADERS"), no_headers=True))
    letters = await assert_unreadable(catalogue, "CAT-HEADERS", "missing-headers")
    assert letters["distributor"]["dlq_error_message"] == "missing CloudEvents headers: ce_id, ce_time"
    bare = await assert_unreadable(catalogue, "CAT-NOHEADERS", "missing-headers",
                                   services=("distributor", "warehouse"))
    assert all(h["dlq_error_message"].startswith("missing CloudEvents headers: ce_id, ce_type, ce_source")
               for h in bare.values())
    await next_order_goes_through(catalogue, "CAT-HEADERS")
    await next_order_goes_through(catalogue, "CAT-NOHEADERS")


async def test_a_message_over_the_size_limit(catalogue: Flows) -> None:
    """A valid order padded past the distributor's BACKFLUSH_MAX_VALUE_BYTES: set aside unread, for its size."""
    value = placed("CAT-BIG").model_dump_json().encode()
    padded = value[:-1] + b" " * (3 * SMALL_LIMIT) + b"}"
    assert json.loads(padded) == json.loads(value)
    await send(catalogue.stack, record_of(catalogue.stack, placed("CAT-BIG"), value=padded))
    letters = await assert_unreadable(catalogue, "CAT-BIG", "too-large")
    assert letters["distributor"]["dlq_error_message"] == (
        f"the value has {len(padded)} bytes, over the limit of {SMALL_LIMIT}"
    )
    await next_order_goes_through(catalogue, "CAT-BIG")


async def test_negative_or_zero_quantities(catalogue: Flows) -> None:
    """An order for 0 and completions of -2 and 0 break the contract (quantities are > 0): set aside by every
    service that handles them; the order then completes with a good completion, on the same partition."""
    stack = catalogue.stack
    await send(stack, record_of(stack, placed("CAT-ZERO"), value=json_with(placed("CAT-ZERO"), quantity="0")))
    letters = await assert_unreadable(catalogue, "CAT-ZERO", "invalid-event")
    assert "quantity: Input should be greater than 0" in letters["distributor"]["dlq_error_message"]
    await next_order_goes_through(catalogue, "CAT-ZERO")

    await catalogue.place("CAT-NEG", flow="post", quantity="2")
    await catalogue.wait_production("CAT-NEG", "released")
    completion = c.CompletionReported(order_id="CAT-NEG", quantity=Decimal(1))
    await send(stack,
               record_of(stack, completion, value=json_with(completion, quantity="-2")),
               record_of(stack, completion, value=json_with(completion, quantity="0")))
    every = await dead_letters(stack, "completions.shop-floor", key="CAT-NEG", until=4)
    assert sorted((h["dlq_failed_by"], h["dlq_error_type"]) for h in every) == [
        ("distributor", "invalid-event"), ("distributor", "invalid-event"),
        ("manufacturer", "invalid-event"), ("manufacturer", "invalid-event"),
    ]
    assert all("quantity: Input should be greater than 0" in h["dlq_error_message"] for h in every)
    assert (await catalogue.production_order("CAT-NEG"))["completed"] == 0
    await catalogue.complete("CAT-NEG", "2")
    await catalogue.wait_state("CAT-NEG", "shipped", waiting_for="signature")
    assert (await catalogue.consumed_by("CAT-NEG"))["SEAT-ASSY"] == 2


async def test_an_unknown_item_is_rejected_with_the_reason(catalogue: Flows) -> None:
    """Not a dead letter but a business refusal: the manufacturer rejects the order, code `unknown-item`, and the
    order ends rejected with that reason; the next order goes through."""
    await catalogue.place("CAT-ITEM", flow="pre", quantity="3", item="NO-SUCH-ITEM")
    [rejected] = await records_on(catalogue.stack, "completions", key="CAT-ITEM",
                                  event_type=c.ProductionOrderRejected.event_type)
    event = c.ProductionOrderRejected.model_validate_json(rejected.value or b"")
    assert event.code == "unknown-item"
    assert "NO-SUCH-ITEM" in event.reason
    order = await catalogue.wait_state("CAT-ITEM", "rejected")
    assert order["waiting_for"] is None
    assert await catalogue.production_order("CAT-ITEM") is None  # a refusal leaves no order behind (README)
    assert await catalogue.consumed_by("CAT-ITEM") == {}
    await next_order_goes_through(catalogue, "CAT-ITEM-NEXT")


async def test_a_reused_event_id_with_different_content(catalogue: Flows) -> None:
    """The same `ce_id` for another content is not a redelivery: the inbox calls it a conflict, the first one
    stands, and the order goes on."""
    stack = catalogue.stack
    event_id = uuid.uuid4()
    await send(stack, record_of(stack, placed("CAT-REUSE", quantity="1"), event_id=event_id))
    await catalogue.wait_state("CAT-REUSE", "closed")
    await send(stack, record_of(stack, placed("CAT-REUSE", quantity="9"), event_id=event_id))
    letters = await dead_letters_by_service(stack, "orders.intake", key="CAT-REUSE", services=["distributor"])
    letter = letters["distributor"]
    assert letter["dlq_error_type"] == "event-id-conflict"
    assert letter["dlq_error_message"] == f"event id {event_id} was already processed with different content"
    assert letter["ce_id"] == str(event_id)
    assert_origin(letter, stack, "orders.intake")
    await wait_logged(stack, "distributor", "event id reused with different content: dead-lettered",
                      event_id=str(event_id))
    order = await catalogue.order("CAT-REUSE")
    assert order is not None and order["quantity"] == 1 and order["state"] == "closed"
    await next_order_goes_through(catalogue, "CAT-REUSE-NEXT")


async def test_events_out_of_order(catalogue: Flows) -> None:
    """An inventory check returned and goods signed for, before the order exists: each refused with the reason by
    every service that applies it; then the real sequence of the same order runs to the end."""
    stack = catalogue.stack
    now = dt.datetime.now(dt.UTC)
    early = [
        c.InventoryCheckReturned(order_id="CAT-EARLY", item="CHAIR-ERGO", lot="CAT-EARLY-1", quantity=Decimal(1),
                                 locations=["DC-A1"]),
        c.GoodsSignedFor(order_id="CAT-EARLY", item="CHAIR-ERGO", quantity=Decimal(1), signed_by="Nobody Yet",
                         signed_at=now, previous_owner="manufacturer", new_owner="Catalogue Ltd"),
    ]
    await catalogue.publish(*early)
    letters = await dead_letters(stack, "completions.warehouse", key="CAT-EARLY", until=4)
    seen = sorted((h["ce_type"].rsplit(".", 1)[-1], h["dlq_failed_by"], h["dlq_error_type"]) for h in letters)
    assert seen == [
        ("goods-signed-for", "distributor", "UnknownOrderError"),
        ("goods-signed-for", "manufacturer", "UnknownProductionOrderError"),
        ("inventory-check-returned", "distributor", "UnknownOrderError"),
        ("inventory-check-returned", "manufacturer", "UnknownProductionOrderError"),
    ]
    for letter in letters:
        assert_origin(letter, stack, "completions.warehouse")
        assert "CAT-EARLY" in letter["dlq_error_message"]
        await wait_logged(stack, letter["dlq_failed_by"], "event refused", event_id=letter["ce_id"],
                          error_type=letter["dlq_error_type"])
    await catalogue.place("CAT-EARLY", flow="pre", quantity="1")
    await catalogue.wait_state("CAT-EARLY", "closed")
    assert (await catalogue.production_order("CAT-EARLY"))["status"] == "allocated"
