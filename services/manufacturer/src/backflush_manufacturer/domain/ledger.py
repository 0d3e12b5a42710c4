"""The component stock ledger: append-only movements, and every balance derived from them.

Nothing is stored beside the movements. On hand, allocated and available, per item, location or lot, are sums of
movements; so are the lots' receipt order (first in, first out) and the debts carried by the negative lot.

- **On hand** is the sum of every movement that is not an allocation.
- **Allocated** is modelled as movements too (`MovementReason.ALLOCATION`, positive to promise stock of a lot to
  an order, negative to release it): a promise is an event with a cause, like any other, and an audit trail of
  who promised what, when, comes for free. Allocations never change on hand.
- **Available** is on hand minus allocated. A backflush only ever takes available stock: allocated stock is
  promised and is never flushed.
- **Lots are consumed first in, first out**, by receipt order: the order in which each lot of an item at a
  location first appears in the ledger. `StockLedger.from_movements` therefore expects movements in the order
  they were appended.
- **The negative lot.** Under the `allow` policy the part of a flush that stock cannot cover is posted on the
  item's dedicated lot `NEGATIVE` at that location, never on a real lot, so real lots never show less than
  zero. The next receipt of the item at that location settles it: it is received into its own lot and then
  moves what the negative lot owes from that lot to the negative lot (`SETTLEMENT` movements), oldest debt
  first, so the negative lot returns to zero and genealogy learns which real lot went into the finished goods.
- **Owners (contract manufacturing).** A lot consigned by a brand owner stays the owner's property: every movement
  of it carries `owner`, and the lot keeps the owner of its first movement (`lot_owner`). Lots without an owner are
  the manufacturer's own. Which lots a flush may take is the engine's rule (`backflush.py`); the ledger only says
  whose each lot is.

The ledger is a value: `appended(movements)` returns a new ledger and leaves this one as it was. A persistence
layer loads the movements of the involved items, builds the ledger, calls the pure functions of this package
and appends the movements they return. The one exception is a transaction's working ledger (`working()`), which
`append` extends in place and which no other version ever sees change (see `StockLedger`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from backflush_manufacturer.domain.units import as_decimal

NEGATIVE_LOT = "NEGATIVE"
"""The lot that carries an item's negative balance at a location under the `allow` policy."""

DEFAULT_LOCATION = "MAIN"

ZERO = Decimal(0)


class MovementReason(StrEnum):
    """Why stock moved. Every movement has one, and the event that caused it."""

    RECEIPT = "receipt"  # from a supplier, or initial stock
    PRODUCTION_RECEIPT = "production_receipt"  # a produced (sub)assembly put into stock
    BACKFLUSH = "backflush"  # consumed automatically at the pre or post flush point
    MANUAL_ISSUE = "manual_issue"  # consumed by an explicit issue (manual BOM lines)
    SCRAP = "scrap"  # extra scrap reported against a production order
    SETTLEMENT = "settlement"  # a receipt covering what the negative lot owes
    REVERSAL = "reversal"  # compensates a flush (cancelled order or completion)
    ALLOCATION = "allocation"  # promises stock of a lot to an order (+) or releases the promise (-)
    DELIVERY = "delivery"  # finished goods leave the manufacturer's books: an order holder signed for them


CONSUMPTION_REASONS = frozenset({MovementReason.BACKFLUSH, MovementReason.MANUAL_ISSUE, MovementReason.SCRAP})


