"""Nothing lost, for real: no cancel undoes goods that left, and no order waits for space that cannot come.

- A cancel once the goods have shipped is refused (a return is another flow): the consumption stays, the
  signature still closes the order.
- An order bigger than all racks together is rejected at placement, with the reason, visible in `backflush orders`.
- A pre-product order that finds the racks full says how much it needs and how much is free; when the holder of
  earlier racked goods calls them off, they leave the racks, and the waiting order is put away and closes.
- A call-off goes through the distributor: one by another holder, or of goods not racked yet, is refused with
  the reason and nothing ships.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlite3

import pytest
from sqlalchemy import select

from backflush_shared.audit import audit, breaches
from backflush_shared.contracts import orders as o
from backflush_shared.local_stack import LocalStack
from support.broker import Broker
from support.e2e_paths import SAMPLE_DATA
from support.flows import Flows
from support.records import backflush, dead_letters, dead_letters_by_service
from support.stack import eventually, make_stack, read_db

from backflush_distributor.adapters.tables import storage_capacity

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def _shipped_post_order(flows: Flows, order_id: str, quantity: str) -> dict[str, Decimal]:
    await flows.place(order_id, flow="post", quantity=quantity, holder="Bluebird Hotels")
    await flows.wait_production(order_id, "released")
    await flows.complete(order_id, quantity)
    await flows.wait_state(order_id, "shipped", waiting_for="signature")
    return await flows.consumed_by(order_id)


async def test_a_cancel_after_shipment_is_refused_with_the_reason_and_the_signature_still_closes_the_order(
    flows: Flows,
) -> None:
    """2 chairs shipped; the holder asks to cancel: the distributor refuses (dead letter
    CancellationAfterShipmentError, "a return is another flow") and publishes no OrderCancelled, so the
    manufacturer reverses nothing; the signature closes the order and the chairs belong to the holder."""
    consumed = await _shipped_post_order(flows, "SHIP-X", "2")
    assert consumed["CASTOR-50"] == 11  # 2 x 1.02 x 5 x 1.03 = 10.506, up to 11

    await flows.cancel("SHIP-X", reason="changed my mind")
    [letter] = await dead_letters(flows.stack, "orders.intake", key="SHIP-X")
    assert (letter["dlq_failed_by"], letter["dlq_error_type"]) == ("distributor", "CancellationAfterShipmentError")
    assert "its goods have shipped" in letter["dlq_error_message"]
    assert "a return is another flow" in letter["dlq_error_message"]

    await flows.sign("SHIP-X", by="R. Bluebird")
    await flows.wait_state("SHIP-X", "closed")
    await flows.wait_production("SHIP-X", "delivered")
    assert "backflush.order.cancelled" not in await flows.history("SHIP-X")
    assert await flows.consumed_by("SHIP-X") == consumed
    assert await flows.units_by_owner() == {("Bluebird Hotels", "delivered"): Decimal(2)}


async def test_the_warehouse_refuses_a_cancel_for_goods_it_already_shipped(flows: Flows) -> None:
    """Should an OrderCancelled reach the warehouse for an order it shipped (the distributor never sends one), the
    warehouse dead-letters it and keeps the shipment, which the holder can still sign for."""
    await _shipped_post_order(flows, "SHIP-W", "2")
    await flows.publish(o.OrderCancelled(order_id="SHIP-W", reason="forged", stage="shipped"))
    by_service = await dead_letters_by_service(flows.stack, "orders", key="SHIP-W", services=["warehouse"])
    assert by_service["warehouse"]["dlq_error_type"] == "CancellationAfterShipmentError"
    assert "a return is another flow" in by_service["warehouse"]["dlq_error_message"]
    assert {u["status"] for u in await flows.warehouse_units("SHIP-W")} == {"shipped"}

    await flows.sign("SHIP-W", by="R. Bluebird")

    async def delivered() -> bool:
        return {u["status"] for u in await flows.warehouse_units("SHIP-W")} == {"delivered"}
    await eventually(delivered, what="SHIP-W signed for at the warehouse", stack=flows.stack)


@pytest.fixture
async def small_racks(kafka: Broker, tmp_path: Path) -> AsyncIterator[Flows]:
    """Racks of 12 units in all (DC-A1=8, DC-A2=4), the distributor told so before any order is placed."""
    stack: LocalStack = make_stack(kafka.bootstrap_servers, tmp_path / "stack",
                                   extra_env={"warehouse": {"BACKFLUSH_RACKS": "DC-A1=8,DC-A2=4"}})
    stack.start()
    try:
        flows = Flows(stack)
        await flows.load_master_data(SAMPLE_DATA)

        async def announced() -> dict[str, Decimal] | None:
            async def load(session: Any) -> dict[str, Decimal]:
                rows = await session.execute(select(storage_capacity.c.kind, storage_capacity.c.capacity))
                return {kind: capacity for kind, capacity in rows}
            return await read_db(stack.database_url("distributor"), load) or None
        assert await eventually(announced, what="the racks' capacity at the distributor", stack=stack) == {
            "rack": Decimal(12), "consignment": Decimal(400)}
        yield flows
    finally:
        stack.stop()


async def test_an_order_bigger_than_all_racks_together_is_rejected_at_placement_with_the_reason(
    small_racks: Flows,
) -> None:
    """13 chairs can never fit racks of 12: rejected at placement, nothing produced or flushed, and `backflush
    orders` says why. 12 fit and go through."""
    flows = small_racks
    await flows.place("HUGE-1", flow="pre", quantity="13")
    order = await flows.wait_state("HUGE-1", "rejected")
    reason = "13 units can never be stored: all distribution-center racks together hold 12"
    assert reason in order["milestones"]
    listing = backflush("orders", "--database", flows.stack.database_url("distributor"))
    assert listing.returncode == 0, listing.stderr
    assert reason in listing.stdout

    await flows.place("FITS-1", flow="pre", quantity="12")
    await flows.wait_state("FITS-1", "closed")
    assert await flows.production_order("HUGE-1") is None
    assert await flows.consumed_by("HUGE-1") == {}


async def test_a_pre_order_waits_for_rack_space_with_the_figures_and_is_put_away_once_earlier_goods_leave(
    small_racks: Flows,
) -> None:
    """10 chairs fill racks of 12 but 2; 5 more wait, saying "rack space: 5 units needed, 2 free". The holder of
    the 10 calls them off (`backflush order deliver`): they ship, the racks empty, the 5 are put away, allocated,
    and the order closes. The audit is clean; with a put-away bigger than all racks, or a shipped order cancelled,
    written by hand into the databases, the storage checks fail and name them."""
    flows = small_racks
    await flows.place("RACK-1", flow="pre", quantity="10")
    await flows.wait_state("RACK-1", "closed")
    await flows.place("RACK-2", flow="pre", quantity="5")
    waiting = await flows.wait_state("RACK-2", "directed-to-racks", waiting_for="rack space: 5 units needed, 2 free")
    assert waiting["waiting_since"] is not None

    # RACK-2 is not racked yet: the distributor refuses its call-off, the warehouse never hears of it
    result = backflush("order", "deliver", "RACK-2", "--holder", "Acme Offices",
                       "--bootstrap-servers", flows.stack.bootstrap_servers,
                       "--topic-prefix", flows.stack.topic_prefix)
    assert result.returncode == 0, result.stderr
    [letter] = await dead_letters(flows.stack, "orders.intake", key="RACK-2")
    assert (letter["dlq_failed_by"], letter["dlq_error_type"]) == ("distributor", "CallOffNotRackedError")
    assert "not racked yet (directed-to-racks)" in letter["dlq_error_message"]

    result = backflush("order", "deliver", "RACK-1", "--holder", "Acme Offices", "--ship-to", "1 Depot Road",
                       "--bootstrap-servers", flows.stack.bootstrap_servers,
                       "--topic-prefix", flows.stack.topic_prefix)
    assert result.returncode == 0, result.stderr
    await flows.wait_state("RACK-2", "closed")
    units = sorted((u["order_id"], u["location"], u["quantity"], u["status"]) for u in await flows.warehouse_units())
    assert units == [("RACK-1", "DC-A1", Decimal(8), "shipped"), ("RACK-1", "DC-A2", Decimal(2), "shipped"),
                     ("RACK-2", "DC-A1", Decimal(5), "stored")]
    assert await flows.waiting_put_aways() == []

    async def clean() -> list[Any] | None:
        found = breaches(await audit({s: flows.stack.database_url(s) for s in ("distributor", "warehouse")}))
        return None if found else [True]
    urls = {s: flows.stack.database_url(s) for s in ("distributor", "warehouse")}
    try:
        await eventually(clean, timeout=15, what="a clean audit", stack=flows.stack)
    except AssertionError:
        raise AssertionError(f"audit breaches: {breaches(await audit(urls))}") from None
    checks = {f.check: f for f in await audit(urls)}
    assert checks["distributor: no order waits for more than the storage capacity"].detail == (
        "capacity consignment 400, rack 12; no open order bigger")

    flows.stack.stop()

    def sqlite(service: str, statement: str, parameters: tuple[Any, ...]) -> None:
        with sqlite3.connect(urls[service].removeprefix("sqlite+aiosqlite:///")) as connection:
            connection.execute(statement, parameters)

    sqlite("distributor", "UPDATE orders SET state = 'directed-to-racks', quantity = '50', waiting_for = 'rack space', "
           "waiting_since = '2026-01-01' WHERE order_id = ?",
           ("RACK-2",))
    sqlite("distributor", "UPDATE orders SET state = 'cancelled' WHERE order_id = ?", ("RACK-1",))
    sqlite("warehouse", "INSERT INTO waiting_put_aways (order_id, item, lot, quantity, kind, owner, cause_event_id, "
           "since) VALUES ('BIG-1', 'CHAIR-ERGO', 'BIG-1-1', '13', 'rack', 'manufacturer', 'x', '2026-01-01')", ())
    sqlite("warehouse", "INSERT INTO cancelled_orders (order_id, at) VALUES ('RACK-1', '2026-01-01')", ())
    failed = {f.check: f.detail for f in breaches(await audit(urls))}
    assert failed == {
        "distributor: no order waits for more than the storage capacity":
            "1 can never be stored: RACK-2 (directed-to-racks): 50 units, rack capacity 12",
        "distributor: no order cancelled once its goods shipped": "1 cancelled after their goods shipped: RACK-1",
        "distributor: no order went back from its end":
            "2 went back: RACK-1: stored cancelled, history ends closed, "
            "RACK-2: stored directed-to-racks, history ends closed",
        "warehouse: no put-away waits for more than its capacity":
            "1 can never fit: BIG-1: 13 units, all rack locations hold 12",
        "warehouse: no cancelled order's goods shipped": "1 cancelled orders whose goods went out: RACK-1",
    }


async def test_racked_goods_called_off_and_signed_for_leave_the_ledger_with_nothing_still_promised(
    flows: Flows,
) -> None:
    """3 chairs racked and allocated (the order closes), called off, shipped and signed for: the manufacturer books
    the finished lot out and releases its allocation, so the lot shows 0 on hand, 0 allocated, 0 available (not
    -3 available); a cancel that still arrived then is refused, the goods having left."""
    await flows.place("OFF-1", flow="pre", quantity="3")
    await flows.wait_state("OFF-1", "closed")
    result = backflush("order", "deliver", "OFF-1", "--holder", "Acme Offices",
                       "--bootstrap-servers", flows.stack.bootstrap_servers,
                       "--topic-prefix", flows.stack.topic_prefix)
    assert result.returncode == 0, result.stderr

    async def shipped() -> bool:
        return {u["status"] for u in await flows.warehouse_units("OFF-1")} == {"shipped"}
    await eventually(shipped, what="OFF-1 shipped from the racks", stack=flows.stack)
    await flows.sign("OFF-1", by="A. Acme")
    await flows.wait_production("OFF-1", "delivered")

    async def lot_figures(session: Any) -> tuple[Decimal, Decimal, Decimal]:
        from backflush_manufacturer.adapters import repository as manufacturer_repo
        ledger = await manufacturer_repo.load_ledger(session, ["CHAIR-ERGO"])
        return (ledger.on_hand("CHAIR-ERGO", "FG"), ledger.allocated("CHAIR-ERGO", "FG"),
                ledger.available("CHAIR-ERGO", "FG"))
    assert await read_db(flows.stack.database_url("manufacturer"), lot_figures) == (0, 0, 0)

    consumed = await flows.consumed_by("OFF-1")
    await flows.publish(o.OrderCancelled(order_id="OFF-1", reason="forged", stage="closed"))
    by_service = await dead_letters_by_service(flows.stack, "orders", key="OFF-1",
                                               services=["manufacturer", "warehouse"])
    assert "a return is another flow" in by_service["manufacturer"]["dlq_error_message"]
    assert await flows.consumed_by("OFF-1") == consumed


async def test_a_call_off_by_another_holder_is_refused_and_nothing_ships_and_the_holders_own_call_off_ships(
    flows: Flows,
) -> None:
    """3 chairs racked for Acme Offices; "Mallory" calls them off to her address: the distributor dead-letters the
    request (CallOffByAnotherHolderError) and publishes nothing, so the goods stay in the racks. Acme's own
    call-off ships them; a cancel after it is refused by the distributor, nothing is cancelled or reversed."""
    await flows.place("OFF-2", flow="pre", quantity="3")
    await flows.wait_state("OFF-2", "closed")
    result = backflush("order", "deliver", "OFF-2", "--holder", "Mallory", "--ship-to", "Elsewhere 9",
                       "--bootstrap-servers", flows.stack.bootstrap_servers,
                       "--topic-prefix", flows.stack.topic_prefix)
    assert result.returncode == 0, result.stderr
    [letter] = await dead_letters(flows.stack, "orders.intake", key="OFF-2")
    assert (letter["dlq_failed_by"], letter["dlq_error_type"]) == ("distributor", "CallOffByAnotherHolderError")
    assert "requested by 'Mallory', but the order is held by 'Acme Offices'" in letter["dlq_error_message"]
    assert "backflush.order.racked-goods-called-off" not in await flows.history("OFF-2")
    assert {u["status"] for u in await flows.warehouse_units("OFF-2")} == {"stored"}

    result = backflush("order", "deliver", "OFF-2", "--holder", "Acme Offices", "--ship-to", "1 Depot Road",
                       "--bootstrap-servers", flows.stack.bootstrap_servers,
                       "--topic-prefix", flows.stack.topic_prefix)
    assert result.returncode == 0, result.stderr

    async def shipped() -> bool:
        return {u["status"] for u in await flows.warehouse_units("OFF-2")} == {"shipped"}
    await eventually(shipped, what="OFF-2 shipped from the racks", stack=flows.stack)
    consumed = await flows.consumed_by("OFF-2")
    await flows.cancel("OFF-2")
    letters = await dead_letters(flows.stack, "orders.intake", key="OFF-2", until=2)
    assert [h["dlq_error_type"] for h in letters] == ["CallOffByAnotherHolderError", "OrderAlreadyFinishedError"]
    assert "backflush.order.cancelled" not in await flows.history("OFF-2")
    assert await flows.consumed_by("OFF-2") == consumed
