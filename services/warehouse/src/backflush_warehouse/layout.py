"""Lay out the locations from the settings at start-up; capacities may change, locations with stock stay."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from backflush_warehouse.adapters.tables import locations
from backflush_warehouse.domain.storage import LocationKind, parse_layout


async def apply_layout(runtime: Any) -> None:
    settings = runtime.settings
    wanted = parse_layout(settings.racks, LocationKind.RACK) + parse_layout(
        settings.consignment_locations, LocationKind.CONSIGNMENT
    )
    async with runtime.database.transaction() as session:
        known = {row.code for row in (await session.execute(select(locations.c.code))).all()}
        for position, location in enumerate(wanted):
            values = {"kind": location.kind.value, "capacity": location.capacity, "position": position}
            if location.code in known:
                await session.execute(update(locations).where(locations.c.code == location.code).values(**values))
            else:
                await session.execute(insert(locations).values(code=location.code, **values))
