"""Every SQL statement of the warehouse: locations and their space, stored units, waiting put-aways, shipments,
cancellations and finished-goods stock for sale. The decisions stay in the handlers and the domain.

Every handler holds the storage lock (`handlers.STORAGE_LOCK`) before it calls anything here, so what a function
reads is not changed by another transaction before the same handler writes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from sqlalchemy import RowMapping, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.unit_of_work import UnitOfWork

from backflush_warehouse.adapters.tables import (
    cancelled_lots,
    cancelled_orders,
    finished_stock,
    locations,
    ownership_transfers,
    shipments,
    stock_allocations,
    stock_orders,
    stock_units,
    waiting_put_aways,
)
from backflush_warehouse.domain.storage import Location, LocationKind

# The statements events run, built once: a statement built per call costs SQLAlchemy more (coercing each value,
# computing its cache key) than SQLite takes to run it; a prebuilt one keeps its cache key. A WHERE parameter is
# named apart from the columns (`key_*`), since an UPDATE takes its SET columns from the parameters' names.
_ORDER = bindparam("key_order")
_IDS = bindparam("key_ids", expanding=True)

# -- locations and their used space -------------------------------------------------------------------------------

_LOCATIONS = select(locations).order_by(locations.c.position)
_OCCUPIED = select(locations.c.code, locations.c.used)
_OCCUPIED_FOR_UPDATE = (
    select(locations.c.code, locations.c.used).where(locations.c.code.in_(bindparam("key_codes", expanding=True)))
    .order_by(locations.c.code).with_for_update()
)
_SET_LOCATION = update(locations).where(locations.c.code == bindparam("key_code"))  # SET: the parameters named
_LOCATION_CODES = select(locations.c.code)
_ADD_LOCATION = insert(locations)


# What a unit of work read of the locations, kept until it ends (or a refused event's savepoint rolls back, which
# drops its caches): every handler holds the storage lock, so no other transaction changes them
# meanwhile, and every change here updates or forgets what was kept.
_LOCATIONS_KEY = "warehouse_locations"
_OCCUPIED_KEY = "warehouse_occupied"


async def read_locations(session: AsyncSession) -> list[Location]:
    """Every location, in the order put-away fills them, as stored now."""
    rows = (await session.execute(_LOCATIONS)).mappings().all()
    return [Location(r["code"], LocationKind(r["kind"]), r["capacity"]) for r in rows]


async def read_occupied(session: AsyncSession) -> dict[str, Decimal]:
    """Each location's used space, as stored now."""
    return {code: used for code, used in (await session.execute(_OCCUPIED)).all()}


async def locations_in_order(uow: UnitOfWork) -> list[Location]:
    """Every location, in the order put-away fills them (read once per unit of work)."""
    cached: list[Location] | None = uow.caches.get(_LOCATIONS_KEY)
    if cached is None:
        cached = uow.caches[_LOCATIONS_KEY] = await read_locations(uow.session)
    return list(cached)


async def occupied(uow: UnitOfWork) -> dict[str, Decimal]:
    """Each location's used space (read once per unit of work, kept up to date by `occupy`)."""
    cached: dict[str, Decimal] | None = uow.caches.get(_OCCUPIED_KEY)
    if cached is None:
        await _write_used(uow)  # what `occupy` kept for the commit, before the table is read
        cached = uow.caches[_OCCUPIED_KEY] = await read_occupied(uow.session)
    return dict(cached)


# What `occupy` changed in the batch, by location, written once just before the commit: every put-away and every
# shipment moves a location's `used`, and a read and a write per event cost more than the rest of the event when
# thousands of orders run at once. In a batch run with a savepoint per event (after a refusal) it writes at once:
# a refused event's `forget_caches` drops what was kept, the other events' changes with it.
_USED_CHANGES_KEY = "warehouse_used_changes"


