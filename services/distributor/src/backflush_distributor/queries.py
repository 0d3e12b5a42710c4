"""Read-only views of the distributor's database for people: order lists, one order's story."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_distributor.adapters.tables import order_events, order_transitions, orders


@dataclass(frozen=True)
class OrderSummary:
    order_id: str
    flow: str
    item: str
    quantity: Decimal
    order_holder: str
    state: str
    waiting_for: str | None
    waiting_since: datetime | None
    updated_at: datetime
    reason: str | None = None  # why a rejected or cancelled order ended so


def _end_reason(milestones: str) -> str | None:
    raw = json.loads(milestones)
    return raw.get("rejected_reason") or raw.get("cancelled_reason")


async def list_orders(session: AsyncSession, state: str | None = None) -> list[OrderSummary]:
    query = select(orders).order_by(orders.c.created_at, orders.c.order_id)
    if state:
        query = query.where(orders.c.state == state)
    rows = (await session.execute(query)).mappings().all()
    return [
        OrderSummary(r["order_id"], r["flow"], r["item"], r["quantity"], r["order_holder"], r["state"],
                     r["waiting_for"], r["waiting_since"], r["updated_at"], _end_reason(r["milestones"]))
        for r in rows
    ]


async def order_story(session: AsyncSession, order_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(orders).where(orders.c.order_id == order_id))).mappings().one_or_none()
    if row is None:
        return None
    transitions = (
        await session.execute(
            select(order_transitions).where(order_transitions.c.order_id == order_id).order_by(order_transitions.c.id)
        )
    ).mappings().all()
    events = (
        await session.execute(
            select(order_events).where(order_events.c.order_id == order_id).order_by(order_events.c.occurred_at,
                                                                                      order_events.c.id)
        )
    ).mappings().all()
    return {"order": dict(row), "transitions": [dict(t) for t in transitions], "events": [dict(e) for e in events]}
