"""A cancel of a waiting stock order races the run that serves it, on a real broker (issue 17).

The stock that serves a waiting order reaches the warehouse on `inventory-details`, the cancel on `orders`: the
warehouse may ship the order before it reads the cancel. Only the warehouse knows which came first, so it decides
the cancel of a stock order, and the distributor's final word agrees with it: either the order is cancelled and
nothing of it shipped, or it shipped, the cancel is refused with the reason, and the holder's signature closes it.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from support.flows import Flows
from support.records import dead_letters
from sqlalchemy import select
from support.stack import eventually, read_db

from backflush_warehouse.adapters.tables import stock_orders

from backflush_shared.audit import audit

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def _clean_audit(flows: Flows) -> None:
    urls = {service: flows.stack.database_url(service) for service in ("manufacturer", "distributor", "warehouse")}

    async def clean() -> list[Any] | None:
        findings = await audit(urls)
        return findings if all(f.ok for f in findings) else None
    await eventually(clean, what="a clean audit", stack=flows.stack)


async def _warehouse_decided(flows: Flows, order_id: str) -> str:
    """The warehouse's stock order once it is out of the line: shipped or cancelled."""
    async def status() -> str | None:
        async def load(session: Any) -> str | None:
            return (await session.execute(select(stock_orders.c.status).where(
                stock_orders.c.order_id == order_id))).scalar_one_or_none()
        found = await read_db(flows.stack.database_url("warehouse"), load)
        return found if found in ("shipped", "cancelled") else None
    return await eventually(status, what=f"the warehouse's {order_id} shipped or cancelled", stack=flows.stack)


async def _settled(flows: Flows, order_id: str) -> dict[str, Any]:
    """The order once the cancel is decided at both ends: cancelled, or served (shipped, waiting for the
    signature)."""
    await _warehouse_decided(flows, order_id)

    async def decided() -> dict[str, Any] | None:
        row = await flows.order(order_id)
        if row is None:
            return None
        if row["state"] == "cancelled" or (row["state"] == "shipped" and row["waiting_for"] == "signature"):
            return row
        return None
    return await eventually(decided, what=f"{order_id} cancelled or shipped with the cancel answered",
                            stack=flows.stack)


async def _held_warehouse_then_both(flows: Flows, order_id: str, run_id: str, *, run_first: bool) -> None:
    """The warehouse is held (stopped) while the run's lot and the cancel both get on their way, then let go: it
    finds both waiting on their topics and reads them in whichever order its fetch gives."""
    flows.stack.kill("warehouse")
    if run_first:
        await flows.report_run(run_id, quantity="5")
        await flows.wait_production(run_id, "stocked")  # its FinishedGoodsStocked is on inventory-details
    await flows.cancel(order_id, reason="found it cheaper")
    await flows.wait_history(order_id, "backflush.order.cancellation-requested")
    if not run_first:
        await flows.report_run(run_id, quantity="5")
        await flows.wait_production(run_id, "stocked")
    await asyncio.sleep(1)  # the distributor's answer to the request is on `orders` before the warehouse reads it
    await asyncio.to_thread(flows.stack.restart, "warehouse")


@pytest.mark.parametrize("run_first", [True, False], ids=["run-then-cancel", "cancel-then-run"])
async def test_a_cancel_racing_the_run_that_serves_a_waiting_stock_order_ends_as_the_warehouse_decided(
        flows: Flows, run_first: bool) -> None:
    order_id = f"SO-RACE-{int(run_first)}"
    run_id = f"R-RACE-{int(run_first)}"
    await flows.place_from_stock(order_id, quantity="5")
    await flows.wait_state(order_id, "waiting-for-stock", waiting_for="finished-goods stock: 5 units needed, 0 free")
    await _held_warehouse_then_both(flows, order_id, run_id, run_first=run_first)
    row = await _settled(flows, order_id)
    shipped = [u for u in await flows.warehouse_units(order_id) if u["status"] in ("shipped", "delivered")]
    if row["state"] == "cancelled":
        assert shipped == [], "cancelled at the distributor while the warehouse shipped its goods"
        [lot] = [lot for lot in await flows.finished_stock() if lot["run_id"] == run_id]
        assert lot["free"] == Decimal(5)  # the run's units stay free for the next order
    else:
        assert sum((u["quantity"] for u in shipped), Decimal(0)) == Decimal(5)
        [refusal] = await dead_letters(flows.stack, "orders.intake", key=order_id)
        assert refusal["dlq_error_type"] == "CancellationAfterShipmentError"
        assert "5 of 5 units shipped" in refusal["dlq_error_message"]
        await flows.sign(order_id, by="J. Doe")
        await flows.wait_state(order_id, "closed")
    await _clean_audit(flows)


async def test_a_cancel_of_a_waiting_stock_order_is_accepted_by_the_warehouse_and_the_order_cancelled(
        flows: Flows) -> None:
    await flows.place_from_stock("SO-WAIT", quantity="5")
    await flows.wait_state("SO-WAIT", "waiting-for-stock", waiting_for="finished-goods stock: 5 units needed, 0 free")
    await flows.cancel("SO-WAIT", reason="found it cheaper")
    await flows.wait_state("SO-WAIT", "cancelled")
    assert "backflush.completion.stock-order-cancellation-accepted" in await flows.history("SO-WAIT")
    await flows.report_run("R-AFTER", quantity="5")
    [lot] = [lot for lot in await _stocked_lots(flows) if lot["run_id"] == "R-AFTER"]
    assert lot["free"] == Decimal(5)  # nothing goes to the cancelled order
    await _clean_audit(flows)


async def _stocked_lots(flows: Flows) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]] | None:
        lots = await flows.finished_stock()
        return lots if any(lot["run_id"] == "R-AFTER" and lot["free"] for lot in lots) else None
    return await eventually(found, what="run R-AFTER racked for sale", stack=flows.stack)