async def occupy(uow: UnitOfWork, changes: dict[str, Decimal]) -> None:
    """Keep each location's `used` equal to the units stored there (the audit checks it).

    `used` is decimal text, so the sum is made here, not in SQL: the rows are read locked (in code order) and
    every handler already holds the storage lock, so no other transaction writes between."""
    if not changes:
        return
    kept: dict[str, Decimal] | None = uow.caches.get(_OCCUPIED_KEY)
    if kept is not None:
        for code, change in changes.items():
            kept[code] = kept.get(code, Decimal(0)) + change
    if not uow.defers_writes:
        await _write_used(uow)
        await _add_used(uow, changes)
        return
    pending: dict[str, Decimal] | None = uow.caches.get(_USED_CHANGES_KEY)
    if pending is None:
        pending = uow.caches[_USED_CHANGES_KEY] = {}
    for code, change in changes.items():
        pending[code] = pending.get(code, Decimal(0)) + change
    # registered at every change: a refused event's `forget_caches` drops the action along with the changes
    uow.before_commit(_USED_CHANGES_KEY, _write_used)


async def _write_used(uow: UnitOfWork) -> None:
    pending: dict[str, Decimal] | None = uow.caches.pop(_USED_CHANGES_KEY, None)
    if pending:
        await _add_used(uow, pending)


async def _add_used(uow: UnitOfWork, changes: dict[str, Decimal]) -> None:
    session = uow.session
    codes = sorted(changes)
    used = {code: value for code, value in (await session.execute(_OCCUPIED_FOR_UPDATE, {"key_codes": codes})).all()}
    now_used = {code: used.get(code, Decimal(0)) + changes[code] for code in codes}
    await session.execute(_SET_LOCATION, [{"key_code": code, "used": value} for code, value in now_used.items()])


async def location_codes(session: AsyncSession) -> set[str]:
    return set((await session.execute(_LOCATION_CODES)).scalars().all())


async def add_location(session: AsyncSession, *, code: str, kind: str, capacity: Decimal, position: int) -> None:
    """At start, laying out the racks (no unit of work holds the locations then)."""
    await session.execute(_ADD_LOCATION, {"code": code, "kind": kind, "capacity": capacity, "position": position})


async def update_location(session: AsyncSession, *, code: str, kind: str, capacity: Decimal, position: int) -> None:
    """At start, laying out the racks (no unit of work holds the locations then)."""
    await session.execute(_SET_LOCATION, {"key_code": code, "kind": kind, "capacity": capacity, "position": position})


# -- what a batch's events read of their orders ---------------------------------------------------------------------

# The rows of the batch's orders, read once per batch (`load_orders`, from the service's `load_batch`) instead of a
# few statements per event: every handler holds the storage lock, taken before they are read, so no other
# transaction changes them until the batch commits. What the batch itself changes, every write here updates (the
# cancellations, which are only ever added) or forgets (everything else: the next read of that order goes to the
# table). A refused event's savepoint drops the unit of work's caches, and with them all of this.
_BATCH_KEY = "warehouse_batch_orders"
_LOAD_CHUNK = 500  # order ids per statement: far under SQLite's and asyncpg's limits on parameters


@dataclass
class _Known:
    """One table's rows of the orders in `ids`, by order (absent: none); an order not in `ids` is read from the
    table."""

    ids: set[str] = field(default_factory=set)
    rows: dict[str, Any] = field(default_factory=dict)

    def forget(self, *order_ids: str) -> None:
        for order_id in order_ids:
            self.ids.discard(order_id)
            self.rows.pop(order_id, None)


@dataclass
class _BatchOrders:
    units: _Known = field(default_factory=_Known)  # every unit of the order (any status), by id
    shipments: _Known = field(default_factory=_Known)
    cancelled: _Known = field(default_factory=_Known)  # True when the order is cancelled
    cancelled_lots: _Known = field(default_factory=_Known)  # the order's cancelled lots (a set)
    stock_orders: _Known = field(default_factory=_Known)
    finished_stock: _Known = field(default_factory=_Known)  # by run id


