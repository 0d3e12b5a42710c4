"""How one record is read: every unreadable or misaddressed record is a `RejectedRecord` with its reason, never
an exception, and a defect in our own handler is refused at once, not retried as if the database had hiccupped."""

from __future__ import annotations

import base64
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaMessage
from faststream.kafka.parser import AioKafkaBatchParser
from sqlalchemy import select

from support.consumed import Record

from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.topics import TopicNames
from backflush_shared.messaging.codec import ConsumedEvent, RejectedRecord, decode, encode
from backflush_shared.unit_of_work import UnitOfWork
from backflush_shared.messaging.publish import envelope_for, source_for
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.persistence.urls import masked_url
from backflush_shared.service import ServiceRuntime, _parse_batch
from backflush_shared.settings import ServiceSettings

from backflush_distributor.adapters.tables import inbox, outbox
from backflush_distributor.app import SERVICE as DISTRIBUTOR

TOPICS = TopicNames("p.")


def placed(order_id: str = "R-1") -> o.OrderPlaced:
    return o.OrderPlaced(order_id=order_id, order_holder="Reader Ltd", flow="pre", item="CHAIR-ERGO",
                         quantity=Decimal("1.5"), ship_to="1 Read Road", due_date=dt.date(2030, 1, 1))


def record(event: Any = None, *, value: bytes | None = None, topic: str | None = None,
           extra_headers: list[tuple[str, bytes]] = (), header_changes: dict[str, bytes] | None = None) -> Record:
    event = event or placed()
    source = source_for(event, otherwise="/backflush/tests")  # a service topic's events come from its writer
    encoded = encode(event, envelope_for(event, source), TOPICS(event.topic))
    changes = header_changes or {}
    headers = [(name, changes.get(name, raw)) for name, raw in encoded.headers] + list(extra_headers)
    return Record(topic or encoded.topic, 0, 7, encoded.key, encoded.value if value is None else value, headers)


def rejected(item: Any) -> RejectedRecord:
    assert isinstance(item, RejectedRecord), item
    return item


def test_a_well_formed_record_is_read() -> None:
    assert isinstance(decode(record(), topics=TOPICS), ConsumedEvent)


def test_json_nested_thousands_deep_is_too_deep_not_an_exception() -> None:
    deep = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
    item = rejected(decode(record(value=deep)))
    assert (item.error_type, item.event_type) == ("too-deep", o.OrderPlaced.event_type)
    assert "nested too deep" in item.reason


def test_a_header_that_is_not_utf8_is_malformed_and_keeps_the_readable_type() -> None:
    item = rejected(decode(record(extra_headers=[("x-trace", b"\xc3\x28")])))
    assert (item.error_type, item.reason) == ("malformed-header", "header 'x-trace' is not UTF-8 text")
    assert item.event_type == o.OrderPlaced.event_type  # so that only the services handling it dead-letter it


def test_a_header_sent_twice_is_refused() -> None:
    item = rejected(decode(record(extra_headers=[("ce_source", b"/someone/else")])))
    assert (item.error_type, item.reason) == ("duplicate-header", "header 'ce_source' appears more than once")


def test_a_type_sent_twice_names_no_type() -> None:
    item = rejected(decode(record(extra_headers=[("ce_type", b"backflush.master.components-received")])))
    assert (item.error_type, item.event_type) == ("duplicate-header", None)


def test_a_correlation_id_that_is_not_the_order_is_refused() -> None:
    item = rejected(decode(record(header_changes={"ce_correlationid": b"SOMEONE-ELSE"})))
    assert item.error_type == "correlation-mismatch"
    assert "'SOMEONE-ELSE'" in item.reason and "'R-1'" in item.reason


def test_master_data_correlates_by_item_and_is_not_checked_against_an_order() -> None:
    receipt = md.ComponentsReceived(receipt_id="R-1", item="SEAT-ASSY", lot="L1", quantity=Decimal(3))
    assert isinstance(decode(record(receipt), topics=TOPICS), ConsumedEvent)


def test_an_event_on_a_topic_that_is_not_its_own_is_refused() -> None:
    receipt = md.ComponentsReceived(receipt_id="R-1", item="SEAT-ASSY", lot="L1", quantity=Decimal(3))
    item = rejected(decode(record(receipt, topic="p.orders"), topics=TOPICS))
    assert item.error_type == "wrong-topic"
    assert item.reason == f"{md.ComponentsReceived.event_type} belongs on 'p.master-data', not on 'p.orders'"


@pytest.mark.parametrize("number", [2.0, 3, 2.5])
def test_a_quantity_sent_as_a_json_number_is_refused(number: float) -> None:
    data = json.loads(placed().model_dump_json())
    data["quantity"] = number
    item = rejected(decode(record(value=json.dumps(data).encode())))
    assert item.error_type == "invalid-event"
    assert "quantity" in item.reason and "never as a JSON number" in item.reason


def test_a_value_is_read_as_the_event_that_parsing_then_validating_it_gives() -> None:
    """One pydantic step reads what `json.loads` then `model_validate` read: text stripped, a repeated key's last
    value taken (here a changed ship-to), whitespace between tokens ignored."""
    value = (b'{ "order_id": "R-1", "order_holder": "  Reader Ltd ", "flow": "pre", "item": "CHAIR-ERGO", '
             b'"quantity": "1.5", "ship_to": "first", "due_date": "2030-01-01", "ship_to": "1 Read Road" }')
    item = decode(record(value=value), topics=TOPICS)
    assert isinstance(item, ConsumedEvent)
    assert item.event == o.OrderPlaced.model_validate(json.loads(value)) == placed()


