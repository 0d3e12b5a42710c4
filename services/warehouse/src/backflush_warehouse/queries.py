"""Read-only views of the warehouse for people: locations in use, consignment stock by owner."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_warehouse.adapters.tables import locations, stock_units, waiting_put_aways


@dataclass(frozen=True)
class LocationUse:
    code: str
    kind: str
    capacity: Decimal
    used: Decimal


async def location_use(session: AsyncSession) -> list[LocationUse]:
    rows = (await session.execute(select(locations).order_by(locations.c.position))).mappings().all()
    stored = (
        await session.execute(select(stock_units.c.location, stock_units.c.quantity).where(stock_units.c.status == "stored"))
    ).all()
    used: dict[str, Decimal] = defaultdict(Decimal)
    for code, quantity in stored:
        used[code] += quantity
    return [LocationUse(r["code"], r["kind"], r["capacity"], used.get(r["code"], Decimal(0))) for r in rows]


async def stock_by_owner(session: AsyncSession) -> list[tuple[str, str, str, str, Decimal]]:
    """(owner, kind, item, status, quantity) for every unit the warehouse holds or delivered."""
    rows = (await session.execute(select(stock_units))).mappings().all()
    totals: dict[tuple[str, str, str, str], Decimal] = defaultdict(Decimal)
    for r in rows:
        totals[(r["owner"], r["kind"], r["item"], r["status"])] += r["quantity"]
    return [(*key, quantity) for key, quantity in sorted(totals.items())]


async def waiting(session: AsyncSession) -> list[dict[str, object]]:
    rows = (await session.execute(select(waiting_put_aways).order_by(waiting_put_aways.c.id))).mappings().all()
    return [dict(r) for r in rows]