def _batch(uow: UnitOfWork) -> _BatchOrders | None:
    batch: _BatchOrders | None = uow.caches.get(_BATCH_KEY)
    return batch


_Pick = Callable[[_BatchOrders], _Known]


async def _one_row(uow: UnitOfWork, pick: _Pick, key: str, statement: Any, params: dict[str, str]) -> RowMapping | None:
    """The row the batch knows for `key` in the table `pick` names, or else the table's."""
    batch = _batch(uow)
    if batch is not None and key in pick(batch).ids:
        found: RowMapping | None = pick(batch).rows.get(key)
        return found
    return (await uow.session.execute(statement, params)).mappings().one_or_none()


def _forget(uow: UnitOfWork, pick: _Pick, *keys: str) -> None:
    batch = _batch(uow)
    if batch is not None:
        pick(batch).forget(*keys)


async def load_orders(uow: UnitOfWork, order_ids: Iterable[str]) -> None:
    """Read the rows the handlers read per order (units, shipment, cancellations, stock order, stocked run) for
    every order in `order_ids`, a few statements for the lot. The caller holds the storage lock."""
    ids = sorted(set(order_ids))
    if not ids:
        return
    batch = _batch(uow)
    if batch is None:
        batch = uow.caches[_BATCH_KEY] = _BatchOrders()
    session = uow.session
    for start in range(0, len(ids), _LOAD_CHUNK):
        chunk = ids[start:start + _LOAD_CHUNK]
        params = {"key_ids": chunk}
        units: dict[str, list[RowMapping]] = {}
        for row in (await session.execute(_UNITS_OF_ORDERS, params)).mappings().all():
            units.setdefault(row["order_id"], []).append(row)
        shipped = {row["order_id"]: row for row in (await session.execute(_SHIPMENTS_OF_ORDERS, params)).mappings()}
        cancelled = set((await session.execute(_CANCELLED_OF_ORDERS, params)).scalars().all())
        lots: dict[str, set[str]] = {}
        for order_id, lot in (await session.execute(_CANCELLED_LOTS_OF_ORDERS, params)).all():
            lots.setdefault(order_id, set()).add(lot)
        stock = {row["order_id"]: row for row in (await session.execute(_STOCK_ORDERS_OF_ORDERS, params)).mappings()}
        runs = {row["run_id"]: row for row in (await session.execute(_FINISHED_STOCK_OF_RUNS, params)).mappings()}
        for known, rows in ((batch.units, units), (batch.shipments, shipped), (batch.stock_orders, stock),
                            (batch.finished_stock, runs), (batch.cancelled_lots, lots),
                            (batch.cancelled, dict.fromkeys(cancelled, True))):
            known.ids.update(chunk)
            for order_id in chunk:
                known.rows.pop(order_id, None)
            known.rows.update(rows)


def _units_of(uow: UnitOfWork, order_id: str) -> list[RowMapping] | None:
    """The order's units (any status, by id) as the batch knows them; None when they must be read."""
    batch = _batch(uow)
    if batch is None or order_id not in batch.units.ids:
        return None
    units: list[RowMapping] = batch.units.rows.get(order_id, [])
    return units


def _forget_units(uow: UnitOfWork, *order_ids: str) -> None:
    _forget(uow, attrgetter("units"), *order_ids)


def _forget_all_units(uow: UnitOfWork) -> None:
    """A write by unit id (a run's units split for a stock order): which order's units it changed is not known
    here, so no order's are kept."""
    batch = _batch(uow)
    if batch is not None:
        batch.units = _Known()


# -- stored units ---------------------------------------------------------------------------------------------------

