"""The parked-flush queue: which parked flushes can post now, in arrival order.

`reprocess_parked(ledger, queue, policies)` is pure: it takes the queue in arrival order and the current ledger
and says which parked flushes can now post, each seeing the ledger as the ones before it left it. A parked flush
still waits whole (nothing of it posts until all of it can), and it holds its place in line: once an earlier
parked flush is still short of a component, no later parked flush may take that component, and no later flush
of the same production order posts before it. A flush keeps the
requirements it was planned with when it was parked; a BOM changed since does not change a waiting flush.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from backflush_manufacturer.domain.backflush import ParkedFlush, PostedFlush, post_or_park
from backflush_manufacturer.domain.ledger import LedgerMovement, StockLedger
from backflush_manufacturer.domain.negative_stock import StockPolicies


@dataclass(frozen=True, slots=True)
class Reprocessed:
    """The parked flushes that post now (in arrival order) and those that keep waiting (in arrival order)."""

    posted: tuple[PostedFlush, ...]
    still_parked: tuple[ParkedFlush, ...]

    @property
    def movements(self) -> tuple[LedgerMovement, ...]:
        """Every movement to append, in posting order."""
        return tuple(movement for flush in self.posted for movement in flush.movements)


def reprocess_parked(ledger: StockLedger, queue: Iterable[ParkedFlush], policies: StockPolicies) -> Reprocessed:
    """Which parked flushes can post against `ledger` now, in arrival order, and the movements they post."""
    posted: list[PostedFlush] = []
    waiting: list[ParkedFlush] = []
    held: set[tuple[str, str]] = set()  # (item, location) an earlier parked flush is still short of
    held_orders: set[str] = set()  # production orders with an earlier flush still waiting
    for parked in queue:
        location = parked.request.location
        order = parked.request.production_order
        if order in held_orders or any((requirement.item, location) in held for requirement in parked.requirements):
            # behind an earlier flush of the same order (a completion never posts before its release), or in the
            # line for the same component
            waiting.append(parked)
            held_orders.add(order)
            continue
        outcome = post_or_park(ledger, parked.request, parked.requirements, policies, reject_raises=False)
        if isinstance(outcome, PostedFlush):
            ledger = ledger.appended(outcome.movements)
            posted.append(outcome)
        else:
            waiting.append(outcome)
            held_orders.add(order)
            held.update((shortage.item, shortage.location) for shortage in outcome.shortages)
    return Reprocessed(tuple(posted), tuple(waiting))
