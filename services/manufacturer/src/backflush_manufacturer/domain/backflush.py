"""The backflush engine: a flush request in, the movements it posts (or a parked flush) out.

A flush is planned (`plan`: which components, how much), then taken from stock first in, first out by lot,
from available stock only (on hand minus allocated). Nothing here touches storage: the result carries the
movements to append, the genealogy they record and the alerts to publish; a parked flush is returned for the
caller to queue.

A flush posts in full or not at all. If any component is short, the negative-stock policy decides for the whole
flush (the strictest policy among the short components: reject, then park, then allow): `reject` raises
`InsufficientComponentStockError` and posts nothing; `park` returns the whole flush as `ParkedFlush` and posts
nothing; `allow` posts everything, the shortfall on the item's `NEGATIVE` lot, with a `NegativeStockAlert`.

Whose stock a flush takes (contract manufacturing): a request with no `components_owner` takes the
manufacturer's own lots only, never a lot a brand owner consigned. A request for an owner takes that owner's
lots first (first in, first out among them), then the manufacturer's own only if `own_components_allowed`;
never another owner's. What the owner's lots cannot cover is an owner shortage (`Shortage.owner`) that parks,
or rejects under `reject`, whatever the policy (owner stock is never posted negative); with own components
allowed it spills to own stock instead, which follows the policy as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from backflush_manufacturer.domain.bom import BomCatalogue, FlushPoint
from backflush_manufacturer.domain.errors import InsufficientComponentStockError, PhantomWithStockError
from backflush_manufacturer.domain.explosion import Requirement, flush_requirements
from backflush_manufacturer.domain.genealogy import GenealogyLink, links_from_movements
from backflush_manufacturer.domain.ledger import (
    CONSUMPTION_REASONS,
    DEFAULT_LOCATION,
    NEGATIVE_LOT,
    LedgerMovement,
    MovementReason,
    StockLedger,
)
from backflush_manufacturer.domain.negative_stock import (
    NegativeStockAlert,
    NegativeStockPolicy,
    Shortage,
    StockPolicies,
)
from backflush_manufacturer.domain.units import as_decimal, require_quantity

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class FlushRequest:
    """Flush the BOM of `item` for `quantity` at one flush point, for one production order.

    PRE at release (quantity = the order quantity); POST at each completion (quantity = completed now,
    `completed_before` = what earlier completions of the order already flushed); MANUAL when the explicit issue
    event for the manual lines arrives. `flush_id` is the causing event's id: every movement carries it, and a
    reversal names it. `finished_lot`, when known, records genealogy.
    """

    flush_id: str
    production_order: str
    item: str
    flush: FlushPoint
    quantity: Decimal
    completed_before: Decimal = ZERO
    location: str = DEFAULT_LOCATION
    finished_lot: str | None = None
    #: The event that asked for the flush, when it is not the flush id itself (a release and the completion that
    #: follows it in the pre-product flow are two flushes caused by one event).
    event_id: str | None = None
    #: Contract manufacturing: the brand owner whose consigned lots this flush takes first.
    components_owner: str | None = None
    #: With an owner: what the owner's lots cannot cover may come from the manufacturer's own stock.
    own_components_allowed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "flush", FlushPoint.parse(self.flush, item=self.item))
        object.__setattr__(self, "quantity", as_decimal(self.quantity))
        object.__setattr__(self, "completed_before", as_decimal(self.completed_before, what="completed before"))

    @property
    def reason(self) -> MovementReason:
        return MovementReason.MANUAL_ISSUE if self.flush is FlushPoint.MANUAL else MovementReason.BACKFLUSH

    @property
    def into(self) -> tuple[str | None, str | None]:
        return (self.item, self.finished_lot) if self.finished_lot else (None, None)


@dataclass(frozen=True, slots=True)
class ComponentIssue:
    """Issue `quantity` of one component to a production order: a manual issue, or extra scrap reported."""

    issue_id: str
    production_order: str
    component: str
    quantity: Decimal
    reason: MovementReason = MovementReason.MANUAL_ISSUE
    location: str = DEFAULT_LOCATION
    finished_item: str | None = None
    finished_lot: str | None = None
    components_owner: str | None = None
    own_components_allowed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity", as_decimal(self.quantity))
        object.__setattr__(self, "reason", MovementReason(self.reason))
        if self.reason not in CONSUMPTION_REASONS - {MovementReason.BACKFLUSH}:
            raise ValueError(f"a component issue is a manual issue or scrap, not {self.reason}")

    @property
    def flush_id(self) -> str:
        return self.issue_id

    @property
    def into(self) -> tuple[str | None, str | None]:
        return (self.finished_item, self.finished_lot) if self.finished_item and self.finished_lot else (None, None)


ConsumptionRequest = FlushRequest | ComponentIssue


@dataclass(frozen=True, slots=True)
class PostedFlush:
    """A flush that posted: the movements to append, and the alerts to publish (under `allow`)."""

    request: ConsumptionRequest
    requirements: tuple[Requirement, ...]
    movements: tuple[LedgerMovement, ...]
    alerts: tuple[NegativeStockAlert, ...] = ()

    @property
    def flush_id(self) -> str:
        return self.request.flush_id

    @property
    def genealogy(self) -> tuple[GenealogyLink, ...]:
        """Which component lots went into the finished lot (empty when the request named no finished lot)."""
        return links_from_movements(self.movements)


@dataclass(frozen=True, slots=True)
class ParkedFlush:
    """A flush that waits, whole, for stock: nothing of it was posted. Queue it in arrival order."""

    request: ConsumptionRequest
    requirements: tuple[Requirement, ...]
    shortages: tuple[Shortage, ...]

    @property
    def flush_id(self) -> str:
        return self.request.flush_id


FlushOutcome = PostedFlush | ParkedFlush


def plan(catalogue: BomCatalogue, request: ConsumptionRequest) -> tuple[Requirement, ...]:
    """What the request consumes: the flush's requirements (partial-safe), or the one issued component."""
    if isinstance(request, FlushRequest):
        return tuple(
            flush_requirements(
                catalogue, request.item, request.flush, request.quantity, request.completed_before
            )
        )
    component = catalogue.item(request.component)
    if component.phantom:
        raise PhantomWithStockError(component.code, request.quantity)
    quantity = require_quantity(component.code, component.unit, request.quantity, what="issued quantity")
    return (Requirement(component.code, quantity, component.unit, FlushPoint.MANUAL, ((component.code,),),
                        component.supply_location),)


