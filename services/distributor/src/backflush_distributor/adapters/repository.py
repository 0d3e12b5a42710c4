"""Loading and saving orders; the lifecycle itself stays in the domain."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.unit_of_work import UnitOfWork
from backflush_shared.persistence.row_buffer import insert_at_commit

from backflush_distributor.adapters.tables import order_events, order_transitions, orders, storage_capacity
from backflush_distributor.domain.lifecycle import Milestones, Order, OrderStatus


def _milestones_to_json(milestones: Milestones) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    return json.dumps({key: plain(value) for key, value in asdict(milestones).items()})


def _milestones_from_json(text: str) -> Milestones:
    raw = json.loads(text)
    values: dict[str, Any] = {}
    for f in fields(Milestones):
        value = raw.get(f.name)
        if value is None:
            continue
        if f.name in ("produced", "consigned", "put_away_needed", "put_away_free", "stock_needed", "stock_free",
                      "stock_shipped", "stock_signed"):
            value = Decimal(value)
        elif f.name.endswith("_since"):
            value = datetime.fromisoformat(value)
        values[f.name] = value
    return Milestones(**values)


# The statements every event runs, built once: a statement built per call costs SQLAlchemy more (coercing each
# value, computing its cache key) than SQLite takes to run it; a prebuilt one keeps its cache key.
_LOAD = select(orders).where(orders.c.order_id == bindparam("order_id"))
_LOAD_FOR_UPDATE = _LOAD.with_for_update()
# one statement, rows locked in order id order: two transactions locking several orders take them in the same order
_LOAD_MANY_FOR_UPDATE = (select(orders).where(orders.c.order_id.in_(bindparam("order_ids", expanding=True)))
                         .order_by(orders.c.order_id).with_for_update())
_ADD = insert(orders)
_SAVE = update(orders).where(orders.c.order_id == bindparam("key"))  # SET: the columns named in the parameters


class OrderRow:
    """An order as stored, with what the domain needs and what the tables add."""

    def __init__(self, order: Order, fingerprint: str, status: OrderStatus, waiting_since: datetime | None,
                 details: dict[str, Any]) -> None:
        self.order = order
        self.fingerprint = fingerprint
        self.status = status
        self.waiting_since = waiting_since
        self.details = details


_LOCKED = "distributor_locked_orders"


def _locked(uow: UnitOfWork) -> dict[str, OrderRow]:
    """The orders this unit of work has locked, as it last saved them (dropped with its caches when a refused
    event's savepoint rolls back: then each is read again)."""
    locked: dict[str, OrderRow] | None = uow.caches.get(_LOCKED)
    if locked is None:
        locked = uow.caches[_LOCKED] = {}
    return locked


def _order_row(row: Any) -> OrderRow:
    order = Order(row["order_id"], row["flow"], row["item"], row["quantity"], _milestones_from_json(row["milestones"]))
    return OrderRow(order, row["placed_fingerprint"], order.status, row["waiting_since"], dict(row))


async def load(session: AsyncSession, order_id: str) -> OrderRow | None:
    """An order as committed (or as this transaction wrote it), without locking it."""
    row = (await session.execute(_LOAD, {"order_id": order_id})).mappings().one_or_none()
    return None if row is None else _order_row(row)


async def load_for_update(uow: UnitOfWork, order_id: str) -> OrderRow | None:
    """An order, its row locked until the unit of work ends (PostgreSQL; SQLite has one writer).

    Two events of one order may be applied at once (by the consumers of two topics, or two instances during a
    rebalance): each must start from what the other committed, or `save` writes back a stale order. A row this
    unit of work locked already (`lock_orders`, or an earlier event) is no one else's to change until it commits,
    so it is not read again."""
    locked = _locked(uow)
    kept = locked.get(order_id)
    if kept is not None:
        return kept
    row = (await uow.session.execute(_LOAD_FOR_UPDATE, {"order_id": order_id})).mappings().one_or_none()
    if row is None:
        return None
    loaded = locked[order_id] = _order_row(row)
    return loaded


async def lock_orders(uow: UnitOfWork, order_ids: Iterable[str]) -> None:
    """Lock and load the orders a batch is about with one statement, instead of one `load_for_update` per event."""
    locked = _locked(uow)
    wanted = sorted(set(order_ids) - locked.keys())
    for start in range(0, len(wanted), 500):
        rows = await uow.session.execute(_LOAD_MANY_FOR_UPDATE, {"order_ids": wanted[start:start + 500]})
        for row in rows.mappings().all():
            locked[row["order_id"]] = _order_row(row)


async def add(session: AsyncSession, order: Order, *, fingerprint: str, order_holder: str, ship_to: str,
              due_date: date, priority: str, at: datetime) -> None:
    status = order.status
    await session.execute(_ADD, dict(
        order_id=order.order_id, flow=order.flow, item=order.item, quantity=order.quantity,
        order_holder=order_holder, ship_to=ship_to, due_date=due_date, priority=priority,
        placed_fingerprint=fingerprint, milestones=_milestones_to_json(order.milestones),
        state=status.state.value, waiting_for=status.waiting_for, waiting_since=at, created_at=at, updated_at=at,
    ))


async def save(uow: UnitOfWork, order: Order, *, previous: OrderStatus, waiting_since: datetime | None,
               at: datetime) -> bool:
    """Store new milestones; returns whether the state or what it waits for changed."""
    status = order.status
    changed = status != previous
    values = dict(
        milestones=_milestones_to_json(order.milestones),
        state=status.state.value,
        waiting_for=status.waiting_for,
        waiting_since=(at if changed else waiting_since) if status.waiting_for else None,
        updated_at=at,
    )
    await uow.session.execute(_SAVE, dict(key=order.order_id, **values))
    locked = _locked(uow)
    before = locked.get(order.order_id)
    if before is not None:  # the next event of the order in this transaction starts from what was just saved
        locked[order.order_id] = OrderRow(order, before.fingerprint, status, values["waiting_since"],
                                          {**before.details, **values})
    return changed


async def record_transition(session: AsyncSession, order_id: str, status: OrderStatus, *, at: datetime,
                            cause_event_type: str, cause_event_id: str) -> None:
    """Appended to the order's history when the transaction commits (nothing reads it back before)."""
    insert_at_commit(session, order_transitions, dict(
        order_id=order_id, state=status.state.value, waiting_for=status.waiting_for, at=at,
        cause_event_type=cause_event_type, cause_event_id=cause_event_id,
    ))


async def record_event(session: AsyncSession, *, order_id: str, event_id: str, event_type: str, source: str,
                       topic: str, occurred_at: datetime, summary: str) -> None:
    """Appended to the order's history when the transaction commits (nothing reads it back before)."""
    insert_at_commit(session, order_events, dict(
        order_id=order_id, event_id=event_id, event_type=event_type, source=source, topic=topic,
        occurred_at=occurred_at, summary=summary,
    ))


async def capacities(session: AsyncSession) -> dict[str, Decimal]:
    """The storage capacity per kind the warehouse last announced (empty before its first announcement)."""
    rows = (await session.execute(select(storage_capacity.c.kind, storage_capacity.c.capacity))).all()
    return {kind: capacity for kind, capacity in rows}


async def set_capacity(session: AsyncSession, kind: str, capacity: Decimal, *, at: datetime,
                       cause_event_id: str) -> None:
    values = dict(capacity=capacity, announced_at=at, cause_event_id=cause_event_id)
    updated = await session.execute(update(storage_capacity).where(storage_capacity.c.kind == kind).values(**values))
    if updated.rowcount == 0:
        await session.execute(insert(storage_capacity).values(kind=kind, **values))


async def open_orders(session: AsyncSession, *, for_update: bool = False) -> list[OrderRow]:
    """Every order not closed, rejected or cancelled (locked in order id order with `for_update`)."""
    ids = (await session.execute(
        select(orders.c.order_id).where(orders.c.state.not_in(("closed", "rejected", "cancelled")))
        .order_by(orders.c.created_at, orders.c.order_id)
    )).scalars().all()
    if for_update and ids:
        # one statement, in order id order: two transactions locking several orders take them in the same order
        await session.execute(select(orders.c.order_id).where(orders.c.order_id.in_(ids))
                              .order_by(orders.c.order_id).with_for_update())
    return [row for row in [await load(session, order_id) for order_id in ids] if row is not None]


def now() -> datetime:
    return datetime.now(UTC)


async def forget_rejected(uow: UnitOfWork, order_id: str) -> None:
    """Drop a rejected order so that a corrected placement can take its id; its history rows stay."""
    _locked(uow).pop(order_id, None)
    await uow.session.execute(delete(orders).where(orders.c.order_id == order_id, orders.c.state == "rejected"))