_ADD_UNITS = insert(stock_units)
_UNITS_WITH_STATUS = (
    select(stock_units).where(stock_units.c.order_id == _ORDER, stock_units.c.status == bindparam("key_status"))
    .order_by(stock_units.c.id)
)
_UNITS_OF_KIND = _UNITS_WITH_STATUS.where(stock_units.c.kind == bindparam("key_kind"))
_UNITS_OF_LOT = _UNITS_WITH_STATUS.where(stock_units.c.lot == bindparam("key_lot"))
_ANY_UNIT = select(stock_units.c.id).where(stock_units.c.order_id == _ORDER).limit(1)
_SET_UNITS = update(stock_units).where(stock_units.c.id.in_(_IDS))  # SET: the columns named in the parameters
_SET_UNIT = update(stock_units).where(stock_units.c.id == bindparam("key_id"))
_DELETE_UNITS = delete(stock_units).where(stock_units.c.id.in_(_IDS))
_STORED_QUANTITIES = select(stock_units.c.location, stock_units.c.quantity).where(stock_units.c.status == "stored")
_ALL_UNITS = select(stock_units)
_UNITS_OF_ORDERS = select(stock_units).where(stock_units.c.order_id.in_(_IDS)).order_by(stock_units.c.id)
_FREE_UNITS = (
    select(stock_units.c.id, stock_units.c.order_id, stock_units.c.lot, stock_units.c.location,
           stock_units.c.quantity)
    .join(finished_stock, finished_stock.c.run_id == stock_units.c.order_id)
    .where(finished_stock.c.item == bindparam("key_item"), finished_stock.c.status == "stocked",
           stock_units.c.status == "stored", stock_units.c.kind == LocationKind.RACK.value)
    .order_by(finished_stock.c.stocked_at, finished_stock.c.run_id, stock_units.c.id)
)


async def add_stored_units(uow: UnitOfWork, *, order_id: str, item: str, lot: str, kind: LocationKind,
                           owner: str, placements: Iterable[tuple[str, Decimal]], at: datetime) -> None:
    """Units stored at each (location, quantity), in that order (their ids follow it)."""
    rows = [dict(order_id=order_id, item=item, lot=lot, location=location, kind=kind.value, quantity=quantity,
                 owner=owner, status="stored", placed_at=at, updated_at=at) for location, quantity in placements]
    if rows:
        _forget_units(uow, order_id)
        await uow.session.execute(_ADD_UNITS, rows)


async def units_with_status(uow: UnitOfWork, order_id: str, status: str) -> Sequence[RowMapping]:
    """The order's units in `status`, in the order they were placed."""
    known = _units_of(uow, order_id)
    if known is not None:
        return [u for u in known if u["status"] == status]
    found = await uow.session.execute(_UNITS_WITH_STATUS, {"key_order": order_id, "key_status": status})
    return found.mappings().all()


async def stored_units(uow: UnitOfWork, order_id: str, kind: LocationKind) -> Sequence[RowMapping]:
    """The order's units still stored in locations of `kind`, in the order they were placed."""
    known = _units_of(uow, order_id)
    if known is not None:
        return [u for u in known if u["status"] == "stored" and u["kind"] == kind.value]
    return (await uow.session.execute(_UNITS_OF_KIND, {"key_order": order_id, "key_status": "stored",
                                                   "key_kind": kind.value})).mappings().all()


async def stored_units_of_lot(uow: UnitOfWork, order_id: str, lot: str) -> Sequence[RowMapping]:
    known = _units_of(uow, order_id)
    if known is not None:
        return [u for u in known if u["status"] == "stored" and u["lot"] == lot]
    return (await uow.session.execute(_UNITS_OF_LOT, {"key_order": order_id, "key_status": "stored",
                                                  "key_lot": lot})).mappings().all()


async def holds_any_unit(uow: UnitOfWork, order_id: str) -> bool:
    """Whether any unit of the order was ever received (whatever became of it)."""
    known = _units_of(uow, order_id)
    if known is not None:
        return bool(known)
    return (await uow.session.execute(_ANY_UNIT, {"key_order": order_id})).first() is not None


async def set_units_status(uow: UnitOfWork, units: Sequence[Any], status: str, at: datetime,
                           *, owner: str | None = None) -> None:
    values: dict[str, Any] = {"key_ids": [u["id"] for u in units], "status": status, "updated_at": at}
    if owner is not None:
        values["owner"] = owner
    _forget_units(uow, *{u["order_id"] for u in units})
    await uow.session.execute(_SET_UNITS, values)


