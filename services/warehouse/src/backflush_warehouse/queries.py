"""Read-only views of the warehouse for people: locations in use, consignment stock by owner."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from backflush_warehouse.adapters import repository


@dataclass(frozen=True)
class LocationUse:
    code: str
    kind: str
    capacity: Decimal
    used: Decimal


async def location_use(session: AsyncSession) -> list[LocationUse]:
    used: dict[str, Decimal] = defaultdict(Decimal)
    for code, quantity in await repository.stored_quantities(session):
        used[code] += quantity
    return [LocationUse(loc.code, loc.kind.value, loc.capacity, used.get(loc.code, Decimal(0)))
            for loc in await repository.read_locations(session)]


async def stock_by_owner(session: AsyncSession) -> list[tuple[str, str, str, str, Decimal]]:
    """(owner, kind, item, status, quantity) for every unit the warehouse holds or delivered."""
    rows = await repository.all_units(session)
    totals: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    for r in rows:
        totals[(r["owner"], r["kind"], r["item"], r["status"])] += r["quantity"]
    return [(*key, quantity) for key, quantity in sorted(totals.items())]


async def waiting(session: AsyncSession) -> list[dict[str, object]]:
    return [dict(r) for r in await repository.waiting_put_aways_in_order(session)]
