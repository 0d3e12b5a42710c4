"""Selling from finished-goods stock (pure): which racked, unallocated units serve which waiting stock order.

Stock orders of one item are served strictly in arrival order: the first order the free units cannot cover waits
(saying how many units it needs and how many are free), and every later order of the item waits behind it, so a
big order is never starved by small ones. An order that allows partial deliveries takes what is free now as one
delivery and waits for the rest, still first in line. Units are taken first in, first out: the lot racked first goes
first, and within a lot the unit placed first. Nothing here touches storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class FreeUnit:
    """Racked, unallocated units of one run's lot at one location (a `stock_units` row), in FIFO order."""

    unit_id: int
    run_id: str
    lot: str
    location: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class Take:
    """`quantity` units taken from one free unit row for an order."""

    unit: FreeUnit
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class WaitingStockOrder:
    """A stock order still waiting for `quantity` units (what remains of it, if partly delivered)."""

    order_id: str
    quantity: Decimal
    partial: bool = False


@dataclass(frozen=True, slots=True)
class Served:
    """One delivery to an order: all it waited for, or (partial deliveries) what was free."""

    order_id: str
    takes: tuple[Take, ...]

    @property
    def quantity(self) -> Decimal:
        return sum((take.quantity for take in self.takes), ZERO)


@dataclass(frozen=True, slots=True)
class StillWaiting:
    """The first order the free stock cannot cover: what it needs and what is free for it now."""

    order_id: str
    needed: Decimal
    free: Decimal


@dataclass(frozen=True, slots=True)
class Serving:
    served: tuple[Served, ...]
    waiting: tuple[StillWaiting, ...]


def take_first_in_first_out(free: Sequence[FreeUnit], quantity: Decimal) -> tuple[Take, ...] | None:
    """`quantity` units from the free units in their order, or None when they do not cover it (nothing taken)."""
    if sum((u.quantity for u in free), ZERO) < quantity:
        return None
    takes: list[Take] = []
    remaining = quantity
    for unit in free:
        if remaining <= 0:
            break
        take = min(unit.quantity, remaining)
        if take > 0:
            takes.append(Take(unit, take))
            remaining -= take
    return tuple(takes)


def serve_in_arrival_order(waiting: Sequence[WaitingStockOrder], free: Sequence[FreeUnit]) -> Serving:
    """Serve the waiting orders of one item, oldest first, from its free units; stop at the first that cannot be
    served whole (it and every later order keep waiting: each is told the units free for it now)."""
    left = list(free)
    served: list[Served] = []
    still: list[StillWaiting] = []
    for order in waiting:
        takes = None if still else take_first_in_first_out(left, order.quantity)
        if takes is None:
            available = ZERO if still else sum((u.quantity for u in left), ZERO)
            if order.partial and available > 0:
                # a part now, and the order waits, first in line, for the rest
                part = take_first_in_first_out(left, available)
                assert part is not None
                served.append(Served(order.order_id, part))
                left = _without(left, part)
                still.append(StillWaiting(order.order_id, order.quantity - available, ZERO))
                continue
            still.append(StillWaiting(order.order_id, order.quantity, available))
            continue
        served.append(Served(order.order_id, takes))
        left = _without(left, takes)
    return Serving(tuple(served), tuple(still))


def _without(free: list[FreeUnit], takes: Sequence[Take]) -> list[FreeUnit]:
    taken: dict[int, Decimal] = {}
    for take in takes:
        taken[take.unit.unit_id] = taken.get(take.unit.unit_id, ZERO) + take.quantity
    rest = []
    for unit in free:
        quantity = unit.quantity - taken.get(unit.unit_id, ZERO)
        if quantity > 0:
            rest.append(FreeUnit(unit.unit_id, unit.run_id, unit.lot, unit.location, quantity))
    return rest