@dataclass(frozen=True, slots=True)
class LedgerMovement:
    """One append-only ledger entry: a signed quantity of one lot of one item at one location.

    `event_id` is the event that caused the movement. `flush_id` ties every movement of one flush together:
    the flush's own consumption, the settlements of what it took from the negative lot, and its reversal.
    `into_item` / `into_lot` name the finished lot a consumed component lot went into (genealogy).
    """

    item: str
    location: str
    lot: str
    quantity: Decimal
    reason: MovementReason
    event_id: str
    production_order: str | None = None
    flush_id: str | None = None
    into_item: str | None = None
    into_lot: str | None = None
    #: The brand owner whose consigned lot this is; None for the manufacturer's own stock.
    owner: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity", as_decimal(self.quantity))
        object.__setattr__(self, "reason", MovementReason(self.reason))
        for name in ("item", "location", "lot", "event_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"a ledger movement needs a non-empty {name}, got {value!r}")

    @property
    def is_allocation(self) -> bool:
        return self.reason is MovementReason.ALLOCATION


@dataclass(frozen=True, slots=True)
class LotBalance:
    """One lot of an item at a location: on hand, allocated and what is left available."""

    item: str
    location: str
    lot: str
    on_hand: Decimal
    allocated: Decimal
    owner: str | None = None

    @property
    def available(self) -> Decimal:
        return self.on_hand - self.allocated


@dataclass(frozen=True, slots=True)
class NegativeDebt:
    """What the negative lot of an item at a location still owes for one flush, oldest first."""

    item: str
    location: str
    flush_id: str
    outstanding: Decimal
    production_order: str | None
    into_item: str | None
    into_lot: str | None


@dataclass(slots=True)
class _Debt:
    outstanding: Decimal
    production_order: str | None
    into_item: str | None
    into_lot: str | None


@dataclass(slots=True)
class _ItemState:
    """Everything derived for one item; cloned only when an append touches the item (copy on write), and by a
    working ledger only at its first append of the item (see `StockLedger`)."""

    on_hand: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (location, lot)
    allocated: dict[tuple[str, str, str | None], Decimal] = field(default_factory=dict)  # (location, lot, order)
    allocated_by_lot: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (location, lot)
    # location -> its lots in receipt order (a dict for its order and an O(1) test of a lot: an item's finished
    # lots at one location run into the thousands, and every movement asks whether its lot is new there)
    lots: dict[str, dict[str, None]] = field(default_factory=dict)
    debts: dict[str, dict[str, _Debt]] = field(default_factory=dict)  # location -> flush id -> debt
    owners: dict[str, str] = field(default_factory=dict)  # lot -> its owner (consigned lots only)
    # lot -> the locations it has on-hand movements at, in first-movement order (`on_hand`'s order): an item's
    # finished lots run into the thousands, and a lot's locations are asked for at every delivery and allocation
    places: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def clone(self) -> _ItemState:
        return _ItemState(
            dict(self.on_hand),
            dict(self.allocated),
            dict(self.allocated_by_lot),
            {location: dict(lots) for location, lots in self.lots.items()},
            {
                location: {
                    flush: _Debt(d.outstanding, d.production_order, d.into_item, d.into_lot)
                    for flush, d in debts.items()
                }
                for location, debts in self.debts.items()
            },
            dict(self.owners),
            dict(self.places),
        )

    def add(self, m: LedgerMovement) -> None:
        lots = self.lots.setdefault(m.location, {})
        if m.lot not in lots:
            lots[m.lot] = None  # first appearance = receipt order, which is what FIFO follows
        if m.owner is not None and m.lot not in self.owners:
            self.owners[m.lot] = m.owner
        if m.is_allocation:
            key = (m.location, m.lot, m.production_order)
            self.allocated[key] = self.allocated.get(key, ZERO) + m.quantity
            by_lot = (m.location, m.lot)
            self.allocated_by_lot[by_lot] = self.allocated_by_lot.get(by_lot, ZERO) + m.quantity
            return
        key = (m.location, m.lot)
        before = self.on_hand.get(key)
        if before is None:
            self.places[m.lot] = self.places.get(m.lot, ()) + (m.location,)
            before = ZERO
        self.on_hand[key] = before + m.quantity
        if m.flush_id is not None and m.lot == NEGATIVE_LOT:
            debts = self.debts.setdefault(m.location, {})
            debt = debts.setdefault(m.flush_id, _Debt(ZERO, m.production_order, m.into_item, m.into_lot))
            debt.outstanding -= m.quantity


class StockLedger:
    """The append-only movements of some items, and every balance derived from them.

    Versions share one append-only log: `appended` extends the log in place when this ledger is its newest
    version (the usual case: each version is appended to once), and copies it only when an older version is
    appended to again (a branch). So appending costs what is appended, not what came before, and a service can
    keep years of movements in memory. The per-flush and per-order indexes hold log positions, each version
    reading only the positions below its own length.

    What is derived per item (`_ItemState`: every lot's balance, the FIFO order, the debts) grows with the item's
    history, so copying it is what an append costs. `appended` copies the state of each item it touches and
    leaves every other version as it was. A transaction appends many times to its one version: it takes
    `working()`, a version of its own that `append` extends in place, copying an item's state only at the
    working ledger's first append of that item (copy on first write) and never touching a state another version
    holds. So the working ledger sees every movement appended to it (a reference to it taken before an `append`
    sees that append too), and the version it was taken from, like every other, never changes. `freeze()` ends
    the appending in place (a working ledger that becomes a shared version, e.g. a cache's, once its transaction
    commits); `appended` on a working ledger returns a value as on any version, and the working ledger copies
    again the states they then share before it next changes them.
    """

    __slots__ = ("_log", "_length", "_items", "_flushes", "_orders", "_owned")

    def __init__(self) -> None:
        self._log: list[LedgerMovement] = []
        self._length = 0
        self._items: dict[str, _ItemState] = {}
        self._flushes: dict[str, list[int]] = {}  # flush id -> log positions of its on-hand movements
        self._orders: dict[str, list[int]] = {}  # production order -> log positions of its movements
        # a working ledger's items whose state it alone holds, and may change in place; None: not a working ledger
        self._owned: set[str] | None = None

    @classmethod
    def from_movements(cls, movements: Iterable[LedgerMovement]) -> StockLedger:
        """The ledger of `movements`, given in the order they were appended."""
        return cls().appended(movements)

    def appended(self, movements: Iterable[LedgerMovement]) -> StockLedger:
        """A new ledger with `movements` appended; this one is left as it was."""
        ledger = self._sharing()
        ledger._owned = set()
        ledger._extend(movements)
        ledger._owned = None
        if self._owned is not None:
            self._owned.clear()  # the new version holds this working ledger's states too: copied before a change
        return ledger

    def working(self) -> StockLedger:
        """A working ledger starting as this version: `append` extends it in place, and this one is left as it was."""
        ledger = self._sharing()
        ledger._owned = set()
        return ledger

    def append(self, movements: Iterable[LedgerMovement]) -> None:
        """Append `movements` to this working ledger, in place (`working()`; never another version)."""
        if self._owned is None:
            raise TypeError("only a working ledger is appended to in place: take working(), or use appended()")
        self._extend(movements)

    def freeze(self) -> StockLedger:
        """This ledger, no longer appended to in place (`append` refuses from now on): a version others may share."""
        self._owned = None
        return self

    def _sharing(self) -> StockLedger:
        """A ledger of this version's movements sharing its log, indexes and item states (copied on first write)."""
        ledger = StockLedger()
        ledger._log, ledger._length = self._log, self._length
        ledger._flushes, ledger._orders = self._flushes, self._orders
        ledger._items = dict(self._items)
        return ledger

    def _extend(self, movements: Iterable[LedgerMovement]) -> None:
        owned = self._owned
        assert owned is not None
        movements = tuple(movements)  # (all of them decided before any is appended)
        if self._length != len(self._log):
            # another version was appended to the shared log since this one's end: this one branches off with
            # copies of its own part
            self._log = self._log[: self._length]
            self._flushes = _index_below(self._flushes, self._length)
            self._orders = _index_below(self._orders, self._length)
        log, items = self._log, self._items
        for movement in movements:
            item = movement.item
            if item not in owned:
                previous = items.get(item)
                items[item] = previous.clone() if previous is not None else _ItemState()
                owned.add(item)
            items[item].add(movement)
            position = len(log)
            log.append(movement)
            if movement.flush_id is not None and not movement.is_allocation:
                self._flushes.setdefault(movement.flush_id, []).append(position)
            if movement.production_order is not None:
                self._orders.setdefault(movement.production_order, []).append(position)
        self._length = len(log)

    def _at(self, positions: Iterable[int]) -> tuple[LedgerMovement, ...]:
        return tuple(self._log[p] for p in positions if p < self._length)

    @property
    def movements(self) -> tuple[LedgerMovement, ...]:
        return tuple(self._log[: self._length])

    def __len__(self) -> int:
        return self._length

    def _state(self, item: str) -> _ItemState:
        return self._items.get(item) or _ItemState()

    # -- balances ---------------------------------------------------------------------------------------------

    def on_hand(self, item: str, location: str | None = None, lot: str | None = None) -> Decimal:
        """Physical stock (negative lot included) of `item`, optionally at one location and one lot."""
        if location is not None and lot is not None:  # one lot: a lookup, not a scan of every lot
            return self._state(item).on_hand.get((location, lot), ZERO)
        return sum(
            (
                quantity
                for (loc, lt), quantity in self._state(item).on_hand.items()
                if location in (None, loc) and lot in (None, lt)
            ),
            ZERO,
        )

    def lot_locations(self, item: str, lot: str) -> dict[str, Decimal]:
        """Where a lot of `item` is on hand: `{location: on hand}`, non-zero only."""
        state = self._state(item)
        on_hand = state.on_hand
        return {loc: quantity for loc in state.places.get(lot, ()) if (quantity := on_hand[(loc, lot)])}

    def allocated(
        self,
        item: str,
        location: str | None = None,
        lot: str | None = None,
        production_order: str | None = None,
    ) -> Decimal:
        """Stock of `item` promised to orders (or to one order)."""
        if location is not None and lot is not None and production_order is None:
            return self._state(item).allocated_by_lot.get((location, lot), ZERO)
        return sum(
            (
                quantity
                for (loc, lt, order), quantity in self._state(item).allocated.items()
                if location in (None, loc) and lot in (None, lt) and production_order in (None, order)
            ),
            ZERO,
        )

    def available(self, item: str, location: str | None = None, lot: str | None = None) -> Decimal:
        """On hand minus allocated."""
        return self.on_hand(item, location, lot) - self.allocated(item, location, lot)

    def lots(self, item: str, location: str = DEFAULT_LOCATION) -> tuple[LotBalance, ...]:
        """Every lot of `item` at `location` in receipt order (first in, first out), the negative lot last."""
        state = self._state(item)
        known = state.lots.get(location, {})
        ordered = [lot for lot in known if lot != NEGATIVE_LOT] + [lot for lot in known if lot == NEGATIVE_LOT]
        allocated: dict[str, Decimal] = {}
        for (loc, lot, _order), quantity in state.allocated.items():
            if loc == location:
                allocated[lot] = allocated.get(lot, ZERO) + quantity
        return tuple(
            LotBalance(item, location, lot, state.on_hand.get((location, lot), ZERO), allocated.get(lot, ZERO),
                       state.owners.get(lot))
            for lot in ordered
        )

    def has_lot(self, item: str, lot: str) -> bool:
        """Whether any movement of `item` names `lot`, at any location."""
        return any(lot in lots for lots in self._state(item).lots.values())

    def lot_owner(self, item: str, lot: str) -> str | None:
        """The brand owner of a consigned lot of `item`; None for the manufacturer's own (or an unknown) lot."""
        return self._state(item).owners.get(lot)

    def balances(self) -> dict[tuple[str, str, str], Decimal]:
        """Every non-zero on-hand balance, keyed by (item, location, lot)."""
        return {
            (item, location, lot): quantity
            for item, state in self._items.items()
            for (location, lot), quantity in state.on_hand.items()
            if quantity
        }

    def allocations(self) -> dict[tuple[str, str, str, str | None], Decimal]:
        """Every non-zero allocation, keyed by (item, location, lot, order)."""
        return {
            (item, location, lot, order): quantity
            for item, state in self._items.items()
            for (location, lot, order), quantity in state.allocated.items()
            if quantity
        }

    def allocations_of_order(self, production_order: str) -> dict[tuple[str, str, str, str | None], Decimal]:
        """`allocations()` of one order (same keys, same order), from the order's own movements: every delivery
        and cancellation asks, and the whole book of allocations grows with every order ever allocated."""
        totals: dict[tuple[str, str, str, str | None], Decimal] = {}
        for m in self._at(self._orders.get(production_order, ())):
            if m.is_allocation:
                key = (m.item, m.location, m.lot, production_order)
                totals[key] = totals.get(key, ZERO) + m.quantity
        if len({key[0] for key in totals}) > 1:  # items in the order `allocations()` lists them: first appearance
            rank = {item: position for position, item in enumerate(self._items)}
            totals = dict(sorted(totals.items(), key=lambda entry: rank[entry[0][0]]))
        return {key: quantity for key, quantity in totals.items() if quantity}

    def items(self) -> tuple[str, ...]:
        """The items this ledger has movements of, in first-appearance order."""
        return tuple(self._items)

    # -- flushes, debts, orders -------------------------------------------------------------------------------

    def flush_movements(self, flush_id: str) -> tuple[LedgerMovement, ...]:
        """Every on-hand movement of one flush: its consumption, settlements and reversal, in ledger order."""
        return self._at(self._flushes.get(flush_id, ()))

    def negative_debts(self, item: str, location: str = DEFAULT_LOCATION) -> tuple[NegativeDebt, ...]:
        """What the negative lot of `item` at `location` still owes, per flush, oldest first."""
        debts = self._state(item).debts.get(location, {})
        return tuple(
            NegativeDebt(item, location, flush_id, d.outstanding, d.production_order, d.into_item, d.into_lot)
            for flush_id, d in debts.items()
            if d.outstanding > 0
        )

    def flush_ids_of_order(self, production_order: str) -> tuple[str, ...]:
        """The flushes (and issues) charged to a production order, in the order they were first posted."""
        return tuple(
            dict.fromkeys(
                m.flush_id
                for m in self._at(self._orders.get(production_order, ()))
                if m.flush_id is not None and not m.is_allocation
            )
        )

    def consumed_by_order(self, production_order: str) -> Mapping[str, Decimal]:
        """Net consumption per component charged to a production order (flushes, issues, scrap, reversals).

        Settlements move stock between two lots of one item, so they add nothing to an item's consumption.
        """
        consumed: dict[str, Decimal] = {}
        for movement in self._at(self._orders.get(production_order, ())):
            if movement.flush_id is None:
                continue
            if movement.is_allocation:
                continue
            consumed[movement.item] = consumed.get(movement.item, ZERO) - movement.quantity
        return {item: quantity for item, quantity in consumed.items() if quantity}


def _index_below(index: dict[str, list[int]], length: int) -> dict[str, list[int]]:
    kept = {key: [p for p in positions if p < length] for key, positions in index.items()}
    return {key: positions for key, positions in kept.items() if positions}
