"""The distributor and the warehouse consume `completions`, where the manufacturer also tells of its make-to-stock
production orders (issue 15, defect 5): no customer order stands behind those, so both ignore them on purpose
instead of dead-lettering them as events of an unknown order, or releasing storage for them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from support.manufacturer_feed import apply, rows

from backflush_distributor.app import SERVICE as DISTRIBUTOR
from backflush_shared.contracts.completions import (
    BackflushParked,
    CompletionCancelled,
    CompletionReported,
    ComponentsBackflushed,
    ProductionCompleted,
)
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceRuntime
from backflush_warehouse.app import SERVICE as WAREHOUSE
from backflush_warehouse.layout import apply_layout
from backflush_warehouse.settings import WarehouseSettings


@pytest.fixture
async def distributor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceRuntime]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('distributor') / 'distributor.db'}"
    await upgrade_to_head_async(url, DISTRIBUTOR.migrations)
    runtime = ServiceRuntime.create(DISTRIBUTOR, DISTRIBUTOR.settings_class(service="distributor", database_url=url))
    try:
        yield runtime
    finally:
        await runtime.database.close()


@pytest.fixture
async def warehouse(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceRuntime]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('warehouse') / 'warehouse.db'}"
    await upgrade_to_head_async(url, WAREHOUSE.migrations)
    runtime = ServiceRuntime.create(WAREHOUSE, WarehouseSettings(service="warehouse", database_url=url))
    await apply_layout(runtime)
    try:
        yield runtime
    finally:
        await runtime.database.close()


def _stock_order_events(make_to_stock: bool) -> list[object]:
    return [
        ComponentsBackflushed(order_id="MTS-1", flush_point="pre", produced_quantity=Decimal(20), components=[],
                              make_to_stock=make_to_stock),
        BackflushParked(order_id="MTS-1", reason="waits", missing=[], make_to_stock=make_to_stock),
        CompletionReported(order_id="MTS-1", quantity=Decimal(20), make_to_stock=make_to_stock),
        ProductionCompleted(order_id="MTS-1", item="SEAT-ASSY", lot="MTS-1-C20", quantity=Decimal(20),
                            cumulative_quantity=Decimal(20), order_quantity=Decimal(20),
                            make_to_stock=make_to_stock),
    ]


async def test_the_distributor_ignores_the_events_of_a_make_to_stock_order(distributor: ServiceRuntime) -> None:
    await apply(distributor, _stock_order_events(make_to_stock=True), dead_letters=0)  # type: ignore[arg-type]
    assert await rows(distributor.settings.database_url, "SELECT count(*) FROM orders") == [(0,)]


async def test_the_distributor_still_dead_letters_an_unknown_customer_orders_events(
        distributor: ServiceRuntime) -> None:
    await apply(distributor, _stock_order_events(make_to_stock=False), dead_letters=4)  # type: ignore[arg-type]


async def test_the_warehouse_ignores_a_cancelled_completion_of_a_make_to_stock_order(
        warehouse: ServiceRuntime) -> None:
    await apply(warehouse, [CompletionCancelled(order_id="MTS-1", completion_id="e-1", item="SEAT-ASSY",
                                                lot="MTS-1-C20", quantity=Decimal(20), cumulative_quantity=Decimal(0),
                                                order_quantity=Decimal(20), make_to_stock=True)])
    assert await rows(warehouse.settings.database_url, "SELECT count(*) FROM cancelled_lots") == [(0,)]