@pytest.mark.parametrize(("value", "reason"), [
    (b"{not json", "the value is not JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
                   "(char 1)"),
    (b'{"a": "\xc3\x28"}', "the value is not JSON: 'utf-8' codec can't decode byte 0xc3 in position 7: invalid "
                         "continuation byte"),
    (b'{"order_id": "R-1"}', "OrderPlaced: order_holder: Field required; flow: Field required; item: Field "
                             "required; quantity: Field required; ship_to: Field required"),
])
def test_a_refused_value_gets_the_reason_of_the_step_that_refused_it(value: bytes, reason: str) -> None:
    item = rejected(decode(record(value=value), topics=TOPICS))
    assert (item.error_type, item.reason) == ("not-json" if "JSON" in reason else "invalid-event", reason)


def test_an_event_id_sent_in_capitals_is_filed_under_its_canonical_form() -> None:
    encoded = record()
    sent = dict(encoded.headers)["ce_id"]
    item = decode(record(header_changes={"ce_id": sent.upper()}), topics=TOPICS)
    assert isinstance(item, ConsumedEvent)
    assert item.event_id == str(item.envelope.event_id) == sent.decode()  # what the inbox and history store


def test_our_own_encoder_sends_decimals_as_strings() -> None:
    line = md.BomLineDefinition(component="SEAT", quantity_per=Decimal("2.5"), scrap_factor=Decimal("0.1"),
                                flush="pre")
    assert json.loads(placed().model_dump_json())["quantity"] == "1.5"
    assert json.loads(line.model_dump_json()) == {"component": "SEAT", "quantity_per": "2.5",
                                                  "scrap_factor": "0.1", "flush": "pre"}


async def test_the_batch_parser_leaves_every_header_to_our_codec() -> None:
    """FastStream's own parser decodes every header as UTF-8 and so raised for the whole batch."""
    good = ConsumerRecord("p.orders", 0, 1, 0, 0, b"k", b"{}", None, 2, 2, [("ce_id", b"x")])
    bad = ConsumerRecord("p.orders", 0, 2, 0, 0, b"k", b"{}", None, 2, 2, [("x-trace", b"\xc3\x28")])
    original = AioKafkaBatchParser(KafkaMessage, None).parse_batch
    with pytest.raises(UnicodeDecodeError):
        await original((good, bad))
    message = await _parse_batch((good, bad), original)
    assert message.raw_message == (good, bad)
    assert message.raw_message[1].headers == [("x-trace", b"\xc3\x28")]


async def test_a_handler_building_an_invalid_event_is_refused_at_once(tmp_path: Path) -> None:
    """A pydantic ValidationError from our own handler is a defect: dead-lettered on the first attempt with its
    message, the inbox says refused, nothing the handler wrote stays; it is not retried five times."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'distributor.db'}"
    await upgrade_to_head_async(url, DISTRIBUTOR.migrations)
    runtime = ServiceRuntime.create(DISTRIBUTOR, ServiceSettings(service="distributor", database_url=url))
    assert runtime.processor is not None

    async def buggy(uow: UnitOfWork, event: o.OrderPlaced) -> None:
        await uow.emit(o.OrderForwarded.model_validate({"order_id": "R-1"}))

    runtime.processor.handlers[o.OrderPlaced] = buggy
    try:
        result = await runtime.processor.process([record()])
        assert (result.refused, result.dead_lettered, result.applied) == (1, 1, 0)
        async with runtime.database.reading() as session:
            outcomes = [r.outcome for r in (await session.execute(select(inbox))).all()]
            written = (await session.execute(select(outbox))).mappings().all()
        assert outcomes == ["refused"]
        [letter] = written
        assert letter["topic"] == "p.orders.intake.dlq"
        decoded = {name: base64.b64decode(value).decode() for name, value in json.loads(letter["headers"])}
        assert decoded["dlq_error_type"] == "internal-validation-error"
        assert decoded["dlq_attempts"] == "1"
        assert decoded["dlq_error_message"].startswith("OrderForwarded: ")
    finally:
        await runtime.database.close()


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+asyncpg://app:s3cret@db:5432/x", "postgresql+asyncpg://app:****@db:5432/x"),
    ("postgresql://app:p@ss:w0rd@db/x", "postgresql://app:****@db/x"),
    ("error: cannot open postgresql://app:pw@db/x (refused)", "error: cannot open postgresql://app:****@db/x (refused)"),
    ("postgresql://bf:s3cr/et@db/x", "postgresql://bf:****@db/x"),
    ("cannot open postgresql://bf:s3cr/et@db/x (refused)", "cannot open postgresql://bf:****@db/x (refused)"),
    ("postgresql://bf@db/x?password=s3cret&sslmode=require", "postgresql://bf@db/x?password=****&sslmode=require"),
    ("refused: postgresql://db/x?sslmode=require&password=s3cr/et",
     "refused: postgresql://db/x?sslmode=require&password=****"),
    ("postgresql://db/x", "postgresql://db/x"),
    ("sqlite+aiosqlite:///var/warehouse.db", "sqlite+aiosqlite:///var/warehouse.db"),
])
def test_a_database_url_in_a_message_never_shows_its_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown
