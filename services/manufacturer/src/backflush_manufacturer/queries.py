"""Read-only views of the manufacturer's database for people: stock, lot genealogy, the exception queue, variance.

Every figure is derived the way the service derives it: balances from the ledger's movements, genealogy from the
movements' finished lots, variance from the domain's `order_variance`. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backflush_manufacturer.adapters import repository as repo
from backflush_manufacturer.adapters.repository import ParkedEntry, ProductionOrder
from backflush_manufacturer.adapters.tables import items as items_table
from backflush_manufacturer.domain.consignment import StatementLine, period_bounds, statement
from backflush_manufacturer.domain.genealogy import Genealogy, GenealogyLink
from backflush_manufacturer.domain.items import Item
from backflush_manufacturer.domain.ledger import LedgerMovement, StockLedger
from backflush_manufacturer.domain.negative_stock import NegativeStockPolicy, StockPolicies
from backflush_manufacturer.domain.parking import reprocess_parked
from backflush_manufacturer.domain.units import Unit
from backflush_manufacturer.domain.variance import ComponentVariance, order_variance

ZERO = Decimal(0)


async def units_of(session: AsyncSession) -> dict[str, Unit]:
    """The unit of every item in the item master, for formatting quantities at the unit's precision."""
    rows = (await session.execute(select(items_table.c.item, items_table.c.unit, items_table.c.decimals))).all()
    return {item: Unit(unit, decimals) for item, unit, decimals in rows}


# -- stock ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StockLine:
    """One lot of one item at one location."""

    item: str
    location: str
    lot: str
    on_hand: Decimal
    allocated: Decimal
    unit: Unit | None
    #: The brand owner of a consigned lot (contract manufacturing); None for the manufacturer's own.
    owner: str | None = None

    @property
    def available(self) -> Decimal:
        return self.on_hand - self.allocated


async def stock(session: AsyncSession, item: str | None = None, *, all_lots: bool = False) -> list[StockLine]:
    """Balances per item, location and lot (lots first in, first out); empty lots only with `all_lots`."""
    ledger = await repo.load_ledger(session, [item] if item else None)
    units = await units_of(session)
    lines: list[StockLine] = []
    for code, location in _item_locations(ledger):
        for lot in ledger.lots(code, location):
            if all_lots or lot.on_hand or lot.allocated:
                lines.append(StockLine(code, location, lot.lot, lot.on_hand, lot.allocated, units.get(code),
                                       lot.owner))
    return lines


def _item_locations(ledger: StockLedger) -> list[tuple[str, str]]:
    # The ledger lists lots per location; the locations an item was ever at come from its movements.
    seen = dict.fromkeys((m.item, m.location) for m in ledger.movements)
    return sorted(seen)


# -- genealogy -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceNode:
    """One lot reached from the traced lot, the quantity that links them, and the lots beyond it."""

    item: str
    lot: str
    quantity: Decimal
    unit: Unit | None
    production_order: str | None
    children: tuple[TraceNode, ...] = ()


@dataclass(frozen=True)
class MovementLine:
    id: int
    posted_at: datetime
    movement: LedgerMovement
    unit: Unit | None


@dataclass(frozen=True)
class LotTrace:
    """A lot's genealogy both ways and its own movements. `items` are the items that have a lot of this name."""

    lot: str
    items: tuple[str, ...]
    made_from: dict[str, tuple[TraceNode, ...]] = field(default_factory=dict)  # item -> component lots
    used_in: dict[str, tuple[TraceNode, ...]] = field(default_factory=dict)  # item -> finished lots
    movements: tuple[MovementLine, ...] = ()

    @property
    def found(self) -> bool:
        return bool(self.items)


