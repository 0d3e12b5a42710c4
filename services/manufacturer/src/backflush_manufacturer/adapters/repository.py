"""Loading and saving the manufacturer's state; every rule stays in the domain.

The catalogue (items, BOMs, inspection plans, policy overrides) is cached per process and keyed on a version row
that every master-data change bumps in the same transaction, so a second instance never serves a stale BOM.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_shared.unit_of_work import UnitOfWork
from backflush_shared.persistence.locks import ConcurrentUpdateError, lock_for_transaction

from backflush_manufacturer.adapters.tables import (
    bom_lines,
    finished_lots,
    inspection_plans,
    items,
    ledger_movements,
    master_data_version,
    parked_flushes,
    production_orders,
)
from backflush_manufacturer.domain.backflush import FlushRequest, ParkedFlush
from backflush_manufacturer.domain.bom import Bom, BomCatalogue, BomLine, FlushPoint
from backflush_manufacturer.domain.explosion import Requirement
from backflush_manufacturer.domain.inspection import InspectionPlan
from backflush_manufacturer.domain.items import Item
from backflush_manufacturer.domain.ledger import LedgerMovement, MovementReason, StockLedger
from backflush_manufacturer.domain.negative_stock import NegativeStockPolicy, StockPolicies
from backflush_manufacturer.domain.order_states import ProductionOrderState
from backflush_manufacturer.domain.units import Unit


def now() -> datetime:
    return datetime.now(UTC)


# The statements every event runs, built once: a statement built per call costs SQLAlchemy more (coercing each
# value, computing its cache key) than SQLite takes to run it; a prebuilt one keeps its cache key. Parameters in
# WHERE clauses are named `b_...`: a bare column name in an UPDATE's parameters is a column it SETs.
_VERSION = select(master_data_version.c.version).where(master_data_version.c.id == 1)
_LEDGER_SINCE = (select(ledger_movements).where(ledger_movements.c.id > bindparam("b_high_water"))
                 .order_by(ledger_movements.c.id))
_LEDGER_OF_ITEMS = (select(ledger_movements).where(ledger_movements.c.item.in_(bindparam("b_items", expanding=True)))
                    .order_by(ledger_movements.c.id))
_LEDGER_HIGH_WATER = select(func.max(ledger_movements.c.id))
_APPEND_MOVEMENTS = insert(ledger_movements)
_ITEMS_OF_ORDER = (select(ledger_movements.c.item).where(ledger_movements.c.production_order == bindparam("b_order_id"))
                   .distinct())
_LOAD_ORDER = select(production_orders).where(production_orders.c.order_id == bindparam("b_order_id"))
_LOAD_ORDERS = select(production_orders).where(
    production_orders.c.order_id.in_(bindparam("b_order_ids", expanding=True)))
_ADD_ORDER = insert(production_orders)
_SAVE_ORDER = update(production_orders).where(production_orders.c.order_id == bindparam("b_order_id"))
_ADD_FINISHED_LOT = insert(finished_lots)
_FINISHED_LOTS_OF = (select(finished_lots.c.lot, finished_lots.c.item, finished_lots.c.quantity)
                     .where(finished_lots.c.order_id == bindparam("b_order_id"), finished_lots.c.cancelled_at.is_(None))
                     .order_by(finished_lots.c.produced_at, finished_lots.c.lot))
_FINISHED_LOT_EXISTS = select(finished_lots.c.lot).where(finished_lots.c.lot == bindparam("b_lot"))
_FINISHED_LOT = (select(finished_lots.c.order_id, finished_lots.c.item)
                 .where(finished_lots.c.lot == bindparam("b_lot"), finished_lots.c.cancelled_at.is_(None)))
_SHIPPED_LOTS = select(finished_lots.c.lot).where(finished_lots.c.order_id == bindparam("b_order_id"),
                                                  finished_lots.c.shipped_at.is_not(None))
_MARK_LOTS_SHIPPED = update(finished_lots).where(finished_lots.c.order_id == bindparam("b_order_id"),
                                                 finished_lots.c.lot.in_(bindparam("b_lots", expanding=True)),
                                                 finished_lots.c.shipped_at.is_(None))
_CANCEL_FINISHED_LOT = update(finished_lots).where(finished_lots.c.lot == bindparam("b_lot"))
_PARK = insert(parked_flushes)
_WAITING_PARKED = (select(parked_flushes).where(parked_flushes.c.status == "waiting")
                   .order_by(parked_flushes.c.id))
_ALL_PARKED = select(parked_flushes).order_by(parked_flushes.c.id)
_UPDATE_PARKED = update(parked_flushes).where(parked_flushes.c.flush_id == bindparam("b_flush_id"))
_RESOLVE_PARKED = update(parked_flushes).where(parked_flushes.c.flush_id == bindparam("b_flush_id"),
                                               parked_flushes.c.status == "waiting")


@dataclass(frozen=True)
class MasterData:
    version: int
    catalogue: BomCatalogue
    plans: dict[str, InspectionPlan]
    overrides: dict[str, NegativeStockPolicy]

    def policies(self, default: str) -> StockPolicies:
        return StockPolicies(NegativeStockPolicy(default), self.overrides)


class MasterDataCache:
    def __init__(self) -> None:
        self._cached: MasterData | None = None

    async def get(self, uow: UnitOfWork) -> MasterData:
        version = await transaction_version(uow)
        if self._cached is None or self._cached.version != version:
            self._cached = await load_master_data(uow.session, version)
        return self._cached

    def forget(self) -> None:
        self._cached = None


async def current_version(session: AsyncSession) -> int:
    found = (await session.execute(_VERSION)).scalar()
    return int(found or 0)


_VERSION_KEY = "master_data_version"


async def read_master_data(session: AsyncSession) -> MasterData:
    """The master data as committed now (for reports: no unit of work, nothing kept)."""
    return await load_master_data(session, await current_version(session))


async def transaction_version(uow: UnitOfWork) -> int:
    """The master-data version, read once per transaction (several times per event otherwise).

    A SQLite write transaction holds the file's write lock from its first statement (`BEGIN IMMEDIATE`), so only
    this transaction can bump the version until it ends, and `bump_version` forgets what it read. On PostgreSQL
    another instance may commit a change meanwhile; the transaction then goes on with the catalogue it started
    with, as if it had committed just before that change (which one comes first between two instances is not
    defined anyway), instead of switching catalogues half-way through a batch."""
    version = uow.caches.get(_VERSION_KEY)
    if version is None:
        version = uow.caches[_VERSION_KEY] = await current_version(uow.session)
    return int(version)


async def bump_version(uow: UnitOfWork) -> None:
    # a random token, not a counter: a version seen in a transaction that rolled back is never reused
    token = secrets.randbelow(2**62) + 1
    uow.caches.pop(_VERSION_KEY, None)
    session = uow.session
    if await current_version(session) == 0:
        await session.execute(insert(master_data_version).values(id=1, version=token))
    else:
        await session.execute(update(master_data_version).where(master_data_version.c.id == 1).values(version=token))


async def load_master_data(session: AsyncSession, version: int) -> MasterData:
    item_rows = (await session.execute(select(items))).mappings().all()
    line_rows = (await session.execute(select(bom_lines).order_by(bom_lines.c.parent, bom_lines.c.position))).mappings().all()
    plan_rows = (await session.execute(select(inspection_plans))).mappings().all()
    catalogue_items = [_item(r) for r in item_rows]
    boms: dict[str, list[BomLine]] = {}
    for r in line_rows:
        boms.setdefault(r["parent"], []).append(
            BomLine(r["component"], r["quantity_per"], r["scrap_factor"], FlushPoint(r["flush"]))
        )
    catalogue = BomCatalogue(catalogue_items, [Bom(parent, tuple(lines)) for parent, lines in boms.items()],
                             require_phantom_boms=False)
    plans = {r["item"]: InspectionPlan(r["item"], r["rule"], r["remark"]) for r in plan_rows}
    overrides = {r["item"]: NegativeStockPolicy(r["negative_stock_policy"]) for r in item_rows
                 if r["negative_stock_policy"]}
    return MasterData(version, catalogue, plans, overrides)


def _item(row: Any) -> Item:
    return Item(row["item"], Unit(row["unit"], row["decimals"]), bool(row["phantom"]), row["description"],
                row.get("supply_location"))


async def save_item(uow: UnitOfWork, item: Item, policy: str | None) -> None:
    session = uow.session
    values = {"description": item.description, "unit": item.unit.code, "decimals": item.unit.decimals,
              "phantom": item.phantom, "negative_stock_policy": policy, "supply_location": item.supply_location}
    exists = (await session.execute(select(items.c.item).where(items.c.item == item.code))).scalar_one_or_none()
    if exists:
        await session.execute(update(items).where(items.c.item == item.code).values(**values))
    else:
        await session.execute(insert(items).values(item=item.code, **values))
    await bump_version(uow)


async def save_bom(uow: UnitOfWork, bom: Bom) -> None:
    session = uow.session
    await session.execute(delete(bom_lines).where(bom_lines.c.parent == bom.parent))
    for position, line in enumerate(bom.lines):
        await session.execute(
            insert(bom_lines).values(parent=bom.parent, position=position, component=line.component,
                                     quantity_per=line.quantity_per, scrap_factor=line.scrap_factor,
                                     flush=line.flush.value)
        )
    await bump_version(uow)


async def save_plan(uow: UnitOfWork, plan: InspectionPlan) -> None:
    session = uow.session
    await session.execute(delete(inspection_plans).where(inspection_plans.c.item == plan.item))
    await session.execute(insert(inspection_plans).values(item=plan.item, rule=plan.rule.value, remark=plan.reason))
    await bump_version(uow)


# -- the ledger ----------------------------------------------------------------------------------------------


def _movement(row: Any) -> LedgerMovement:
    return LedgerMovement(row["item"], row["location"], row["lot"], row["quantity"], MovementReason(row["reason"]),
                          row["event_id"], row["production_order"], row["flush_id"], row["into_item"],
                          row["into_lot"], row["owner"])


async def load_ledger(session: AsyncSession, item_codes: Iterable[str] | None = None) -> StockLedger:
    """The ledger of some items (all when None), movements in append order so that FIFO holds."""
    if item_codes is None:
        rows = (await session.execute(select(ledger_movements).order_by(ledger_movements.c.id))).mappings().all()
    else:
        codes = sorted(set(item_codes))
        if not codes:
            return StockLedger()
        rows = (await session.execute(_LEDGER_OF_ITEMS, {"b_items": codes})).mappings().all()
    return StockLedger.from_movements(_movement(r) for r in rows)


class LedgerCache:
    """The committed ledger of this service's database, in memory, caught up at the start of each transaction.

    Loading every movement of an item for every flush would cost what the item's history costs; instead the
    service keeps the ledger it last committed and reads only the movements added since (`id` above its high
    water mark). A transaction works on its own working version (`StockLedger.working()`: versions share one log,
    and the working one is appended to in place, each item's state copied at its first append only) which becomes
    the cache only when the unit of work commits (`UnitOfWork.after_commit`, called after the outermost commit
    only, which freezes it); the cached version itself is never changed, so a rollback leaves the cache as it was,
    and a refused event's savepoint rollback drops the working version with the unit of work's caches. `load`
    returns that working version: a ledger a use case loaded shows what the transaction appends after too.

    This needs one writer of the ledger at a time, which both backends give: SQLite has one writer per file, and
    on PostgreSQL every transaction that reads or appends movements holds the stock lock (`lock_stock`) until it
    commits. So when a transaction has taken the lock, every movement committed before it has a smaller `id` than
    any appended after it (ids come from one sequence, handed out in time), and what another instance committed
    since this one's high water mark is exactly the rows above it. `enabled=False` loads the movements of the
    items asked for from the table instead (tests compare the two).

    On PostgreSQL one instance runs several topics' transactions at once, so a transaction's catch-up may be
    awaited while another of the same instance adopts its commit: `_working` takes the ledger and its mark together.
    """

    _KEY = "ledger"
    _PENDING = "ledger_pending"  # the rows of the movements appended and not yet written

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._ledger = StockLedger()
        self._high_water = 0

    async def load(self, uow: UnitOfWork, item_codes: Iterable[str] | None = None) -> StockLedger:
        await lock_stock(uow.session)
        if not self.enabled:
            return await load_ledger(uow.session, item_codes)
        return (await self._working(uow))[0]

    async def load_of_order(self, uow: UnitOfWork, order_id: str) -> StockLedger:
        """The ledger of (at least) the items a production order has movements of."""
        if self.enabled:  # the whole ledger: no need to ask the table which items
            return await self.load(uow)
        return await self.load(uow, await items_of_order(uow.session, order_id))

    async def append(self, uow: UnitOfWork, movements: Sequence[LedgerMovement]) -> None:
        if not movements:
            return
        await lock_stock(uow.session)  # (taken already by whoever loaded what it decided from: then free)
        if not self.enabled:
            await append(uow.session, movements)
            return
        ledger, _high_water = await self._working(uow)
        if not uow.defers_writes:
            await append(uow.session, movements)
        else:
            # written with the batch's other movements, in append order, just before the commit (`_before_commit`):
            # within the transaction the ledger is read from the working version only, never from the table
            pending: list[dict[str, Any]] | None = uow.caches.get(self._PENDING)
            if pending is None:
                pending = uow.caches[self._PENDING] = []
            pending += _movement_rows(movements, now())
        ledger.append(movements)  # in place: the transaction's own version
        # the high water mark matters only once the transaction commits: read then, once per transaction
        uow.caches[self._KEY] = (ledger, None)

    async def _working(self, uow: UnitOfWork) -> tuple[StockLedger, int | None]:
        working = uow.caches.get(self._KEY)
        if working is None:
            # The ledger and its high water mark are taken together, before the query: while it is awaited another
            # transaction of this instance may adopt its commit, and the rows above the old mark on top of the new
            # ledger would count that commit's movements twice.
            ledger, high_water = self._ledger, self._high_water
            rows = (await uow.session.execute(_LEDGER_SINCE, {"b_high_water": high_water})).mappings().all()
            if rows:
                high_water = rows[-1]["id"]
            own = ledger.working()
            own.append(_movement(r) for r in rows)
            working = uow.caches[self._KEY] = (own, high_water)
            uow.before_commit(self._KEY, self._before_commit)
            uow.after_commit(self._KEY, self._adopt)
        return working

    async def _before_commit(self, uow: UnitOfWork) -> None:
        pending = uow.caches.pop(self._PENDING, None)
        if pending:
            await uow.session.execute(_APPEND_MOVEMENTS, pending)
        working = uow.caches.get(self._KEY)
        if working is not None and working[1] is None:
            high_water = (await uow.session.execute(_LEDGER_HIGH_WATER)).scalar_one()
            uow.caches[self._KEY] = (working[0], int(high_water))

    def _adopt(self, uow: UnitOfWork) -> None:
        working = uow.caches.get(self._KEY)
        # (without a high water mark the cache stays as it was: the next transaction catches up from the table; an
        # older commit adopted after a newer one would be consistent too, but it would make the next read longer)
        if working is not None and working[1] is not None and working[1] >= self._high_water:
            # frozen: shared from now on by every transaction that starts from it, it must never change again
            self._ledger, self._high_water = working[0].freeze(), working[1]


#: The advisory lock of the manufacturer's stock: every item's lots, the parked-flush queue and the production
#: orders that flush against them. One lock, not one per item: a receipt reprocesses the whole queue (any item,
#: in arrival order) and a cancellation reverses whatever its order consumed, so the items a transaction touches
#: are known only as it goes; one lock taken before anything is read is the fixed order that cannot deadlock.
STOCK_LOCK = "manufacturer:stock"


async def lock_stock(session: AsyncSession) -> None:
    """Before reading stock, the queue or an order to change them (PostgreSQL; SQLite has one writer anyway)."""
    await lock_for_transaction(session, STOCK_LOCK)


async def items_of_order(session: AsyncSession, order_id: str) -> set[str]:
    rows = await session.execute(_ITEMS_OF_ORDER, {"b_order_id": order_id})
    return {r[0] for r in rows}


def _movement_rows(movements: Sequence[LedgerMovement], at: datetime) -> list[dict[str, Any]]:
    return [
        {"item": m.item, "location": m.location, "lot": m.lot, "quantity": m.quantity, "reason": m.reason.value,
         "event_id": m.event_id, "production_order": m.production_order, "flush_id": m.flush_id,
         "into_item": m.into_item, "into_lot": m.into_lot, "owner": m.owner, "posted_at": at}
        for m in movements
    ]


async def append(session: AsyncSession, movements: Sequence[LedgerMovement]) -> None:
    if not movements:
        return
    await session.execute(_APPEND_MOVEMENTS, _movement_rows(movements, now()))


async def all_movements(session: AsyncSession) -> list[tuple[int, LedgerMovement, datetime]]:
    rows = (await session.execute(select(ledger_movements).order_by(ledger_movements.c.id))).mappings().all()
    return [(r["id"], _movement(r), r["posted_at"]) for r in rows]


# -- production orders -----------------------------------------------------------------------------------------


@dataclass
class ProductionOrder:
    order_id: str
    item: str
    quantity: Decimal
    flow: str
    #: Stored as its string value (the column is text: `ProductionOrderState` names the values it always held).
    status: ProductionOrderState
    processing: dict[str, Any]
    completed: Decimal
    certificate: dict[str, Any] | None
    reason: str | None
    #: Contract manufacturing: the brand owner whose consigned lots the order consumes; None: own stock only.
    components_owner: str | None = None
    own_components_allowed: bool = False


def _order(row: Any) -> ProductionOrder:
    return ProductionOrder(row["order_id"], row["item"], row["quantity"], row["flow"],
                           ProductionOrderState(row["status"]), json.loads(row["processing"]), row["completed"],
                           json.loads(row["certificate"]) if row["certificate"] else None, row["reason"],
                           row["components_owner"], bool(row["own_components_allowed"]))


async def load_order(session: AsyncSession, order_id: str) -> ProductionOrder | None:
    """An order as committed (or as this transaction wrote it), for reports; use cases use `order_for_update`."""
    await lock_stock(session)  # first, so that the order and the stock are always locked in the same order
    row = (await session.execute(_LOAD_ORDER, {"b_order_id": order_id})).mappings().one_or_none()
    return None if row is None else _order(row)


# -- orders kept and written per batch -----------------------------------------------------------------------------
# The events of many orders come together when thousands run at once, and each moves its order once or twice: one
# SELECT, INSERT or UPDATE per move, through SQLAlchemy, cost more than the flush itself. So a unit of work keeps the
# orders it read or wrote (as they were last saved: a use case gets a copy, and what it changes without saving is
# not kept), and, within a batch run without savepoints, writes the orders added and saved once each, one statement
# per kind, just before the commit. A refusal in such a run rolls the whole run back, buffer included. A run with a
# savepoint per event (`UnitOfWork.defers_writes`) writes at once instead: a refused event's `forget_caches` drops the
# buffer (and the orders kept), and with it the other events' writes. Kept orders stay right for the transaction:
# every writer of an order holds the stock lock (`lock_stock`, taken before an order is read) until it commits.

_ORDERS = "production_orders"  # order id -> the order as this unit of work last saw or saved it; None: no such order
_PENDING_ORDERS = "production_orders_pending"  # order id -> _PendingOrder


@dataclass
class _PendingOrder:
    insert: bool
    order: ProductionOrder
    at: datetime


def _kept_orders(uow: UnitOfWork) -> dict[str, ProductionOrder | None]:
    kept: dict[str, ProductionOrder | None] | None = uow.caches.get(_ORDERS)
    if kept is None:
        kept = uow.caches[_ORDERS] = {}
    return kept


async def order_for_update(uow: UnitOfWork, order_id: str) -> ProductionOrder | None:
    """An order as this unit of work last saved it (else as committed), under the stock lock; a copy to change."""
    await lock_stock(uow.session)
    kept = _kept_orders(uow)
    if order_id in kept:
        found = kept[order_id]
        return None if found is None else replace(found)
    order = await load_order(uow.session, order_id)
    kept[order_id] = None if order is None else replace(order)
    return order


async def load_orders(uow: UnitOfWork, order_ids: Iterable[str]) -> None:
    """Read the orders a batch is about with one statement, instead of one per event (`order_for_update`)."""
    kept = _kept_orders(uow)
    wanted = sorted(set(order_ids) - kept.keys())
    if not wanted:
        return
    await lock_stock(uow.session)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        rows = (await uow.session.execute(_LOAD_ORDERS, {"b_order_ids": chunk})).mappings().all()
        found = {row["order_id"]: _order(row) for row in rows}
        for order_id in chunk:
            kept[order_id] = found.get(order_id)


def _buffer(uow: UnitOfWork, order: ProductionOrder, *, insert: bool) -> None:
    pending: dict[str, _PendingOrder] | None = uow.caches.get(_PENDING_ORDERS)
    if pending is None:
        pending = uow.caches[_PENDING_ORDERS] = {}
    before = pending.get(order.order_id)
    pending[order.order_id] = _PendingOrder(before.insert if before is not None else insert, order, now())
    # registered at every write: a refused event's `forget_caches` drops the action along with the buffer
    uow.before_commit(_PENDING_ORDERS, write_pending_orders)


def _insert_values(order: ProductionOrder, at: datetime) -> dict[str, Any]:
    return dict(
        order_id=order.order_id, item=order.item, quantity=order.quantity, flow=order.flow, status=order.status.value,
        processing=json.dumps(order.processing, default=str), completed=order.completed,
        certificate=json.dumps(order.certificate) if order.certificate else None, reason=order.reason,
        created_at=at, updated_at=at, components_owner=order.components_owner,
        own_components_allowed=order.own_components_allowed,
    )


def _update_values(order: ProductionOrder, at: datetime) -> dict[str, Any]:
    return dict(
        b_order_id=order.order_id, status=order.status.value, completed=order.completed,
        certificate=json.dumps(order.certificate) if order.certificate else None, reason=order.reason,
        updated_at=at,
    )


async def write_pending_orders(uow: UnitOfWork) -> None:
    """Write the orders added and saved since the last write: one INSERT and one UPDATE, serialised once each."""
    pending: dict[str, _PendingOrder] | None = uow.caches.pop(_PENDING_ORDERS, None)
    if not pending:
        return
    inserts = [_insert_values(p.order, p.at) for p in pending.values() if p.insert]
    updates = [_update_values(p.order, p.at) for p in pending.values() if not p.insert]
    if inserts:
        await uow.session.execute(_ADD_ORDER, inserts)
    if updates:
        await uow.session.execute(_SAVE_ORDER, updates)


async def add_order(uow: UnitOfWork, order: ProductionOrder) -> None:
    await _write_order(uow, order, insert=True)


async def save_order(uow: UnitOfWork, order: ProductionOrder) -> None:
    await _write_order(uow, order, insert=False)


async def _write_order(uow: UnitOfWork, order: ProductionOrder, *, insert: bool) -> None:
    kept = replace(order)
    _kept_orders(uow)[order.order_id] = kept
    if uow.defers_writes:
        _buffer(uow, kept, insert=insert)
        return
    if insert:
        await uow.session.execute(_ADD_ORDER, _insert_values(order, now()))
    else:
        await uow.session.execute(_SAVE_ORDER, _update_values(order, now()))


async def list_orders(session: AsyncSession) -> list[ProductionOrder]:
    rows = (await session.execute(select(production_orders.c.order_id).order_by(production_orders.c.created_at))).all()
    return [order for (order_id,) in rows if (order := await load_order(session, order_id)) is not None]


# Finished lots, like orders, are kept per unit of work and added once per batch: the orders' lots are read for the
# whole batch (`load_finished_lots`), a lot produced is appended to its order's list and written just before the
# commit (at once in a run with a savepoint per event, see the orders above). What reads the table through SQL either
# needs no lot added meanwhile (a lot is added unshipped and uncancelled), looks at the added ones first, or writes
# them first (`_write_pending_lots`).

_LOTS = "finished_lots"  # order id -> its lots standing (lot, item, quantity), as `_FINISHED_LOTS_OF` lists them
_PENDING_LOTS = "finished_lots_pending"  # the rows of the lots added and not yet written, in the order added
_FINISHED_LOTS_OF_ORDERS = (select(finished_lots.c.order_id, finished_lots.c.lot, finished_lots.c.item,
                                   finished_lots.c.quantity)
                            .where(finished_lots.c.order_id.in_(bindparam("b_order_ids", expanding=True)),
                                   finished_lots.c.cancelled_at.is_(None))
                            .order_by(finished_lots.c.produced_at, finished_lots.c.lot))


def _kept_lots(uow: UnitOfWork) -> dict[str, list[tuple[str, str, Decimal]]]:
    kept: dict[str, list[tuple[str, str, Decimal]]] | None = uow.caches.get(_LOTS)
    if kept is None:
        kept = uow.caches[_LOTS] = {}
    return kept


def _pending_lots(uow: UnitOfWork) -> list[dict[str, Any]]:
    return uow.caches.get(_PENDING_LOTS) or []


async def _write_pending_lots(uow: UnitOfWork) -> None:
    pending: list[dict[str, Any]] | None = uow.caches.pop(_PENDING_LOTS, None)
    if pending:
        await uow.session.execute(_ADD_FINISHED_LOT, pending)


async def load_finished_lots(uow: UnitOfWork, order_ids: Iterable[str]) -> None:
    """Read the lots of the orders a batch is about with one statement, instead of one per event."""
    kept = _kept_lots(uow)
    wanted = sorted(set(order_ids) - kept.keys())
    if not wanted:
        return
    await _write_pending_lots(uow)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        found: dict[str, list[tuple[str, str, Decimal]]] = {order_id: [] for order_id in chunk}
        for row in await uow.session.execute(_FINISHED_LOTS_OF_ORDERS, {"b_order_ids": chunk}):
            found[row[0]].append((row[1], row[2], row[3]))
        kept.update(found)


async def add_finished_lot(uow: UnitOfWork, lot: str, order_id: str, item: str, quantity: Decimal) -> None:
    row = dict(lot=lot, order_id=order_id, item=item, quantity=quantity, produced_at=now())
    if uow.defers_writes:
        pending: list[dict[str, Any]] | None = uow.caches.get(_PENDING_LOTS)
        if pending is None:
            pending = uow.caches[_PENDING_LOTS] = []
        pending.append(row)
        # registered at every write: a refused event's `forget_caches` drops the action along with the buffer
        uow.before_commit(_PENDING_LOTS, _write_pending_lots)
    else:
        await uow.session.execute(_ADD_FINISHED_LOT, row)
    lots = _kept_lots(uow).get(order_id)
    if lots is not None:
        # produced now, after every lot read: last (lots produced at the same instant are listed by name)
        same_instant = [(lot, item, quantity)]
        while lots and lots[-1][0] > lot and _produced_at(uow, lots[-1][0]) == row["produced_at"]:
            same_instant.insert(0, lots.pop())
        lots.extend(sorted(same_instant))


def _produced_at(uow: UnitOfWork, lot: str) -> datetime | None:
    return next((r["produced_at"] for r in _pending_lots(uow) if r["lot"] == lot), None)


async def finished_lots_of(uow: UnitOfWork, order_id: str) -> list[tuple[str, str, Decimal]]:
    """An order's lots standing (not cancelled), in the order they were produced."""
    kept = _kept_lots(uow)
    lots = kept.get(order_id)
    if lots is None:
        await _write_pending_lots(uow)
        rows = await uow.session.execute(_FINISHED_LOTS_OF, {"b_order_id": order_id})
        lots = kept[order_id] = [(r[0], r[1], r[2]) for r in rows]
    return list(lots)


async def finished_lot_exists(uow: UnitOfWork, lot: str) -> bool:
    """Whether a finished lot of this name was ever produced (a cancelled one too: names are never reused)."""
    if any(r["lot"] == lot for r in _pending_lots(uow)):
        return True
    found = await uow.session.execute(_FINISHED_LOT_EXISTS, {"b_lot": lot})
    return found.scalar_one_or_none() is not None


async def finished_lot(uow: UnitOfWork, lot: str) -> tuple[str, str] | None:
    """The order (or run) that produced a finished lot still standing, and its item; None for any other lot."""
    added = next((r for r in _pending_lots(uow) if r["lot"] == lot), None)
    if added is not None:
        return added["order_id"], added["item"]
    found = (await uow.session.execute(_FINISHED_LOT, {"b_lot": lot})).first()
    return (found[0], found[1]) if found is not None else None


async def shipped_lots(uow: UnitOfWork, order_id: str) -> set[str]:
    # (a lot added and not yet written is not shipped)
    rows = await uow.session.execute(_SHIPPED_LOTS, {"b_order_id": order_id})
    return {r[0] for r in rows}


async def mark_lots_shipped(uow: UnitOfWork, order_id: str, lots: Iterable[str]) -> None:
    await _write_pending_lots(uow)
    await uow.session.execute(_MARK_LOTS_SHIPPED, {"b_order_id": order_id, "b_lots": sorted(set(lots)),
                                                   "shipped_at": now()})


async def cancel_finished_lot(uow: UnitOfWork, lot: str) -> None:
    await _write_pending_lots(uow)
    uow.caches.pop(_LOTS, None)  # the lot's order lists it no longer: read again
    await uow.session.execute(_CANCEL_FINISHED_LOT, {"b_lot": lot, "cancelled_at": now()})


# -- the exception queue ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParkedEntry:
    id: int
    flush_id: str
    order_id: str
    step: str
    parked: ParkedFlush
    reason: str
    status: str
    parked_at: datetime
    cause_event_id: str


def _request_to_json(parked: ParkedFlush) -> str:
    request = parked.request
    assert isinstance(request, FlushRequest)
    return json.dumps({
        "request": {"flush_id": request.flush_id, "production_order": request.production_order,
                    "item": request.item, "flush": request.flush.value, "quantity": str(request.quantity),
                    "completed_before": str(request.completed_before), "location": request.location,
                    "finished_lot": request.finished_lot, "event_id": request.event_id,
                    "components_owner": request.components_owner,
                    "own_components_allowed": request.own_components_allowed},
        "requirements": [{"item": r.item, "quantity": str(r.quantity), "unit": r.unit.code,
                          "decimals": r.unit.decimals, "flush": r.flush.value, "location": r.location}
                         for r in parked.requirements],
    })


def _parked_from_json(text: str) -> ParkedFlush:
    raw = json.loads(text)
    r = raw["request"]
    request = FlushRequest(r["flush_id"], r["production_order"], r["item"], FlushPoint(r["flush"]),
                           Decimal(r["quantity"]), Decimal(r["completed_before"]), r["location"], r["finished_lot"],
                           r.get("event_id"), r.get("components_owner"), bool(r.get("own_components_allowed")))
    requirements = tuple(
        Requirement(q["item"], Decimal(q["quantity"]), Unit(q["unit"], q["decimals"]), FlushPoint(q["flush"]),
                    location=q.get("location"))
        for q in raw["requirements"]
    )
    return ParkedFlush(request, requirements, ())


async def park(uow: UnitOfWork, parked: ParkedFlush, *, order_id: str, step: str, reason: str,
               cause_event_id: str) -> None:
    _queue_changed(uow)
    await uow.session.execute(_PARK, dict(
        flush_id=parked.flush_id, order_id=order_id, step=step, request=_request_to_json(parked), reason=reason,
        status="waiting", parked_at=now(), cause_event_id=cause_event_id,
    ))


def _entry(row: Any) -> ParkedEntry:
    return ParkedEntry(row["id"], row["flush_id"], row["order_id"], row["step"], _parked_from_json(row["request"]),
                       row["reason"], row["status"], row["parked_at"], row["cause_event_id"])


_WAITING_KEY = "waiting_parked"


async def read_waiting_parked(session: AsyncSession) -> list[ParkedEntry]:
    """The waiting queue in arrival order, as committed now (for reports: nothing kept)."""
    return [_entry(r) for r in (await session.execute(_WAITING_PARKED)).mappings().all()]


async def waiting_parked(uow: UnitOfWork, order_id: str | None = None) -> list[ParkedEntry]:
    """The waiting queue (of one order), in arrival order.

    Read once per transaction, not per flush (each flush asks two or three times): only this transaction can
    change the queue while it holds the stock lock (SQLite: the file's write lock), and every change to it here
    (`park`, `resolve_parked`, `update_parked_reason`) makes the next call read it again."""
    await lock_stock(uow.session)
    entries: list[ParkedEntry] | None = uow.caches.get(_WAITING_KEY)
    if entries is None:
        entries = uow.caches[_WAITING_KEY] = await read_waiting_parked(uow.session)
    if order_id is None:
        return list(entries)
    return [e for e in entries if e.order_id == order_id]


def _queue_changed(uow: UnitOfWork) -> None:
    uow.caches.pop(_WAITING_KEY, None)


async def all_parked(session: AsyncSession) -> list[ParkedEntry]:
    rows = (await session.execute(_ALL_PARKED)).mappings().all()
    return [_entry(r) for r in rows]


async def update_parked_reason(uow: UnitOfWork, flush_id: str, reason: str) -> None:
    _queue_changed(uow)
    await uow.session.execute(_UPDATE_PARKED, {"b_flush_id": flush_id, "reason": reason})


async def resolve_parked(uow: UnitOfWork, flush_id: str, status: str) -> None:
    """Only a waiting flush is resolved: one resolved meanwhile by another transaction is a lost race, retried."""
    _queue_changed(uow)
    resolved = await uow.session.execute(_RESOLVE_PARKED, {"b_flush_id": flush_id, "status": status,
                                                       "resolved_at": now()})
    if resolved.rowcount != 1:
        raise ConcurrentUpdateError(f"parked flush {flush_id} was no longer waiting when it was {status}")
