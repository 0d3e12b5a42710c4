"""The parked-flush queue: which parked flushes can post now, in arrival order.

`reprocess_parked(ledger, queue, policies)` is pure: it takes the queue in arrival order and the current ledger
and says which parked flushes can now post, each seeing the ledger as the ones before it left it. A parked flush
still waits whole (nothing of it posts until all of it can), and it holds its place in line: once an earlier
parked flush is still short of a component, no later parked flush may take that component, and no later flush
of the same production order posts before it. A flush keeps the
requirements it was planned with when it was parked; a BOM changed since does not change a waiting flush.

Reprocessing decides like a first posting: a flush whose shortage the `reject` policy decides (the item's policy
was changed, or the flush had waited behind an earlier flush of its order) is refused, not kept waiting, since
under `reject` nothing waits for stock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from backflush_manufacturer.domain.backflush import FlushRequest, ParkedFlush, PostedFlush, post_or_park, stock_owners
from backflush_manufacturer.domain.backflush import ConsumptionRequest
from backflush_manufacturer.domain.bom import FlushPoint
from backflush_manufacturer.domain.explosion import Requirement
from backflush_manufacturer.domain.errors import InsufficientComponentStockError
from backflush_manufacturer.domain.ledger import LedgerMovement, StockLedger
from backflush_manufacturer.domain.negative_stock import StockPolicies


@dataclass(frozen=True, slots=True)
class Reprocessed:
    """The parked flushes that post now (in arrival order) and those that keep waiting (in arrival order)."""

    posted: tuple[PostedFlush, ...]
    still_parked: tuple[ParkedFlush, ...]
    #: Flushes the `reject` policy refuses now, each with the refusal (in arrival order).
    refused: tuple[tuple[ParkedFlush, InsufficientComponentStockError], ...] = ()
    #: (item, location, owner) a flush still waiting is short of (owner None: the manufacturer's own stock): a new
    #: flush that would take from that stock queues behind it; one taking another owner's lots does not.
    held: frozenset[tuple[str, str, str | None]] = frozenset()

    @property
    def movements(self) -> tuple[LedgerMovement, ...]:
        """Every movement to append, in posting order."""
        return tuple(movement for flush in self.posted for movement in flush.movements)


def holds(held: Iterable[tuple[str, str, str | None]], request: ConsumptionRequest,
          requirements: Iterable[Requirement]) -> bool:
    """Whether a flush would take stock (item, location, whose) that an earlier waiting flush is short of."""
    short = set(held)
    owners = stock_owners(request)
    return any((r.item, r.location or request.location, owner) in short for r in requirements for owner in owners)


def reprocess_parked(ledger: StockLedger, queue: Iterable[ParkedFlush], policies: StockPolicies) -> Reprocessed:
    """Which parked flushes can post against `ledger` now, in arrival order, and the movements they post."""
    posted: list[PostedFlush] = []
    waiting: list[ParkedFlush] = []
    refused: list[tuple[ParkedFlush, InsufficientComponentStockError]] = []
    held: set[tuple[str, str, str | None]] = set()  # (item, location, owner) an earlier flush is still short of
    held_orders: set[str] = set()  # production orders with an earlier flush still waiting
    for parked in queue:
        order = parked.request.production_order
        if order in held_orders or holds(held, parked.request, parked.requirements):
            # behind an earlier flush of the same order (a completion never posts before its release), or in the
            # line for the same component
            waiting.append(parked)
            held_orders.add(order)
            continue
        try:
            outcome = post_or_park(ledger, parked.request, parked.requirements, policies)
        except InsufficientComponentStockError as error:
            # it never took anything, so no component is held; a refused release rejects its order, so the
            # order's later flushes must not post after it
            refused.append((parked, error))
            if isinstance(parked.request, FlushRequest) and parked.request.flush is FlushPoint.PRE:
                held_orders.add(order)
            continue
        if isinstance(outcome, PostedFlush):
            ledger = ledger.appended(outcome.movements)
            posted.append(outcome)
        else:
            waiting.append(outcome)
            held_orders.add(order)
            held.update((shortage.item, shortage.location, shortage.owner) for shortage in outcome.shortages)
    return Reprocessed(tuple(posted), tuple(waiting), tuple(refused), frozenset(held))