async def trace(session: AsyncSession, lot: str) -> LotTrace:
    """Which component lots went into `lot` (down), which finished lots `lot` went into (up), and its movements."""
    rows = await repo.all_movements(session)
    units = await units_of(session)
    genealogy = Genealogy.from_movements(m for _id, m, _at in rows)
    own = tuple(MovementLine(row_id, at, m, units.get(m.item)) for row_id, m, at in rows if m.lot == lot)
    items = dict.fromkeys(line.movement.item for line in own)
    for link in genealogy.links:
        if link.finished_lot == lot:
            items.setdefault(link.finished_item)
        if link.component_lot == lot:
            items.setdefault(link.component)
    made_from = {item: _down(genealogy, units, item, lot, {(item, lot)}) for item in items}
    used_in = {item: _up(genealogy, units, item, lot, {(item, lot)}) for item in items}
    return LotTrace(lot, tuple(items), made_from, used_in, own)


def _down(genealogy: Genealogy, units: Mapping[str, Unit], item: str, lot: str,
          seen: set[tuple[str, str]]) -> tuple[TraceNode, ...]:
    # A component lot may itself be a produced lot (a stocked subassembly): follow it down, never in a circle.
    return tuple(
        _node(units, link.component, link.component_lot, link,
              _down(genealogy, units, link.component, link.component_lot, seen | {(link.component, link.component_lot)})
              if (link.component, link.component_lot) not in seen else ())
        for link in genealogy.components_of(item, lot)
    )


def _up(genealogy: Genealogy, units: Mapping[str, Unit], item: str, lot: str,
        seen: set[tuple[str, str]]) -> tuple[TraceNode, ...]:
    # The quantity shown is of the traced component (how much of it went in), in the component's unit.
    return tuple(
        TraceNode(link.finished_item, link.finished_lot, link.quantity, units.get(link.component),
                  link.production_order,
                  _up(genealogy, units, link.finished_item, link.finished_lot,
                      seen | {(link.finished_item, link.finished_lot)})
                  if (link.finished_item, link.finished_lot) not in seen else ())
        for link in genealogy.used_in(item, lot)
    )


def _node(units: Mapping[str, Unit], item: str, lot: str, link: GenealogyLink,
          children: tuple[TraceNode, ...]) -> TraceNode:
    return TraceNode(item, lot, link.quantity, units.get(item), link.production_order, children)


# -- the exception queue -------------------------------------------------------------------------------------------


async def exceptions(session: AsyncSession, *, include_resolved: bool = False) -> list[ParkedEntry]:
    """The parked backflushes in arrival order: the waiting ones, or every one with `include_resolved`."""
    if include_resolved:
        return await repo.all_parked(session)
    return await repo.read_waiting_parked(session)


async def parked_entry(session: AsyncSession, entry_id: int) -> ParkedEntry | None:
    return next((entry for entry in await repo.all_parked(session) if entry.id == entry_id), None)


async def why_waiting(session: AsyncSession, entry_id: int) -> str:
    """Why a waiting entry cannot post against today's stock, worked out as the service's reprocessing would.

    The queue is replayed in arrival order against the current ledger (earlier entries keep their place in line);
    an entry that would post now is waiting only for the service to process the retry.
    """
    queue = await repo.read_waiting_parked(session)
    entry = next((e for e in queue if e.id == entry_id), None)
    if entry is None:
        return "it no longer waits"
    master = await repo.read_master_data(session)
    ledger = await repo.load_ledger(session, {r.item for e in queue for r in e.parked.requirements})
    # The service's global policy lives in its settings, not in the database: park stands in for it, so that
    # every shortage shows; per-item overrides (allow) are honoured as the service honours them.
    result = reprocess_parked(ledger, [e.parked for e in queue], StockPolicies(NegativeStockPolicy.PARK,
                                                                             master.overrides))
    if any(posted.flush_id == entry.flush_id for posted in result.posted):
        return "stock covers it now; the manufacturer has not processed the retry yet (is it running?)"
    refused = next((error for p, error in result.refused if p.flush_id == entry.flush_id), None)
    if refused is not None:
        return f"the reject policy refuses it now ({refused}); the manufacturer has not reprocessed the queue yet"
    still = next(p for p in result.still_parked if p.flush_id == entry.flush_id)
    if not still.shortages:
        if any(e.order_id == entry.order_id and e.id < entry.id for e in queue):
            return "it waits behind an earlier parked backflush of the same order"
        return "it waits behind an earlier parked backflush that needs the same components"
    return "; ".join(
        f"{s.item}: needs {s.unit.format(s.needed)} {s.unit.code}, {s.unit.format(s.available)} available"
        + (f" of {s.owner}'s consigned stock" if s.owner else "")
        for s in still.shortages
    )


