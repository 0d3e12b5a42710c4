"""Who may say what (issue 16): on a broker with SASL_SSL and ACLs, each event can only come from the principal
that writes its topic. Every forgery the issue found is refused by the broker, and no service changes; a principal
allowed on a topic that sends an event type the topic does not carry is dead-lettered with the reason."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import ClusterAuthorizationFailedError, TopicAuthorizationFailedError

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import inventory_details as inv
from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.topics import Topic, TopicNames
from backflush_shared.local_kafka import LocalKafka
from backflush_shared.messaging.codec import encode
from backflush_shared.messaging.publish import envelope_for, publish
from support.broker import SECURE_USERS, SPEAKER_OF
from support.flows import Flows
from support.stack import eventually
from support.topics import read_to_end

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

ORDER = "FORGE-POST-1"
#: What the client is told: no right to write the topic, or (a reader) no right to produce at all.
REFUSED = (TopicAuthorizationFailedError, ClusterAuthorizationFailedError)
NOW = dt.datetime.now(dt.UTC)


def forgeries() -> list[Event]:
    """The issue's forgeries, each against the open post-product order `ORDER`."""
    return [
        c.OrderClosed(order_id=ORDER, closed_by="distributor"),
        inv.GoodsTurnedOver(order_id=ORDER, item="CHAIR-ERGO", lot="FORGED-LOT", quantity=Decimal(3),
                            owner="manufacturer"),
        o.OrderCancelled(order_id=ORDER, reason="forged", stage="in-production"),
        c.DeliverySigned(order_id=ORDER, signed_by="Somebody Else", signed_at=NOW),
        md.ComponentsReceived(receipt_id="FORGED-R1", item="SEAT-ASSY", lot="FORGED-LOT", quantity=Decimal(500)),
        c.QualityInspectionRecorded(order_id=ORDER, item="CHAIR-ERGO", passed=True, inspected_by="manufacturer"),
        c.ProductionCompleted(order_id=ORDER, item="CHAIR-ERGO", lot="FORGED-LOT", quantity=Decimal(3),
                              cumulative_quantity=Decimal(3), order_quantity=Decimal(3)),
    ]


@pytest.fixture
async def flows(secure_flows: Flows) -> Flows:
    """The secure stack with the open post-product order every forgery aims at, released."""
    await secure_flows.place(ORDER, flow="post", quantity="3", holder="Acme Offices")
    await secure_flows.wait_production(ORDER, "released")
    return secure_flows


async def snapshot(flows: Flows) -> dict[str, Any]:
    """What every service holds about the order and the stock a forgery aimed at."""
    order = await flows.order(ORDER)
    production = await flows.production_order(ORDER)
    assert order is not None and production is not None
    return {
        "distributor": (order["state"], order["waiting_for"], await flows.history(ORDER)),
        "manufacturer": (production["status"], await flows.consumed_by(ORDER), await flows.on_hand("SEAT-ASSY")),
        "warehouse": await flows.warehouse_units(),
    }


async def settled(flows: Flows) -> dict[str, Any]:
    """The snapshot once the release's own events have all arrived: the same twice, a second apart."""
    previous: dict[str, Any] | None = None

    async def same_as_before() -> dict[str, Any] | None:
        nonlocal previous
        current = await snapshot(flows)
        stable = current if current == previous else None
        previous = current
        await asyncio.sleep(1.0)
        return stable

    return await eventually(same_as_before, what="the services to settle", stack=flows.stack)


def _writer_name(event: Event) -> str:
    return SPEAKER_OF[event.topic.writer]


async def test_each_forgery_from_a_principal_not_allowed_to_send_it_is_refused_and_nothing_changes(
    flows: Flows, secure_kafka: LocalKafka
) -> None:
    before = await settled(flows)
    accepted: list[str] = []
    for event in forgeries():
        for name in SECURE_USERS:
            if name == _writer_name(event):
                continue
            try:
                await publish(flows.stack.bootstrap_servers, [event], topic_prefix=flows.stack.topic_prefix,
                              source=f"/backflush/{_writer_name(event)}",  # claiming to be its writer changes nothing
                              security=secure_kafka.security_for(name))
            except REFUSED:
                continue
            accepted.append(f"{type(event).__name__} from {name}")
    assert accepted == []

    # nothing forged reached any topic, so nothing can arrive late either
    names = TopicNames(flows.stack.topic_prefix)
    forged_types = {event.event_type for event in forgeries()}
    for topic in Topic:
        records = await read_to_end(flows.stack.bootstrap_servers, names(topic),
                                    security=secure_kafka.security_for("tests"))
        forged = [r for r in records if r.event_type in forged_types and "FORGED" in (r.value or b"").decode()]
        forged += [r for r in records if r.key == ORDER and r.event_type in forged_types]
        assert forged == [], f"{topic}: {forged}"
    assert await snapshot(flows) == before

    # and the real order goes on to its end, closed by the distributor on the warehouse's word
    await flows.complete(ORDER, "3")
    await flows.wait_state(ORDER, "shipped", waiting_for="signature")
    await flows.sign(ORDER, by="J. Doe")
    closed = await flows.wait_state(ORDER, "closed")
    assert closed["waiting_for"] is None
    assert (await flows.wait_history(ORDER, c.OrderClosed.event_type)).count(c.OrderClosed.event_type) == 1


async def test_an_event_type_its_topic_does_not_carry_is_dead_lettered_as_wrong_topic(
    flows: Flows, secure_kafka: LocalKafka
) -> None:
    before = await settled(flows)
    # the holder may write its intake, but cannot cancel the order there by saying the distributor's word
    event = o.OrderCancelled(order_id=ORDER, reason="forged on the intake", stage="in-production")
    names = TopicNames(flows.stack.topic_prefix)
    record = encode(event, envelope_for(event, "/backflush/distributor"), names(Topic.ORDERS_INTAKE))
    producer = AIOKafkaProducer(bootstrap_servers=flows.stack.bootstrap_servers, enable_idempotence=True,
                                **secure_kafka.security_for("holder").kafka_options())
    await producer.start()
    try:
        await producer.send_and_wait(record.topic, value=record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()

    async def dead_letters() -> dict[str, dict[str, str]] | None:
        records = await read_to_end(flows.stack.bootstrap_servers, names.dead_letter(Topic.ORDERS_INTAKE),
                                    security=secure_kafka.security_for("tests"))
        by_service = {r.headers.get("dlq_failed_by", ""): r.headers for r in records if r.key == ORDER}
        # both readers of the intake that act on OrderCancelled set it aside (the manufacturer reads no intake)
        return by_service if {"distributor", "warehouse"} <= set(by_service) else None

    letters = await eventually(dead_letters, what="the wrong-topic record dead-lettered by both readers",
                               stack=flows.stack)
    for service in ("distributor", "warehouse"):
        assert letters[service]["dlq_error_type"] == "wrong-topic"
        assert letters[service]["dlq_error_message"] == (
            f"{o.OrderCancelled.event_type} belongs on {names(Topic.ORDERS)!r}, not on {names(Topic.ORDERS_INTAKE)!r}")
    assert await snapshot(flows) == before
