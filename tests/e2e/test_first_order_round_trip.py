"""The platform's first promise: an order travels distributor -> manufacturer -> warehouse and back, on Kafka."""

from __future__ import annotations

import uuid

import pytest

from support.flows import Flows
from support.topics import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def test_an_order_travels_through_the_three_services_and_a_completion_comes_back(flows: Flows) -> None:
    """A pre-product order for 10 CHAIR-ERGO: the distributor forwards it, the manufacturer checks quality,
    flushes and forwards the pre-sale details, the warehouse racks the goods and returns the inventory check
    on `completions.warehouse`, keyed by the order id, with CloudEvents headers naming who said it and why."""
    stack = flows.stack
    order_id = f"SO-{uuid.uuid4().hex[:6]}"
    await flows.place(order_id, flow="pre", quantity="10")
    await flows.wait_state(order_id, "closed")

    # each on the topic of the one who may say it: the warehouse's completions, the manufacturer's, the distributor's
    from_warehouse = await read_topic(stack.bootstrap_servers, f"{stack.topic_prefix}completions.warehouse",
                                      key=order_id, until=1)
    from_manufacturer = await read_topic(stack.bootstrap_servers, f"{stack.topic_prefix}completions", key=order_id,
                                         until=3)
    by_type = {r.event_type: r for r in from_warehouse + from_manufacturer}
    check = by_type["backflush.completion.inventory-check-returned"]
    assert check.key == order_id
    assert check.headers["ce_source"] == "/backflush/warehouse"
    assert check.headers["ce_specversion"] == "1.0"
    assert check.headers["ce_schemaversion"] == "1"
    assert check.headers["ce_correlationid"] == order_id
    assert check.headers["content-type"] == "application/json"
    uuid.UUID(check.headers["ce_id"])
    assert check.headers["ce_time"].startswith("20")

    [placed] = await read_topic(stack.bootstrap_servers, f"{stack.topic_prefix}orders.intake", key=order_id)
    assert placed.event_type == "backflush.order.placed"
    orders = await read_topic(stack.bootstrap_servers, f"{stack.topic_prefix}orders", key=order_id)
    forwarded = next(r for r in orders if r.event_type == "backflush.order.forwarded")
    assert forwarded.headers["ce_source"] == "/backflush/distributor"
    assert forwarded.headers["ce_causationid"] == placed.headers["ce_id"], "forwarded because it was placed"

    allocated = by_type["backflush.completion.goods-allocated"]
    assert allocated.headers["ce_source"] == "/backflush/manufacturer"
    assert allocated.headers["ce_causationid"] == check.headers["ce_id"], "allocated because the check returned"
