"""Racks and storage locations with a capacity, and where to put goods away.

Capacity counts units of finished goods. A put-away is whole or nothing: goods are split over as many locations
of the right kind as needed, filling them in location order (first fit), and if the free space of all of them
together is too small, nothing is placed and the goods wait. Waiting put-aways are retried in arrival order
whenever space frees up; a later, smaller one may go ahead of an earlier one that still does not fit, so that one
big delivery never blocks the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from backflush_shared.errors import BackflushError


class LocationKind(StrEnum):
    RACK = "rack"  # distribution-center racks: pre-product goods
    CONSIGNMENT = "consignment"  # consignment storage: post-product goods owned by the manufacturer


class WarehouseError(BackflushError):
    """Base of the warehouse's refusals."""


class InvalidLayoutError(WarehouseError):
    pass


class NotShippedError(WarehouseError):
    def __init__(self, order_id: str, state: str) -> None:
        super().__init__(f"signature for order {order_id} refused: its goods are not shipped ({state})")
        self.order_id = order_id


class CancellationAfterShipmentError(WarehouseError):
    """Only the distributor forwards cancels and it refuses them once goods ship; this guards the warehouse's own
    books if one arrives anyway: a shipment is never undone by a cancel (a return is another flow)."""

    def __init__(self, order_id: str, signed: bool) -> None:
        what = "delivered and signed for" if signed else "shipped"
        super().__init__(f"cancel of order {order_id} refused: its goods were {what}; a return is another flow")
        self.order_id = order_id


class NotAStockOrderError(WarehouseError):
    """A stock order's cancel names an order the warehouse holds goods of in another flow (a stock order holds none
    before it ships): that cancel is the distributor's `OrderCancelled` to make, never a stock cancel that would
    leave the goods stored, or let a call-off ship them, for a cancelled order."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"stock cancel of order {order_id} refused: it is not a stock order, and the warehouse "
                         "holds goods of it")
        self.order_id = order_id


class StockOrderIdInUseError(WarehouseError):
    """A stock order under an id the warehouse already holds goods of in another flow: serving it would pick and
    ship those goods with it, since picking takes every stored unit of the order's id."""

    def __init__(self, order_id: str) -> None:
        super().__init__(f"stock order {order_id} refused: the warehouse holds goods of another flow under that id")
        self.order_id = order_id


class NothingRackedError(WarehouseError):
    def __init__(self, order_id: str, state: str) -> None:
        super().__init__(f"delivery of order {order_id} refused: no goods of it are in the racks ({state})")
        self.order_id = order_id


class ShipmentQuantityMismatchError(WarehouseError):
    def __init__(self, order_id: str, ordered: Decimal, stored: Decimal) -> None:
        super().__init__(
            f"final order {order_id} asks for {ordered} but {stored} are in consignment storage for it"
        )
        self.order_id = order_id
        self.ordered = ordered
        self.stored = stored


class UnknownShipmentOrderError(WarehouseError):
    def __init__(self, order_id: str, what: str) -> None:
        super().__init__(f"{what} for order {order_id}, of which the warehouse holds nothing")
        self.order_id = order_id


@dataclass(frozen=True)
class Location:
    code: str
    kind: LocationKind
    capacity: Decimal


@dataclass(frozen=True)
class Placement:
    location: str
    quantity: Decimal


def parse_layout(text: str, kind: LocationKind) -> list[Location]:
    """`"DC-A1=40,DC-A2=40"` -> locations of one kind, in that order."""
    locations: list[Location] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        code, sep, capacity = part.partition("=")
        try:
            value = Decimal(capacity)
        except Exception:  # noqa: BLE001 - any unparsable number is the same user error
            value = Decimal(-1)
        if not sep or not code.strip() or value <= 0:
            raise InvalidLayoutError(f"bad {kind.value} location {part!r}: write CODE=CAPACITY, e.g. DC-A1=40")
        locations.append(Location(code.strip(), kind, value))
    return locations


def capacity_of(locations: Iterable[Location], kind: LocationKind) -> Decimal:
    """What all locations of one kind hold together: no put-away of that kind bigger than this can ever fit."""
    return sum((loc.capacity for loc in locations if loc.kind is kind), Decimal(0))


def free_space(locations: Sequence[Location], occupied: Mapping[str, Decimal]) -> dict[str, Decimal]:
    return {loc.code: loc.capacity - occupied.get(loc.code, Decimal(0)) for loc in locations}


def plan_put_away(
    locations: Sequence[Location], occupied: Mapping[str, Decimal], quantity: Decimal
) -> list[Placement] | None:
    """Where `quantity` units go, first fit in location order; None when they do not fit as a whole."""
    free = free_space(locations, occupied)
    if sum((space for space in free.values() if space > 0), Decimal(0)) < quantity:
        return None
    remaining = quantity
    plan: list[Placement] = []
    for location in locations:
        space = free[location.code]
        if space <= 0:
            continue
        take = min(space, remaining)
        plan.append(Placement(location.code, take))
        remaining -= take
        if remaining == 0:
            break
    return plan


@dataclass(frozen=True)
class WaitingPutAway:
    id: int
    quantity: Decimal
    kind: LocationKind


def put_aways_that_fit(
    waiting: Iterable[WaitingPutAway], locations: Sequence[Location], occupied: Mapping[str, Decimal]
) -> list[tuple[WaitingPutAway, list[Placement]]]:
    """Which waiting put-aways can go now, in arrival order, each one's space taken before the next is tried."""
    taken = dict(occupied)
    result: list[tuple[WaitingPutAway, list[Placement]]] = []
    for entry in waiting:
        of_kind = [loc for loc in locations if loc.kind is entry.kind]
        plan = plan_put_away(of_kind, taken, entry.quantity)
        if plan is None:
            continue
        for placement in plan:
            taken[placement.location] = taken.get(placement.location, Decimal(0)) + placement.quantity
        result.append((entry, plan))
    return result
