"""Genealogy: which component lots went into which finished lot, queryable both ways.

Every consumption movement that knows its finished lot says so (`into_item`, `into_lot`), so genealogy is derived
from movements like every balance: a flush records it, a settlement moves it from the negative lot to the real lot
that covered it, and a reversal takes it back. Links are net quantities; a link that nets to zero disappears.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from backflush_manufacturer.domain.ledger import LedgerMovement


@dataclass(frozen=True, slots=True)
class GenealogyLink:
    """`quantity` of `component` lot `component_lot` went into `finished_item` lot `finished_lot`."""

    finished_item: str
    finished_lot: str
    component: str
    component_lot: str
    quantity: Decimal
    production_order: str | None = None


def links_from_movements(movements: Iterable[LedgerMovement]) -> tuple[GenealogyLink, ...]:
    """The net genealogy links of `movements`, in first-appearance order, zero links left out."""
    net: dict[tuple[str, str, str, str, str | None], Decimal] = {}
    for m in movements:
        if m.into_item is None or m.into_lot is None or m.is_allocation:
            continue
        key = (m.into_item, m.into_lot, m.item, m.lot, m.production_order)
        net[key] = net.get(key, Decimal(0)) - m.quantity  # consumption is negative stock, positive genealogy
    return tuple(
        GenealogyLink(finished_item, finished_lot, component, component_lot, quantity, order)
        for (finished_item, finished_lot, component, component_lot, order), quantity in net.items()
        if quantity
    )


class Genealogy:
    """The genealogy links of a ledger, looked up from the finished lot or from the component lot."""

    __slots__ = ("_links",)

    def __init__(self, links: Iterable[GenealogyLink]) -> None:
        self._links = tuple(links)

    @classmethod
    def from_movements(cls, movements: Iterable[LedgerMovement]) -> Genealogy:
        return cls(links_from_movements(movements))

    @property
    def links(self) -> tuple[GenealogyLink, ...]:
        return self._links

    def components_of(self, finished_item: str, finished_lot: str) -> tuple[GenealogyLink, ...]:
        """Which component lots went into this finished lot (down the tree)."""
        return tuple(
            link for link in self._links if link.finished_item == finished_item and link.finished_lot == finished_lot
        )

    def used_in(self, component: str, component_lot: str) -> tuple[GenealogyLink, ...]:
        """Which finished lots this component lot went into (up the tree, e.g. for a recall)."""
        return tuple(
            link for link in self._links if link.component == component and link.component_lot == component_lot
        )
