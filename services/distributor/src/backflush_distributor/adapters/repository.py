"""Loading and saving orders; the lifecycle itself stays in the domain."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.unit_of_work import UnitOfWork
from backflush_shared.persistence.fast_insert import insert_rows

from backflush_distributor.adapters.tables import order_events, order_transitions, orders, storage_capacity
from backflush_distributor.domain.lifecycle import Milestones, Order, OrderStatus


_MILESTONE_FIELDS = tuple(f.name for f in fields(Milestones))
_FIELD_NAMES = frozenset(_MILESTONE_FIELDS)
_DECIMAL_MILESTONES = frozenset(("produced", "consigned", "put_away_needed", "put_away_free", "stock_needed",
                                 "stock_free", "stock_shipped", "stock_signed"))
_TIME_MILESTONES = frozenset(name for name in _MILESTONE_FIELDS if name.endswith("_since"))


def _milestones_to_json(milestones: Milestones) -> str:
    # field by field: `dataclasses.asdict` deep-copies every value, which cost more than the rest of a save; only
    # the fields that hold a decimal or a time are looked at (the others are JSON as they are)
    plain = dict(milestones.__dict__)  # the fields, in their order (a frozen dataclass keeps them there)
    for name in _DECIMAL_MILESTONES:
        value = plain[name]
        if isinstance(value, Decimal):
            plain[name] = format(value, "f")
    for name in _TIME_MILESTONES:
        value = plain[name]
        if isinstance(value, datetime):
            plain[name] = value.isoformat()
    return json.dumps(plain)


def _milestones_from_json(text: str) -> Milestones:
    values: dict[str, Any] = {}
    for name, value in json.loads(text).items():
        if value is None or name not in _FIELD_NAMES:
            continue
        if name in _DECIMAL_MILESTONES:
            value = Decimal(value)
        elif name in _TIME_MILESTONES:
            value = datetime.fromisoformat(value)
        values[name] = value
    # the defaults with what was stored: `Milestones(**values)` passes each of the 26 fields through `__init__`
    return _NO_MILESTONES.but(values)


_NO_MILESTONES = Milestones()


# The statements every event runs, built once: a statement built per call costs SQLAlchemy more (coercing each
# value, computing its cache key) than SQLite takes to run it; a prebuilt one keeps its cache key.
# An order is loaded with the columns an `OrderRow` holds, not the dates and states the tools read: each date or
# time column read is parsed in Python, and the rows of a whole batch are read at once.
_ROW_COLUMNS = (orders.c.order_id, orders.c.flow, orders.c.item, orders.c.quantity, orders.c.order_holder,
                orders.c.ship_to, orders.c.placed_fingerprint, orders.c.milestones, orders.c.waiting_since)
_LOAD = select(*_ROW_COLUMNS).where(orders.c.order_id == bindparam("order_id"))
_CAPACITIES_NOW = select(storage_capacity.c.kind, storage_capacity.c.capacity)
_LOAD_FOR_UPDATE = _LOAD.with_for_update()
# one statement, rows locked in order id order: two transactions locking several orders take them in the same order
_LOAD_MANY_FOR_UPDATE = (select(*_ROW_COLUMNS).where(orders.c.order_id.in_(bindparam("order_ids", expanding=True)))
                         .order_by(orders.c.order_id).with_for_update())
_ADD = insert(orders)
_SAVE = update(orders).where(orders.c.order_id == bindparam("key"))  # SET: the columns named in the parameters


class OrderRow:
    """An order as stored, with what the domain needs and what the tables add (`details`: the stored columns the
    handlers read, `order_holder` and `ship_to` among them; what `add` and `save` wrote, once they did)."""

    def __init__(self, order: Order, fingerprint: str, status: OrderStatus, waiting_since: datetime | None,
                 details: dict[str, Any]) -> None:
        self.order = order
        self.fingerprint = fingerprint
        self.status = status
        self.waiting_since = waiting_since
        self.details = details


_LOCKED = "distributor_locked_orders"
_ABSENT = "distributor_absent_orders"
_PENDING = "distributor_pending_orders"
_CAPACITIES = "distributor_capacities"


def _locked(uow: UnitOfWork) -> dict[str, OrderRow]:
    """The orders this unit of work has locked, as it last saved them (dropped with its caches when a refused
    event's savepoint rolls back: then each is read again)."""
    locked: dict[str, OrderRow] | None = uow.caches.get(_LOCKED)
    if locked is None:
        locked = uow.caches[_LOCKED] = {}
    return locked


def _absent(uow: UnitOfWork) -> set[str]:
    """Order ids `lock_orders` looked for and found no row of (until this unit of work adds one)."""
    absent: set[str] | None = uow.caches.get(_ABSENT)
    if absent is None:
        absent = uow.caches[_ABSENT] = set()
    return absent


def _order_row(row: Any) -> OrderRow:
    details = dict(row)
    order = Order(details["order_id"], details["flow"], details["item"], details["quantity"],
                  _milestones_from_json(details["milestones"]))
    return OrderRow(order, details["placed_fingerprint"], order.status, details["waiting_since"], details)


# -- writes buffered until the commit --------------------------------------------------------------------------------
# An order moves several times in a batch (its events of many topics come together when thousands of orders run at
# once): one INSERT or UPDATE per event, through SQLAlchemy, cost more than the rest of the event. So within a batch
# run without savepoints the orders added or saved are kept in the unit of work's caches (with the locked rows the
# next event starts from) and written once each, with one statement per kind, just before the commit. A refusal in
# such a run rolls the whole run back, buffer included. A run with a savepoint per event (`UnitOfWork.defers_writes`)
# writes at once instead: a refused event's `forget_caches` drops the buffer, and with it the other events' writes.
# Whatever reads the orders table through SQL in the transaction writes the buffer first (`_write_pending`).


class _Pending:
    __slots__ = ("insert", "order", "values")

    def __init__(self, insert: bool, order: Order, values: dict[str, Any]) -> None:
        self.insert, self.order, self.values = insert, order, values


def _buffer(uow: UnitOfWork, order: Order, values: dict[str, Any], *, insert: bool) -> None:
    pending: dict[str, _Pending] | None = uow.caches.get(_PENDING)
    if pending is None:
        pending = uow.caches[_PENDING] = {}
    before = pending.get(order.order_id)
    if before is not None:  # added, or saved, earlier in the batch: one row with the latest values
        insert, values = before.insert, {**before.values, **values}
    pending[order.order_id] = _Pending(insert, order, values)
    # registered at every write: a refused event's `forget_caches` drops the action along with the buffer
    uow.before_commit(_PENDING, _write_pending)


async def _write_pending(uow: UnitOfWork) -> None:
    """Write the orders added and saved since the last write, one statement per kind (serialised once each)."""
    pending: dict[str, _Pending] | None = uow.caches.pop(_PENDING, None)
    if not pending:
        return
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for order_id, entry in pending.items():
        values = {**entry.values, "milestones": _milestones_to_json(entry.order.milestones)}
        if entry.insert:
            inserts.append(values)
        else:
            updates.append({"key": order_id, **values})
    if inserts:
        await insert_rows(uow.session, orders, inserts, _ADD)
    if updates:
        await uow.session.execute(_SAVE, updates)


async def load(session: AsyncSession, order_id: str) -> OrderRow | None:
    """An order as committed (or as this transaction wrote it), without locking it."""
    row = (await session.execute(_LOAD, {"order_id": order_id})).mappings().one_or_none()
    return None if row is None else _order_row(row)


async def load_current(uow: UnitOfWork, order_id: str) -> OrderRow | None:
    """An order as this unit of work left it, without locking it: the row it locked, else the table's."""
    kept = _locked(uow).get(order_id)
    if kept is not None:
        return kept
    if order_id in _absent(uow):
        return None
    await _write_pending(uow)
    return await load(uow.session, order_id)


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
    locked, absent = _locked(uow), _absent(uow)
    wanted = sorted(set(order_ids) - locked.keys())
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        result = await uow.session.execute(_LOAD_MANY_FOR_UPDATE, {"order_ids": chunk})
        keys = tuple(result.keys())  # once, not per row as a row mapping asks
        for row in result.all():
            loaded = _order_row(zip(keys, row, strict=True))
            locked[loaded.order.order_id] = loaded
        absent.update(order_id for order_id in chunk if order_id not in locked)


async def add(uow: UnitOfWork, order: Order, *, fingerprint: str, order_holder: str, ship_to: str,
              due_date: date, priority: str, at: datetime) -> None:
    status = order.status
    values = dict(
        order_id=order.order_id, flow=order.flow, item=order.item, quantity=order.quantity,
        order_holder=order_holder, ship_to=ship_to, due_date=due_date, priority=priority,
        placed_fingerprint=fingerprint, state=status.state.value, waiting_for=status.waiting_for, waiting_since=at,
        created_at=at, updated_at=at,
    )
    if not uow.defers_writes:
        await uow.session.execute(_ADD, {**values, "milestones": _milestones_to_json(order.milestones)})
        return
    # an inserted row is this transaction's alone until it commits: the order's next events start from it
    _locked(uow)[order.order_id] = OrderRow(order, fingerprint, status, at, values)
    _absent(uow).discard(order.order_id)
    _buffer(uow, order, values, insert=True)


async def save(uow: UnitOfWork, order: Order, *, previous: OrderStatus, waiting_since: datetime | None,
               at: datetime) -> bool:
    """Store new milestones; returns whether the state or what it waits for changed."""
    status = order.status
    changed = status != previous
    values = dict(
        state=status.state.value,
        waiting_for=status.waiting_for,
        waiting_since=(at if changed else waiting_since) if status.waiting_for else None,
        updated_at=at,
    )
    locked = _locked(uow)
    before = locked.get(order.order_id)
    if before is not None:  # the next event of the order in this transaction starts from what was just saved
        locked[order.order_id] = OrderRow(order, before.fingerprint, status, values["waiting_since"],
                                          {**before.details, **values})
    if before is not None and uow.defers_writes:
        _buffer(uow, order, values, insert=False)
    else:
        await uow.session.execute(_SAVE, dict(key=order.order_id, milestones=_milestones_to_json(order.milestones),
                                              **values))
    return changed


async def record_transition(uow: UnitOfWork, order_id: str, status: OrderStatus, *, at: datetime,
                            cause_event_type: str, cause_event_id: str) -> None:
    """Appended to the order's history when the unit of work commits (nothing reads it back before)."""
    uow.insert_at_commit(order_transitions, dict(
        order_id=order_id, state=status.state.value, waiting_for=status.waiting_for, at=at,
        cause_event_type=cause_event_type, cause_event_id=cause_event_id,
    ))


async def record_event(uow: UnitOfWork, *, order_id: str, event_id: str, event_type: str, source: str,
                       topic: str, occurred_at: datetime, summary: str) -> None:
    """Appended to the order's history when the unit of work commits (nothing reads it back before)."""
    uow.insert_at_commit(order_events, dict(
        order_id=order_id, event_id=event_id, event_type=event_type, source=source, topic=topic,
        occurred_at=occurred_at, summary=summary,
    ))


async def capacities(uow: UnitOfWork) -> dict[str, Decimal]:
    """The storage capacity per kind the warehouse last announced (empty before its first announcement): read
    once per unit of work, as every order placed in a batch asks."""
    known: dict[str, Decimal] | None = uow.caches.get(_CAPACITIES)
    if known is None:
        rows = (await uow.session.execute(_CAPACITIES_NOW)).all()
        known = uow.caches[_CAPACITIES] = {kind: capacity for kind, capacity in rows}
    return dict(known)


async def set_capacity(uow: UnitOfWork, kind: str, capacity: Decimal, *, at: datetime,
                       cause_event_id: str) -> None:
    uow.caches.pop(_CAPACITIES, None)
    session = uow.session
    values = dict(capacity=capacity, announced_at=at, cause_event_id=cause_event_id)
    updated = await session.execute(update(storage_capacity).where(storage_capacity.c.kind == kind).values(**values))
    if updated.rowcount == 0:
        await session.execute(insert(storage_capacity).values(kind=kind, **values))


async def open_orders(uow: UnitOfWork, *, for_update: bool = False) -> list[OrderRow]:
    """Every order not closed, rejected or cancelled (locked in order id order with `for_update`), as this unit of
    work left them."""
    await _write_pending(uow)
    session = uow.session
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
    await _write_pending(uow)
    _locked(uow).pop(order_id, None)
    await uow.session.execute(delete(orders).where(orders.c.order_id == order_id, orders.c.state == "rejected"))
