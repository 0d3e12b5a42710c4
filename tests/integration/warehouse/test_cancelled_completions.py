"""The warehouse and a cancelled completion whose goods arrive after the cancellation (issue 15 review).

CompletionCancelled travels on `completions`, GoodsTurnedOver on `inventory-details`: the cancellation may be
applied first, and the lot of a completion that no longer exists must then not be put away."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from support.manufacturer_feed import apply, rows

from backflush_shared.contracts.completions import CompletionCancelled
from backflush_shared.contracts.inventory_details import GoodsTurnedOver
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceRuntime
from backflush_warehouse.app import SERVICE
from backflush_warehouse.layout import apply_layout
from backflush_warehouse.settings import WarehouseSettings


@pytest.fixture
async def warehouse(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceRuntime]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('warehouse') / 'warehouse.db'}"
    await upgrade_to_head_async(url, SERVICE.migrations)
    runtime = ServiceRuntime.create(SERVICE, WarehouseSettings(service="warehouse", database_url=url))
    await apply_layout(runtime)
    try:
        yield runtime
    finally:
        await runtime.database.close()


def _cancelled(lot: str) -> CompletionCancelled:
    return CompletionCancelled(order_id="SO-C", completion_id=lot, item="CHAIR-ERGO", lot=lot, quantity=Decimal(7),
                               cumulative_quantity=Decimal(8), order_quantity=Decimal(20), reason="reported twice")


def _turned_over(lot: str, quantity: int) -> GoodsTurnedOver:
    return GoodsTurnedOver(order_id="SO-C", item="CHAIR-ERGO", lot=lot, quantity=Decimal(quantity),
                           owner="manufacturer")


async def test_a_lot_turned_over_after_its_completion_was_cancelled_is_not_put_away(
        warehouse: ServiceRuntime) -> None:
    await apply(warehouse, [_turned_over("SO-C-C8", 8)])
    await apply(warehouse, [_cancelled("SO-C-C15")])
    await apply(warehouse, [_turned_over("SO-C-C15", 7)])
    assert await rows(warehouse.settings.database_url, "SELECT lot, quantity, status FROM stock_units") == [
        ("SO-C-C8", "8", "stored")]
