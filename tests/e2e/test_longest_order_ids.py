"""An order id as long as the contract allows (64 characters) goes through both flows like any other.

The manufacturer derives ids from the order id (the certificate `QC-{order}`, the lots `{order}-1` and
`{order}-C{quantity}`); they must fit the same 64-character field on the events it publishes, or its own event
fails validation and the order waits for ever.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import TypeAdapter

from backflush_shared.contracts.base import Identifier
from support.flows import Flows

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

IDENTIFIER = TypeAdapter(Identifier)


def longest_id(start: str) -> str:
    order_id = start + "-" + "x" * (63 - len(start))
    assert len(IDENTIFIER.validate_python(order_id)) == 64
    return order_id


async def test_a_pre_product_order_with_the_longest_id_ends_closed(flows: Flows) -> None:
    order_id = longest_id("PRE-LONG")
    await flows.place(order_id, flow="pre", quantity="2")
    order = await flows.wait_state(order_id, "closed")
    assert order["waiting_for"] is None
    racked = await flows.warehouse_units(order_id)
    assert [u["quantity"] for u in racked] == [Decimal(2)]
    assert all(len(IDENTIFIER.validate_python(u["lot"])) <= 64 for u in racked)


async def test_a_post_product_order_with_the_longest_id_ends_closed(flows: Flows) -> None:
    order_id = longest_id("POST-LONG")
    await flows.place(order_id, flow="post", quantity="3", holder="Bluebird Hotels")
    await flows.wait_production(order_id, "released")
    await flows.complete(order_id, "1")
    await flows.wait_state(order_id, "in-production", waiting_for="completion of the remaining 2")
    await flows.complete(order_id, "2")
    await flows.wait_state(order_id, "shipped", waiting_for="signature")
    units = await flows.warehouse_units(order_id)
    lots = {u["lot"] for u in units}
    assert len(lots) == 2 and all(lot.endswith(("-C1", "-C3")) for lot in lots)
    await flows.sign(order_id, by="R. Bluebird")
    order = await flows.wait_state(order_id, "closed")
    assert order["waiting_for"] is None