async def set_unit_quantity(uow: UnitOfWork, unit_id: int, quantity: Decimal, at: datetime) -> None:
    _forget_all_units(uow)
    await uow.session.execute(_SET_UNIT, {"key_id": unit_id, "quantity": quantity, "updated_at": at})


async def delete_units(uow: UnitOfWork, unit_ids: Sequence[int]) -> None:
    _forget_all_units(uow)
    await uow.session.execute(_DELETE_UNITS, {"key_ids": list(unit_ids)})


async def stored_quantities(session: AsyncSession) -> list[tuple[str, Decimal]]:
    """(location, quantity) of every stored unit (for people: the units themselves, not the kept `used`)."""
    return [(location, quantity) for location, quantity in (await session.execute(_STORED_QUANTITIES)).all()]


async def all_units(session: AsyncSession) -> Sequence[RowMapping]:
    """Every unit the warehouse holds or delivered (for people)."""
    return (await session.execute(_ALL_UNITS)).mappings().all()


async def record_ownership_transfer(uow: UnitOfWork, *, order_id: str, item: str, lot: str,
                                    quantity: Decimal, from_owner: str, to_owner: str, at: datetime) -> None:
    """Appended when the unit of work commits: no handler reads the transfers back (only the audit and tests)."""
    uow.insert_at_commit(ownership_transfers, dict(order_id=order_id, item=item, lot=lot, quantity=quantity,
                                                   from_owner=from_owner, to_owner=to_owner, at=at))


async def free_units(session: AsyncSession, item: str) -> list[tuple[int, str, str, str, Decimal]]:
    """(unit id, run id, lot, location, quantity) of the item's stocked runs' racked units, first in, first out:
    the run stocked first, then placement."""
    return [(r[0], r[1], r[2], r[3], r[4]) for r in (await session.execute(_FREE_UNITS, {"key_item": item})).all()]


# -- waiting put-aways ----------------------------------------------------------------------------------------------

_ADD_WAITING = insert(waiting_put_aways)
_WAITING = select(waiting_put_aways).order_by(waiting_put_aways.c.id)
_ANY_WAITING = select(waiting_put_aways.c.id).where(waiting_put_aways.c.order_id == _ORDER).limit(1)
_DELETE_WAITING = delete(waiting_put_aways).where(waiting_put_aways.c.id == bindparam("key_id"))
_DELETE_WAITING_OF_ORDER = delete(waiting_put_aways).where(waiting_put_aways.c.order_id == _ORDER)
_DELETE_WAITING_OF_LOT = _DELETE_WAITING_OF_ORDER.where(waiting_put_aways.c.lot == bindparam("key_lot"))


_NONE_WAITING_KEY = "warehouse_none_waiting"


async def add_waiting_put_away(uow: UnitOfWork, *, order_id: str, item: str, lot: str, quantity: Decimal,
                               kind: LocationKind, owner: str, cause_event_id: str, since: datetime) -> None:
    uow.caches.pop(_NONE_WAITING_KEY, None)
    await uow.session.execute(_ADD_WAITING, dict(order_id=order_id, item=item, lot=lot, quantity=quantity,
                                             kind=kind.value, owner=owner, cause_event_id=cause_event_id,
                                             since=since))


async def waiting_put_aways_in_order(session: AsyncSession) -> Sequence[RowMapping]:
    """Every waiting put-away, in arrival order."""
    return (await session.execute(_WAITING)).mappings().all()


async def waiting_put_aways_now(uow: UnitOfWork) -> Sequence[RowMapping]:
    """Every waiting put-away, in arrival order; once none is found, not read again in the unit of work until one
    is added (every shipment asks, and the storage lock keeps other transactions from adding any meanwhile)."""
    if uow.caches.get(_NONE_WAITING_KEY):
        return []
    rows = await waiting_put_aways_in_order(uow.session)
    if not rows:
        uow.caches[_NONE_WAITING_KEY] = True
    return rows


async def holds_goods_of(uow: UnitOfWork, order_id: str) -> bool:
    """Whether the warehouse holds, or held, anything of the order: units (any status), a put-away waiting for
    space, or a shipment."""
    if await holds_any_unit(uow, order_id) or await shipment(uow, order_id) is not None:
        return True
    return (await uow.session.execute(_ANY_WAITING, {"key_order": order_id})).first() is not None


async def has_waiting_put_away(session: AsyncSession, order_id: str) -> bool:
    return (await session.execute(_ANY_WAITING, {"key_order": order_id})).first() is not None


async def delete_waiting_put_away(session: AsyncSession, waiting_id: int) -> None:
    await session.execute(_DELETE_WAITING, {"key_id": waiting_id})


async def delete_waiting_put_aways(session: AsyncSession, order_id: str, *, lot: str | None = None) -> None:
    """The order's waiting put-aways (of one lot only, with `lot`)."""
    if lot is None:
        await session.execute(_DELETE_WAITING_OF_ORDER, {"key_order": order_id})
    else:
        await session.execute(_DELETE_WAITING_OF_LOT, {"key_order": order_id, "key_lot": lot})


# -- shipments --------------------------------------------------------------------------------------------------------

_SHIPMENT = select(shipments).where(shipments.c.order_id == _ORDER)
_ADD_SHIPMENT = insert(shipments)
_SET_SHIPMENT = update(shipments).where(shipments.c.order_id == _ORDER)  # SET: the columns named in the parameters
_SHIPMENTS_OF_ORDERS = select(shipments).where(shipments.c.order_id.in_(_IDS))


async def shipment(uow: UnitOfWork, order_id: str) -> RowMapping | None:
    return await _one_row(uow, attrgetter("shipments"), order_id, _SHIPMENT, {"key_order": order_id})


async def is_shipped(uow: UnitOfWork, order_id: str) -> bool:
    return await shipment(uow, order_id) is not None


def _forget_shipment(uow: UnitOfWork, order_id: str) -> None:
    _forget(uow, attrgetter("shipments"), order_id)


async def add_shipment(uow: UnitOfWork, *, order_id: str, item: str, quantity: Decimal, ship_to: str,
                       order_holder: str, lots: Sequence[str], at: datetime) -> None:
    _forget_shipment(uow, order_id)
    await uow.session.execute(_ADD_SHIPMENT, dict(order_id=order_id, item=item, quantity=quantity, ship_to=ship_to,
                                              order_holder=order_holder, lots=json.dumps(list(lots)),
                                              shipped_at=at))


async def add_to_shipment(uow: UnitOfWork, shipped: RowMapping, *, quantity: Decimal, lots: Sequence[str],
                          at: datetime) -> None:
    """Another part shipped to the order: its shipment adds it up and waits for a new signature."""
    _forget_shipment(uow, shipped["order_id"])
    await uow.session.execute(_SET_SHIPMENT, dict(
        key_order=shipped["order_id"], quantity=shipped["quantity"] + quantity,
        lots=json.dumps(sorted(set(json.loads(shipped["lots"])) | set(lots))), shipped_at=at, signed_by=None,
        signed_at=None))


async def sign_shipment(uow: UnitOfWork, order_id: str, *, signed_by: str, signed_at: datetime) -> None:
    _forget_shipment(uow, order_id)
    await uow.session.execute(_SET_SHIPMENT, {"key_order": order_id, "signed_by": signed_by, "signed_at": signed_at})


# -- cancellations ----------------------------------------------------------------------------------------------------

_CANCELLED_ORDER = select(cancelled_orders.c.order_id).where(cancelled_orders.c.order_id == _ORDER)
_ADD_CANCELLED_ORDER = insert(cancelled_orders)
_CANCELLED_LOT = select(cancelled_lots.c.lot).where(cancelled_lots.c.order_id == _ORDER,
                                                    cancelled_lots.c.lot == bindparam("key_lot"))
