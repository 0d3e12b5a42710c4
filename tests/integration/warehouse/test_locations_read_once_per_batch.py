"""The warehouse reads its locations and their used space once per transaction, not once per put-away.

Every handler holds the storage lock, so nothing else changes them until the transaction ends; what the transaction
itself changes (`occupy`) is what the next put-away of the batch must see, or two put-aways would fill the same room.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.service import ServiceRuntime
from backflush_shared.unit_of_work import unit_of_work
from backflush_warehouse.adapters import repository
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


async def test_a_transaction_reads_the_locations_once_and_sees_the_space_it_took(warehouse: ServiceRuntime) -> None:
    engine = warehouse.database.sqlite_engine
    assert engine is not None
    reads: list[str] = []

    def count_reads(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM locations" in statement \
                and "FOR UPDATE" not in statement.upper() and " IN " not in statement.upper():
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", count_reads)
    try:
        async with unit_of_work(warehouse.database, warehouse.outbox) as uow:  # its commit writes what `occupy` kept
            first = (await repository.locations_in_order(uow))[0].code
            used_before = (await repository.occupied(uow))[first]
            await repository.occupy(uow, {first: Decimal(3)})
            await repository.locations_in_order(uow)
            seen = (await repository.occupied(uow))[first]
    finally:
        event.remove(engine, "before_cursor_execute", count_reads)

    assert seen == used_before + 3
    assert len(reads) == 2, reads  # the locations once, their used space once
    async with warehouse.database.reading() as session:
        assert (await repository.read_occupied(session))[first] == used_before + 3
