"""What comes from outside stays data: holder names shown as text, quantities only as decimal strings.

On the real broker: orders placed with holder names that are Rich markup or terminal escape sequences go
through, and `backflush orders` (output piped, as a script would read it) prints them literally, without crashing
and without one ESC byte; an order whose quantity is a JSON number is dead-lettered as invalid, and the same
order with the quantity as a string goes through.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from backflush_shared.contracts import orders as o
from support.flows import Flows
from support.records import backflush, dead_letters, json_with, record_of, send

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

HOLDERS = {
    "TXT-CLOSE": "[/]",
    "TXT-LINK": "[link=https://evil.example]Acme[/link]",
    "TXT-ESC": "\x1b[31mRed Corp\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
}


async def test_holder_names_from_events_are_printed_as_text(flows: Flows) -> None:
    for order_id, holder in HOLDERS.items():
        await flows.place(order_id, flow="pre", quantity="1", holder=holder)
    for order_id in HOLDERS:
        await flows.wait_state(order_id, "closed")

    listing = backflush("orders", "--database", flows.stack.database_url("distributor"))
    assert listing.returncode == 0, listing.stderr
    assert "\x1b" not in listing.stdout
    assert "[/]" in listing.stdout
    assert "[link=https://evil.example]Acme[/link]" in listing.stdout
    assert "\\x1b[31mRed Corp" in listing.stdout  # the escape shown, not obeyed

    status = backflush("order", "status", "TXT-CLOSE", "--database", flows.stack.database_url("distributor"))
    assert status.returncode == 0, status.stderr
    assert "[/]" in status.stdout


async def test_a_quantity_sent_as_a_json_number_is_refused_and_as_a_string_accepted(flows: Flows) -> None:
    event = await _placed(flows, "NUM-1")
    for number in (2.0, 3):
        await send(flows.stack, record_of(flows.stack, event, value=json_with(event, quantity=number)))
    letters = await dead_letters(flows.stack, "orders.intake", key="NUM-1", until=2)
    assert {(h["dlq_failed_by"], h["dlq_error_type"]) for h in letters} == {("distributor", "invalid-event")}
    assert all("quantity" in h["dlq_error_message"] for h in letters)
    assert await flows.order("NUM-1") is None

    await flows.publish(event)
    order = await flows.wait_state("NUM-1", "closed")
    assert order["quantity"] == 2


async def _placed(flows: Flows, order_id: str) -> o.OrderPlaced:
    return o.OrderPlaced(order_id=order_id, order_holder="Acme Offices", flow="pre", item="CHAIR-ERGO",
                         quantity=Decimal(2), ship_to="1 Depot Road", due_date=dt.date.today() + dt.timedelta(days=7))