_ADD_CANCELLED_LOT = insert(cancelled_lots)
_CANCELLED_OF_ORDERS = select(cancelled_orders.c.order_id).where(cancelled_orders.c.order_id.in_(_IDS))
_CANCELLED_LOTS_OF_ORDERS = select(cancelled_lots.c.order_id, cancelled_lots.c.lot).where(
    cancelled_lots.c.order_id.in_(_IDS))


async def is_cancelled(uow: UnitOfWork, order_id: str) -> bool:
    batch = _batch(uow)
    if batch is not None and order_id in batch.cancelled.ids:
        return order_id in batch.cancelled.rows
    found = await uow.session.execute(_CANCELLED_ORDER, {"key_order": order_id})
    return found.scalar_one_or_none() is not None


async def add_cancelled_order(uow: UnitOfWork, order_id: str, at: datetime) -> None:
    await uow.session.execute(_ADD_CANCELLED_ORDER, {"order_id": order_id, "at": at})
    batch = _batch(uow)
    if batch is not None and order_id in batch.cancelled.ids:
        batch.cancelled.rows[order_id] = True  # a cancellation is only ever added: kept, not forgotten


async def is_lot_cancelled(uow: UnitOfWork, order_id: str, lot: str) -> bool:
    batch = _batch(uow)
    if batch is not None and order_id in batch.cancelled_lots.ids:
        return lot in batch.cancelled_lots.rows.get(order_id, ())
    found = await uow.session.execute(_CANCELLED_LOT, {"key_order": order_id, "key_lot": lot})
    return found.scalar_one_or_none() is not None


async def add_cancelled_lot(uow: UnitOfWork, order_id: str, lot: str, at: datetime) -> None:
    await uow.session.execute(_ADD_CANCELLED_LOT, {"order_id": order_id, "lot": lot, "at": at})
    batch = _batch(uow)
    if batch is not None and order_id in batch.cancelled_lots.ids:
        batch.cancelled_lots.rows.setdefault(order_id, set()).add(lot)


# -- finished-goods stock for sale --------------------------------------------------------------------------------

_RUN = bindparam("key_run")
_FINISHED_STOCK = select(finished_stock).where(finished_stock.c.run_id == _RUN)
_ADD_FINISHED_STOCK = insert(finished_stock)
_SET_FINISHED_STOCK = update(finished_stock).where(finished_stock.c.run_id == _RUN)
_FINISHED_STOCK_IN_ORDER = select(finished_stock).order_by(finished_stock.c.stocked_at, finished_stock.c.run_id)
_STOCKED_ITEMS = select(finished_stock.c.item, func.count()).group_by(finished_stock.c.item)
_STOCK_ORDER = select(stock_orders).where(stock_orders.c.order_id == _ORDER)
_ADD_STOCK_ORDER = insert(stock_orders)
_SET_STOCK_ORDER = update(stock_orders).where(stock_orders.c.order_id == _ORDER)
_WAITING_STOCK_ORDERS = (
    select(stock_orders).where(stock_orders.c.item == bindparam("key_item"), stock_orders.c.status == "waiting")
    .order_by(stock_orders.c.seq)
)
_STOCK_ORDERS_IN_ORDER = select(stock_orders).order_by(stock_orders.c.seq)
_ADD_ALLOCATION = insert(stock_allocations)
_FINISHED_STOCK_OF_RUNS = select(finished_stock).where(finished_stock.c.run_id.in_(_IDS))
_STOCK_ORDERS_OF_ORDERS = select(stock_orders).where(stock_orders.c.order_id.in_(_IDS))
_ALLOCATIONS_OF_RUN = (
    select(stock_allocations.c.order_id, stock_allocations.c.quantity).where(stock_allocations.c.run_id == _RUN)
)


