"""The states a production order (and a run, stored as one) moves through, and the moves allowed between them.

The stored values are the strings the `production_orders.status` column has always held (the CLI and the audit
read them), so the enum is the column's vocabulary, not a new one. `ORDER_NEXT` and `RUN_NEXT` list, per state,
every state the use cases move an order or a run to from it today (`production.py`, `runs.py`): a use case asks
`transition` instead of assigning, so a move no flow makes is refused loudly instead of stored.

A production order (flow `pre`, `post` or `stock`), created and moved on in one transaction:

    pre:   created [-> awaiting-inspection] -> produced -> allocated -> delivered   (quality-failed at inspection)
    post:  created -> released -> in-production -> completed -> delivered
    stock: created -> released -> in-production -> closed (its latest completion may still be cancelled)

Any flush of it may park it (`parked`, until stock comes); under the `reject` policy a refused release rejects it
(`rejected`); a customer may cancel it until it is delivered.

A run (flow `run`): `reported` -> `stocked` (posted) | `parked` | `rejected`; a stocked run is reversed through
`withdrawal-requested` (the warehouse withdraws its lot) to `cancelled`, or stands (`stocked`) if refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from backflush_shared.errors import BackflushError


class ProductionOrderState(StrEnum):
    #: Stored with the order and moved on in the same transaction (nothing ever reads it back as is).
    CREATED = "created"
    #: Pre-product: the inspection plan asks for an inspector; nothing flushed yet.
    AWAITING_INSPECTION = "awaiting-inspection"
    QUALITY_FAILED = "quality-failed"
    #: The release (pre) flush posted; no completion produced yet (a post or stock order).
    RELEASED = "released"
    #: A flush of it waits for stock in the exception queue; `reason` says what for.
    PARKED = "parked"
    IN_PRODUCTION = "in-production"
    #: A post-product order whose whole quantity was produced.
    COMPLETED = "completed"
    #: A make-to-stock order whose whole quantity was received into component stock.
    CLOSED = "closed"
    #: A pre-product order produced in full right after its release.
    PRODUCED = "produced"
    #: Pre-product: its racked lot is promised to it (the warehouse's inventory check).
    ALLOCATED = "allocated"
    DELIVERED = "delivered"
    #: A flush refused under the `reject` policy: nothing of it stays posted.
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    #: A run as reported by its line, before its flush is decided (moved on in the same transaction).
    REPORTED = "reported"
    #: A run whose flush posted and whose lot was handed to the warehouse for sale.
    STOCKED = "stocked"
    #: A run whose reversal waits for the warehouse to withdraw its lot.
    WITHDRAWAL_REQUESTED = "withdrawal-requested"

    @property
    def finished(self) -> bool:
        """Ended without (or with undone) production: no event moves it again, and a flush of it never waits.
        The audit's `FINISHED_PRODUCTION_STATES` names the same three (a unit test keeps them equal)."""
        return self in _FINISHED


S = ProductionOrderState

_FINISHED = frozenset({S.CANCELLED, S.REJECTED, S.QUALITY_FAILED})

#: Where a completion reported, posted or parked, leaves a post or stock order (`_settle`, `_flush`), and where a
#: cancelled or refused completion leaves it (`in-production` if some was produced, else `released`).
_COMPLETION_OUTCOMES = frozenset({S.PARKED, S.RELEASED, S.IN_PRODUCTION, S.COMPLETED, S.CLOSED})
#: Where the release of a new order leaves it in the same transaction: parked, refused, or posted (then a post or
#: stock order is released, a pre-product order flushes its completion and is produced).
_RELEASE_OUTCOMES = frozenset({S.PARKED, S.REJECTED, S.RELEASED, S.PRODUCED})

#: Every move the use cases make today for a production order (flows pre, post, stock), per state. A state missing
#: as a key (a run's) has no next state.
ORDER_NEXT: Mapping[ProductionOrderState, frozenset[ProductionOrderState]] = {
    S.CREATED: _RELEASE_OUTCOMES | {S.AWAITING_INSPECTION, S.QUALITY_FAILED},
    S.AWAITING_INSPECTION: (_RELEASE_OUTCOMES - {S.RELEASED}) | {S.QUALITY_FAILED, S.CANCELLED},
    S.RELEASED: _COMPLETION_OUTCOMES | {S.CANCELLED},
    S.IN_PRODUCTION: _COMPLETION_OUTCOMES | {S.CANCELLED},
    # a parked flush posts (release or completion), is refused under `reject`, or is cancelled with its order
    S.PARKED: _COMPLETION_OUTCOMES | _RELEASE_OUTCOMES | {S.CANCELLED},
    # post-product: shipped on the final order once all of it is in consignment storage, then signed for
    S.COMPLETED: frozenset({S.DELIVERED, S.CANCELLED}),
    # make-to-stock: its latest completion may still be cancelled while its lot is all on hand
    S.CLOSED: frozenset({S.IN_PRODUCTION, S.RELEASED}),
    # a signature may overtake the inventory check (they come on different topics)
    S.PRODUCED: frozenset({S.ALLOCATED, S.DELIVERED, S.CANCELLED}),
    S.ALLOCATED: frozenset({S.DELIVERED, S.CANCELLED}),
}

#: Every move the use cases make today for a run (`runs.py`), per state. Its flush is one: it posts, parks whole, or
#: is refused; a parked run posts later, is refused, or is cancelled (nothing of it posted).
RUN_NEXT: Mapping[ProductionOrderState, frozenset[ProductionOrderState]] = {
    S.REPORTED: frozenset({S.PARKED, S.STOCKED, S.REJECTED}),
    S.PARKED: frozenset({S.STOCKED, S.REJECTED, S.CANCELLED}),
    S.STOCKED: frozenset({S.WITHDRAWAL_REQUESTED}),
    # withdrawn: reversed; refused by the warehouse (its lot is sold or allocated): the run stands
    S.WITHDRAWAL_REQUESTED: frozenset({S.CANCELLED, S.STOCKED}),
}


def next_states(state: ProductionOrderState, *, run: bool = False) -> frozenset[ProductionOrderState]:
    """Where a production order (a run, if `run`) in `state` may go; nothing once it ends."""
    return (RUN_NEXT if run else ORDER_NEXT).get(state, frozenset())


class IllegalProductionOrderTransitionError(BackflushError):
    """A use case asked to move a production order (or run) somewhere its state does not lead: a defect or an event
    out of any flow. Refused whole, so the order keeps the state it had. Not a `ManufacturerDomainError`: it is
    about an order, not an item of a BOM."""

    def __init__(self, current: ProductionOrderState, to: ProductionOrderState, *, run: bool = False,
                 order_id: str | None = None) -> None:
        self.current = current
        self.to = to
        self.run = run
        self.order_id = order_id
        what = "run" if run else "production order"
        whose = f"{what} {order_id}" if order_id else f"a {what}"
        allowed = ", ".join(sorted(next_states(current, run=run))) or "nowhere: it ends there"
        super().__init__(f"{whose} cannot move from {current} to {to}; from {current} it may go to {allowed}")


def transition(current: ProductionOrderState, to: ProductionOrderState, *, run: bool = False,
               order_id: str | None = None) -> ProductionOrderState:
    """`to`, if a production order (a run, if `run`) in `current` may go there; otherwise
    `IllegalProductionOrderTransitionError`."""
    if to not in next_states(current, run=run):
        raise IllegalProductionOrderTransitionError(current, to, run=run, order_id=order_id)
    return to
