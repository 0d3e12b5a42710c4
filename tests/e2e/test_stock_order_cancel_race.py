"""A cancel of a waiting stock order races the run that serves it, on a real broker (issue 17).

The stock that serves a waiting order reaches the warehouse on `inventory-details`, the cancel on `orders`: the
warehouse may ship the order before it reads the cancel. Only the warehouse knows which came first, so it decides
the cancel of a stock order, and the distributor's final word agrees with it: either the order is cancelled and
nothing of it shipped, or it shipped, the cancel is refused with the reason, and the holder's signature closes it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from support.flows import Flows
from support.records import dead_letters
from support.stack import eventually

from backflush_shared.audit import audit

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


async def _clean_audit(flows: Flows) -> None:
    urls = {service: flows.stack.database_url(service) for service in ("manufacturer", "distributor", "warehouse")}

    async def clean() -> list[Any] | None:
        findings = await audit(urls)
        return findings if all(f.ok for f in findings) else None
    await eventually(clean, what="a clean audit", stack=flows.stack)


async def _settled(flows: Flows, order_id: str) -> dict[str, Any]:
    """The order once the cancel is decided: cancelled, or served (shipped, waiting for the signature)."""
    async def decided() -> dict[str, Any] | None:
        row = await flows.order(order_id)
        if row is None:
            return None
        if row["state"] == "cancelled" or (row["state"] == "shipped" and row["waiting_for"] == "signature"):
            return row
        return None
    return await eventually(decided, what=f"{order_id} cancelled or shipped with the cancel answered",
                            stack=flows.stack)


@pytest.mark.parametrize("run_first", [True, False], ids=["run-stocked-then-cancel", "run-and-cancel-together"])
async def test_a_cancel_racing_the_run_that_serves_a_waiting_stock_order_ends_as_the_warehouse_decided(
        flows: Flows, run_first: bool) -> None:
    order_id = f"SO-RACE-{int(run_first)}"
    run_id = f"R-RACE-{int(run_first)}"
    await flows.place_from_stock(order_id, quantity="5")
    await flows.wait_state(order_id, "waiting-for-stock", waiting_for="finished-goods stock: 5 units needed, 0 free")
    await flows.report_run(run_id, quantity="5")
    if run_first:  # its lot is on its way to the warehouse: the warehouse most likely ships before the cancel
        await flows.wait_production(run_id, "stocked")
    await flows.cancel(order_id, reason="found it cheaper")
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
        assert "shipped" in refusal["dlq_error_message"]
        await flows.sign(order_id, by="J. Doe")
        await flows.wait_state(order_id, "closed")
    await _clean_audit(flows)