async def finished_stock_of(uow: UnitOfWork, run_id: str) -> RowMapping | None:
    return await _one_row(uow, attrgetter("finished_stock"), run_id, _FINISHED_STOCK, {"key_run": run_id})


async def is_stocked_run(uow: UnitOfWork, run_id: str) -> bool:
    return await finished_stock_of(uow, run_id) is not None


def _forget_finished_stock(uow: UnitOfWork, run_id: str) -> None:
    _forget(uow, attrgetter("finished_stock"), run_id)


async def add_finished_stock(uow: UnitOfWork, *, run_id: str, item: str, lot: str, quantity: Decimal,
                             owner: str, at: datetime) -> None:
    _forget_finished_stock(uow, run_id)
    await uow.session.execute(_ADD_FINISHED_STOCK, dict(run_id=run_id, item=item, lot=lot, quantity=quantity,
                                                    owner=owner, status="stocked", stocked_at=at))


async def set_finished_stock_status(uow: UnitOfWork, run_id: str, status: str) -> None:
    _forget_finished_stock(uow, run_id)
    await uow.session.execute(_SET_FINISHED_STOCK, {"key_run": run_id, "status": status})


async def finished_stock_in_order(session: AsyncSession) -> Sequence[RowMapping]:
    """Every run's lot stocked for sale, first in, first out."""
    return (await session.execute(_FINISHED_STOCK_IN_ORDER)).mappings().all()


async def stocked_items(session: AsyncSession) -> list[str]:
    return [item for item, _count in (await session.execute(_STOCKED_ITEMS)).all()]


async def stock_order(uow: UnitOfWork, order_id: str) -> RowMapping | None:
    return await _one_row(uow, attrgetter("stock_orders"), order_id, _STOCK_ORDER, {"key_order": order_id})


async def is_stock_order(uow: UnitOfWork, order_id: str) -> bool:
    return await stock_order(uow, order_id) is not None


def _forget_stock_order(uow: UnitOfWork, order_id: str) -> None:
    _forget(uow, attrgetter("stock_orders"), order_id)


async def add_stock_order(uow: UnitOfWork, *, order_id: str, item: str, quantity: Decimal, order_holder: str,
                          ship_to: str, partial: bool, since: datetime) -> None:
    _forget_stock_order(uow, order_id)
    await uow.session.execute(_ADD_STOCK_ORDER, dict(order_id=order_id, item=item, quantity=quantity,
                                                 order_holder=order_holder, ship_to=ship_to, partial=partial,
                                                 shipped=Decimal(0), status="waiting", since=since))


async def waiting_stock_orders(session: AsyncSession, item: str) -> Sequence[RowMapping]:
    """The item's stock orders still waiting, in arrival order."""
    return (await session.execute(_WAITING_STOCK_ORDERS, {"key_item": item})).mappings().all()


async def stock_orders_in_order(session: AsyncSession) -> Sequence[RowMapping]:
    return (await session.execute(_STOCK_ORDERS_IN_ORDER)).mappings().all()


async def update_stock_order(uow: UnitOfWork, order_id: str, **values: Any) -> None:
    """Set `values` (shipped, status, told) on the stock order."""
    _forget_stock_order(uow, order_id)
    await uow.session.execute(_SET_STOCK_ORDER, {"key_order": order_id, **values})


async def add_stock_allocation(session: AsyncSession, *, order_id: str, run_id: str, item: str, lot: str,
                               location: str, quantity: Decimal, at: datetime) -> None:
    """Not buffered: a withdrawal later in the same transaction reads the run's allocations."""
    await session.execute(_ADD_ALLOCATION, dict(order_id=order_id, run_id=run_id, item=item, lot=lot,
                                                location=location, quantity=quantity, at=at))


async def allocations_of_run(session: AsyncSession, run_id: str) -> list[tuple[str, Decimal]]:
    """(order id, quantity) of every allocation from the run's lot."""
    return [(order_id, quantity) for order_id, quantity in
            (await session.execute(_ALLOCATIONS_OF_RUN, {"key_run": run_id})).all()]
