"""Who an event says it is from: on a service's topic `ce_source` must name that topic's one writer (the topic is
what the broker vouches for, so a record claiming another service is refused), while an intake takes any source."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from support.consumed import Record

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.topics import Topic, TopicNames, Writer
from backflush_shared.messaging.codec import ConsumedEvent, RejectedRecord, decode, encode
from backflush_shared.messaging.publish import envelope_for, source_for

TOPICS = TopicNames("p.")


def record(event: Event, source: str) -> Record:
    encoded = encode(event, envelope_for(event, source), TOPICS(event.topic))
    return Record(encoded.topic, 0, 3, encoded.key, encoded.value, encoded.headers)


def shipped() -> c.GoodsShipped:
    return c.GoodsShipped(order_id="S-1", item="CHAIR-ERGO", quantity=Decimal(2), ship_to="1 Ship Road",
                          lots=["L1"])


def placed() -> o.OrderPlaced:
    return o.OrderPlaced(order_id="S-2", order_holder="Source Ltd", flow="pre", item="CHAIR-ERGO",
                         quantity=Decimal(1), ship_to="2 Ship Road", due_date=dt.date(2030, 1, 1))


def test_a_service_event_claiming_another_service_as_its_source_is_refused_naming_both() -> None:
    item = decode(record(shipped(), "/backflush/manufacturer"), topics=TOPICS)
    assert isinstance(item, RejectedRecord), item
    assert (item.error_type, item.event_type) == ("source-mismatch", c.GoodsShipped.event_type)
    assert item.reason == (f"{c.GoodsShipped.event_type} on 'p.completions.warehouse' comes only from "
                           f"'/backflush/warehouse', not from '/backflush/manufacturer'")


def test_a_service_event_from_its_topics_writer_is_read() -> None:
    assert isinstance(decode(record(shipped(), "/backflush/warehouse"), topics=TOPICS), ConsumedEvent)


@pytest.mark.parametrize("source", ["/backflush/cli", "/backflush/distributor", "/some/drivers-app"])
def test_an_intake_event_is_read_whatever_its_source(source: str) -> None:
    assert isinstance(decode(record(placed(), source), topics=TOPICS), ConsumedEvent)


def test_the_source_for_an_event_is_its_writers_on_a_service_topic_and_the_callers_on_an_intake() -> None:
    assert source_for(shipped(), otherwise="/backflush/tests") == "/backflush/warehouse"
    assert source_for(placed(), otherwise="/backflush/tests") == "/backflush/tests"
    assert Topic.ORDERS.writer.source == "/backflush/distributor"
    assert Writer.SHOP_FLOOR.source is None