# -- production orders and variance --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderView:
    order: ProductionOrder
    unit: Unit | None


async def production_orders(session: AsyncSession) -> list[OrderView]:
    units = await units_of(session)
    return [OrderView(order, units.get(order.item)) for order in await repo.list_orders(session)]


@dataclass(frozen=True)
class OrderVariance:
    order: ProductionOrder
    unit: Unit | None
    lines: tuple[ComponentVariance, ...]


async def variance(session: AsyncSession, order_id: str) -> OrderVariance | None:
    """Standard (the BOM for the completed quantity) against what the ledger charged to the order, per component."""
    order = await repo.load_order(session, order_id)
    if order is None:
        return None
    master = await repo.read_master_data(session)
    ledger = await repo.load_ledger(session, await repo.items_of_order(session, order_id))
    unit = master.catalogue.items[order.item].unit if order.item in master.catalogue.items else None
    if order.completed > 0:
        lines = order_variance(master.catalogue, ledger, order_id, order.item, order.completed)
    else:
        # nothing completed: the standard is zero, and whatever was flushed (pre lines at release) is all variance
        lines = _without_standard(master.catalogue.items, ledger.consumed_by_order(order_id))
    return OrderVariance(order, unit, lines)


def _without_standard(known: Mapping[str, Item], actual: Mapping[str, Decimal]) -> tuple[ComponentVariance, ...]:
    return tuple(
        ComponentVariance(component, known[component].unit if component in known else _UNKNOWN_UNIT, ZERO, quantity)
        for component, quantity in sorted(actual.items())
    )


# Shows a quantity of an item the item master no longer knows as it is, with every decimal it has.
_UNKNOWN_UNIT = Unit("?", 12)


def total(lines: Sequence[StockLine]) -> tuple[Decimal, Decimal]:
    """On hand and allocated summed over some stock lines."""
    return sum((line.on_hand for line in lines), ZERO), sum((line.allocated for line in lines), ZERO)


# -- contract manufacturing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsignmentStatement:
    """A brand owner's lots over a period, and whether each closing figure is the ledger's balance now (checked
    only when the period has not ended: a past period's closing is what the ledger held then)."""

    owner: str
    period: str
    lines: list[StatementLine]
    units: dict[str, Unit]
    ledger_checked: bool
    ledger_mismatches: list[tuple[str, str, Decimal]]  # (item, lot, the ledger's balance) where closing differs


async def consignment_statement(session: AsyncSession, owner: str, period: str,
                                now: datetime | None = None) -> ConsignmentStatement:
    """Opening, received, consumed, scrapped and closing per item and lot of `owner`'s stock in `period` (YYYY-MM)."""
    start, end = period_bounds(period)
    history = await repo.all_movements(session)
    lines = list(statement(((m, at) for _id, m, at in history), owner, start, end))
    current = (now or datetime.now(UTC)) < end
    mismatches: list[tuple[str, str, Decimal]] = []
    if current:
        ledger = StockLedger.from_movements(m for _id, m, _at in history)
        for line in lines:
            balance = ledger.on_hand(line.item, lot=line.lot)
            if balance != line.closing:
                mismatches.append((line.item, line.lot, balance))
    return ConsignmentStatement(owner, period, lines, await units_of(session), current, mismatches)
