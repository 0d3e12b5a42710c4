"""Bills of materials: flush points, BOM lines, and the catalogue that holds items and BOMs together.

A `BomCatalogue` is validated whole when it is built, so that an explosion never meets a bad BOM half way: every
BOM line names a known item, with a positive quantity per and a scrap factor of zero or more; every phantom has a
BOM; and no BOM contains itself at any depth. Errors name the BOM path from a top item down to the fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from backflush_manufacturer.domain.errors import (
    CyclicBomError,
    DuplicateDefinitionError,
    MissingBomError,
    NegativeScrapFactorError,
    NonPositiveQuantityError,
    UnknownFlushPointError,
    UnknownItemError,
)
from backflush_manufacturer.domain.items import Item
from backflush_manufacturer.domain.units import as_decimal


class FlushPoint(StrEnum):
    """When a BOM line is backflushed.

    PRE: at release of the production order, once the quality check has passed. POST: at completion, for the
    quantity actually completed. MANUAL: never automatically; issued by an explicit event.
    """

    PRE = "pre"
    POST = "post"
    MANUAL = "manual"

    @classmethod
    def parse(cls, value: object, *, item: str, path: Sequence[str] = ()) -> FlushPoint:
        """`"pre"`, `"POST"`, `FlushPoint.MANUAL` -> a FlushPoint; anything else is an `UnknownFlushPointError`."""
        if isinstance(value, FlushPoint):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        raise UnknownFlushPointError(value, item=item, path=path)

    @property
    def rank(self) -> int:
        """The order requirements are listed in: pre, post, manual (the order they happen on the shop floor)."""
        return _FLUSH_RANK[self]


_FLUSH_RANK = {FlushPoint.PRE: 0, FlushPoint.POST: 1, FlushPoint.MANUAL: 2}


@dataclass(frozen=True, slots=True)
class BomLine:
    """One component of a BOM: how much per parent, the extra scrap, and when it is flushed.

    Consumption per parent unit is `quantity_per x (1 + scrap_factor)`: `BomLine("CASTOR", 5, Decimal("0.03"))`
    consumes 5.15 castors per base.
    """

    component: str
    quantity_per: Decimal
    scrap_factor: Decimal = Decimal(0)
    flush: FlushPoint = FlushPoint.POST

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity_per", as_decimal(self.quantity_per, what="quantity per"))
        object.__setattr__(self, "scrap_factor", as_decimal(self.scrap_factor, what="scrap factor"))
        object.__setattr__(self, "flush", FlushPoint.parse(self.flush, item=self.component))

    @property
    def factor(self) -> Decimal:
        """Consumption per parent unit, scrap included (exact)."""
        return self.quantity_per * (1 + self.scrap_factor)


@dataclass(frozen=True, slots=True)
class Bom:
    """The BOM of `parent`: its lines in the order they were written."""

    parent: str
    lines: tuple[BomLine, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(self.lines))


class BomCatalogue:
    """The item master and the BOMs, validated together; the only input an explosion needs.

    Built whole (`BomCatalogue(items, boms)`) and never changed: `with_items` / `with_boms` return a new, again
    validated, catalogue, which is how master-data events update it.
    """

    __slots__ = ("_items", "_boms", "_require_phantom_boms")

    def __init__(self, items: Iterable[Item], boms: Iterable[Bom] = (), *, require_phantom_boms: bool = True) -> None:
        # Master data arriving one event at a time defines a phantom before its BOM (the BOM needs its parent
        # to exist): such a catalogue passes `require_phantom_boms=False`, and exploding the phantom refuses.
        self._require_phantom_boms = require_phantom_boms
        item_map: dict[str, Item] = {}
        for item in items:
            if item.code in item_map:
                raise DuplicateDefinitionError("item", item=item.code)
            item_map[item.code] = item
        bom_map: dict[str, Bom] = {}
        for bom in boms:
            if bom.parent in bom_map:
                raise DuplicateDefinitionError("BOM", item=bom.parent)
            bom_map[bom.parent] = bom
        self._items: Mapping[str, Item] = MappingProxyType(item_map)
        self._boms: Mapping[str, Bom] = MappingProxyType(bom_map)
        self._validate()

    @property
    def items(self) -> Mapping[str, Item]:
        return self._items

    @property
    def boms(self) -> Mapping[str, Bom]:
        return self._boms

    def item(self, code: str, *, path: Sequence[str] = ()) -> Item:
        """The item `code`, or `UnknownItemError` naming it and the BOM path that asked for it."""
        try:
            return self._items[code]
        except KeyError:
            raise UnknownItemError(code, path=path) from None

    def bom(self, code: str) -> Bom | None:
        """The BOM of `code`, or None for a purchased item."""
        bom = self._boms.get(code)
        return bom if bom is not None and bom.lines else None

    def with_items(self, *items: Item) -> BomCatalogue:
        """A new catalogue where `items` replace (or add to) the items of the same code."""
        merged = dict(self._items) | {item.code: item for item in items}
        return BomCatalogue(merged.values(), self._boms.values(), require_phantom_boms=self._require_phantom_boms)

    def with_boms(self, *boms: Bom) -> BomCatalogue:
        """A new catalogue where `boms` replace (or add to) the BOMs of the same parent."""
        merged = dict(self._boms) | {bom.parent: bom for bom in boms}
        return BomCatalogue(self._items.values(), merged.values(), require_phantom_boms=self._require_phantom_boms)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BomCatalogue):
            return NotImplemented
        return dict(self._items) == dict(other._items) and dict(self._boms) == dict(other._boms)

    def __hash__(self) -> int:
        return hash((tuple(self._items.items()), tuple(self._boms.items())))

    def __repr__(self) -> str:
        return f"BomCatalogue({len(self._items)} items, {len(self._boms)} BOMs)"

    # -- validation -------------------------------------------------------------------------------------------

    def _validate(self) -> None:
        for parent in self._boms:
            self.item(parent, path=(parent,))
        for item in self._items.values():
            if self._require_phantom_boms and item.phantom and self.bom(item.code) is None:
                raise MissingBomError(item.code, phantom=True)
        used = {line.component for bom in self._boms.values() for line in bom.lines}
        # walk from the top items first so that an error shows the path a planner would follow
        starts = [p for p in self._boms if p not in used] + [p for p in self._boms if p in used]
        done: set[str] = set()
        for start in starts:
            self._walk(start, (start,), done)

    def _walk(self, parent: str, path: tuple[str, ...], done: set[str]) -> None:
        if parent in done:
            return
        bom = self.bom(parent)
        for line in bom.lines if bom else ():
            line_path = path + (line.component,)
            if line.component in path:
                raise CyclicBomError(path[path.index(line.component):] + (line.component,))
            component = self.item(line.component, path=line_path)
            if line.quantity_per <= 0:
                raise NonPositiveQuantityError(
                    component.code, line.quantity_per, path=line_path, what="quantity per"
                )
            if line.scrap_factor < 0:
                raise NegativeScrapFactorError(component.code, line.scrap_factor, path=line_path)
            self._walk(component.code, line_path, done)
        done.add(parent)


def path_from_top(parents_of: Mapping[str, Sequence[str]], item: str) -> tuple[str, ...]:
    """The BOM path from a top-level item (one no BOM uses) down to `item`, following the first parent that uses
    it at each level: what a planner reads to find a line (`FG > PH > SPRING`, not `PH > SPRING`)."""
    path = [item]
    while True:
        parent = next((p for p in parents_of.get(path[0], ()) if p not in path), None)
        if parent is None:
            return tuple(path)
        path.insert(0, parent)


def parents_by_component(lines: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """`{component: [parents using it, in the order written]}` from (parent, component) pairs."""
    parents: dict[str, list[str]] = {}
    for parent, component in lines:
        if parent not in parents.setdefault(component, []):
            parents[component].append(parent)
    return parents