def backflush(
    catalogue: BomCatalogue, ledger: StockLedger, request: FlushRequest, policies: StockPolicies
) -> FlushOutcome:
    """Flush one request against the ledger: posted (movements, genealogy, alerts) or parked; `reject` raises."""
    return post_or_park(ledger, request, plan(catalogue, request), policies)


def issue(
    catalogue: BomCatalogue, ledger: StockLedger, request: ComponentIssue, policies: StockPolicies
) -> FlushOutcome:
    """Issue one component (manual line, extra scrap) under the same rules as a backflush."""
    return post_or_park(ledger, request, plan(catalogue, request), policies)


def post_or_park(
    ledger: StockLedger,
    request: ConsumptionRequest,
    requirements: tuple[Requirement, ...],
    policies: StockPolicies,
    *,
    reject_raises: bool = True,
) -> FlushOutcome:
    """Take planned requirements from stock, or park them whole; the policy decides when something is short.

    With `reject_raises=False` (reprocessing a queue) a flush the `reject` policy refuses stays parked instead.
    """
    takes, shortages = _take_first_in_first_out(ledger, request, requirements)
    policy = policies.deciding(shortages)
    if policy is NegativeStockPolicy.REJECT and reject_raises:
        first = next(s for s in shortages if policies.for_shortage(s) is NegativeStockPolicy.REJECT)
        raise InsufficientComponentStockError(
            first.item,
            needed=first.needed,
            available=first.available,
            location=first.location,
            path=first.paths[0] if first.paths else (),
            production_order=request.production_order,
            shortages=shortages,
        )
    if policy in (NegativeStockPolicy.PARK, NegativeStockPolicy.REJECT):
        return ParkedFlush(request, requirements, shortages)
    movements = [_movement(request, item, location, lot, -quantity, owner)
                 for item, location, lot, quantity, owner in takes]
    alerts = []
    for shortage in shortages:  # only `allow` is left: the shortfall goes onto the negative lot
        movements.append(_movement(request, shortage.item, shortage.location, NEGATIVE_LOT, -shortage.shortfall))
        alerts.append(
            NegativeStockAlert(
                shortage.item,
                shortage.location,
                NEGATIVE_LOT,
                shortage.needed,
                shortage.available,
                shortage.shortfall,
                request.flush_id,
                request.production_order,
            )
        )
    return PostedFlush(request, requirements, tuple(movements), tuple(alerts))


def stock_owners(request: ConsumptionRequest) -> tuple[str | None, ...]:
    """Whose lots a request may take, in the order it takes them: the owner's, then (if allowed) the manufacturer's
    own (None); a request without an owner takes own lots only."""
    owner = request.components_owner
    if owner is None:
        return (None,)
    return (owner, None) if request.own_components_allowed else (owner,)


def _take_first_in_first_out(
    ledger: StockLedger, request: ConsumptionRequest, requirements: tuple[Requirement, ...]
) -> tuple[list[tuple[str, str, str, Decimal, str | None]], tuple[Shortage, ...]]:
    taken: dict[tuple[str, str, str], Decimal] = {}
    takes: list[tuple[str, str, str, Decimal, str | None]] = []
    shortages: list[Shortage] = []
    owners = stock_owners(request)
    for requirement in requirements:
        location = requirement.location or request.location  # each component from its own supply location
        remaining = requirement.quantity
        lots = ledger.lots(requirement.item, location)
        for owner in owners:
            for lot in lots:
                if remaining <= 0:
                    break
                if lot.lot == NEGATIVE_LOT or lot.owner != owner:
                    continue  # the negative lot never supplies stock; nor does anyone else's lot
                key = (lot.item, location, lot.lot)
                usable = lot.available - taken.get(key, ZERO)
                if usable <= 0:
                    continue
                take = min(usable, remaining)
                takes.append((requirement.item, location, lot.lot, take, owner))
                taken[key] = taken.get(key, ZERO) + take
                remaining -= take
        if remaining > 0:
            shortages.append(
                Shortage(
                    requirement.item,
                    location,
                    requirement.quantity,
                    requirement.quantity - remaining,
                    requirement.unit,
                    requirement.paths,
                    # short of the owner's stock unless the manufacturer's own was allowed to make up the rest
                    owners[-1],
                )
            )
    return takes, tuple(shortages)


def _movement(request: ConsumptionRequest, item: str, location: str, lot: str, quantity: Decimal,
              owner: str | None = None) -> LedgerMovement:
    into_item, into_lot = request.into
    return LedgerMovement(
        item,
        location,
        lot,
        quantity,
        request.reason,
        getattr(request, "event_id", None) or request.flush_id,
        production_order=request.production_order,
        flush_id=request.flush_id,
        into_item=into_item,
        into_lot=into_lot,
        owner=owner,
    )
