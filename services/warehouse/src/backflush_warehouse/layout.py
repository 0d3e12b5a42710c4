"""Lay out the locations from the settings at start-up; capacities may change, locations with stock stay.

The resulting total capacity per kind is announced to the other services on `inventory-details`.
"""

from __future__ import annotations

from typing import Any

from backflush_shared.contracts.inventory_details import StorageCapacityAnnounced
from backflush_shared.persistence.locks import lock_for_transaction
from backflush_shared.unit_of_work import unit_of_work

from backflush_warehouse.adapters import repository
from backflush_warehouse.domain.storage import LocationKind, capacity_of, parse_layout


async def apply_layout(runtime: Any) -> None:
    settings = runtime.settings
    wanted = parse_layout(settings.racks, LocationKind.RACK) + parse_layout(
        settings.consignment_locations, LocationKind.CONSIGNMENT
    )
    async with unit_of_work(runtime.database, runtime.outbox) as uow:
        session = uow.session
        # instances starting together lay out one set of locations, not a duplicate key each
        await lock_for_transaction(session, "warehouse:storage")
        known = await repository.location_codes(session)
        for position, location in enumerate(wanted):
            lay_out = repository.update_location if location.code in known else repository.add_location
            await lay_out(session, code=location.code, kind=location.kind.value, capacity=location.capacity,
                          position=position)
        # Announced at every start, through the outbox like any event, so that the distributor (which owns
        # orders) can refuse an order that could never be stored whole, instead of letting it wait for ever.
        await uow.emit(StorageCapacityAnnounced(
            rack_capacity=capacity_of(wanted, LocationKind.RACK),
            consignment_capacity=capacity_of(wanted, LocationKind.CONSIGNMENT),
        ))  # written to the outbox as the unit of work commits
