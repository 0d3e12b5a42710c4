"""BOM explosion: what producing a quantity of an item consumes, per component and flush point.

Consumption of a BOM line is `produced quantity x quantity per x (1 + scrap factor)`, multiplied down through
every level. The rules a user must be able to predict:

- **Rounding happens once, at the end.** Quantities stay exact Decimals through every phantom level; the exact
  contributions of a component are added up per (component, flush point), and only that sum is rounded, once,
  to the component's unit (whole units up, decimal units half-up; see `units.py`). Rounding never compounds:
  a phantom's quantity is never rounded, not even when the phantom is counted in pieces.
- **A phantom's children keep their own flush points.** The phantom is never stocked, so its components are
  flushed in its place, each at the flush point written on its own BOM line; the flush point written on the
  phantom's line in the parent BOM is ignored.
- **A stocked subassembly is consumed as itself**: it is a component like any other and is not exploded.
- **Partial completions never drift.** Each partial flush is the rounded requirement for the cumulative
  completed quantity minus the rounded requirement for what was completed before (`flush_requirements`), so
  completions of 40, 35 and 25 flush exactly what one completion of 100 flushes.

Requirements come back sorted by flush point (pre, post, manual) and then by item code, whatever the order of
the BOM lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from backflush_manufacturer.domain.bom import BomCatalogue, FlushPoint
from backflush_manufacturer.domain.errors import MissingBomError, NonPositiveQuantityError, TooManyDecimalsError
from backflush_manufacturer.domain.units import EXACT_PRECISION, Unit, as_decimal, require_quantity

BomPath = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Requirement:
    """How much of one component a production quantity consumes at one flush point.

    `paths` (not part of equality) are the BOM paths that lead to this component, for messages and traceability.
    `location` is where the component is taken from (its supply location; None: the flush request's location).
    """

    item: str
    quantity: Decimal
    unit: Unit
    flush: FlushPoint
    paths: tuple[BomPath, ...] = field(default=(), compare=False)
    location: str | None = field(default=None, compare=False)

    def as_json(self) -> dict[str, str]:
        """`{"item", "quantity", "unit", "flush"}`, the quantity as a decimal string at the unit's precision."""
        return {
            "item": self.item,
            "quantity": self.unit.format(self.quantity),
            "unit": self.unit.code,
            "flush": self.flush.value,
        }


def explode(catalogue: BomCatalogue, item: str, quantity: Decimal) -> list[Requirement]:
    """What producing `quantity` of `item` consumes, per (component, flush point), rounded once per line.

    `item` must have a BOM; `quantity` must be positive and fit the item's unit.
    """
    return _rounded(_exact(catalogue, item, quantity))


def flush_requirements(
    catalogue: BomCatalogue,
    item: str,
    flush: FlushPoint,
    quantity: Decimal,
    completed_before: Decimal = Decimal(0),
) -> list[Requirement]:
    """What one flush of `quantity` at `flush` consumes, given that `completed_before` was flushed already.

    The rounded requirement for the cumulative quantity minus the rounded requirement for `completed_before`:
    partial flushes add up to exactly what one flush of the total would consume. Components whose rounded
    cumulative requirement did not move are left out.
    """
    flush = FlushPoint.parse(flush, item=item)
    top = catalogue.item(item)
    quantity = require_quantity(item, top.unit, quantity)
    before = as_decimal(completed_before, what="completed before")
    if before < 0:
        raise NonPositiveQuantityError(item, before, what="quantity completed before")
    if not top.unit.allows(before):
        raise TooManyDecimalsError(item, before, unit=top.unit.code, allowed=top.unit.decimals)
    after = _by_key(explode(catalogue, item, before + quantity))
    already = _by_key(explode(catalogue, item, before)) if before > 0 else {}
    deltas = []
    for key, requirement in after.items():
        if requirement.flush is not flush:
            continue
        previous = already.get(key)
        delta = requirement.quantity - (previous.quantity if previous else 0)
        if delta:
            deltas.append(
                Requirement(requirement.item, delta, requirement.unit, requirement.flush, requirement.paths,
                            requirement.location)
            )
    return deltas


def requirements_as_json(requirements: Iterable[Requirement]) -> list[dict[str, str]]:
    """The requirements as the command line prints them: `[{"item", "quantity", "unit", "flush"}, ...]`."""
    return [requirement.as_json() for requirement in requirements]


# -- internals ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Exact:
    quantity: Decimal
    unit: Unit
    paths: list[BomPath]
    location: str | None = None


def _exact(catalogue: BomCatalogue, item: str, quantity: Decimal) -> dict[tuple[str, FlushPoint], _Exact]:
    top = catalogue.item(item)
    quantity = require_quantity(item, top.unit, quantity)
    if catalogue.bom(item) is None:
        raise MissingBomError(item, phantom=top.phantom)
    found: dict[tuple[str, FlushPoint], _Exact] = {}
    with localcontext(prec=EXACT_PRECISION):  # exact through every level: only the unit rounds, once
        _walk(catalogue, item, quantity, (item,), found)
    return found


def _walk(
    catalogue: BomCatalogue,
    parent: str,
    quantity: Decimal,
    path: BomPath,
    found: dict[tuple[str, FlushPoint], _Exact],
) -> None:
    bom = catalogue.bom(parent)
    for line in bom.lines if bom else ():
        component = catalogue.item(line.component, path=path + (line.component,))
        need = quantity * line.factor
        line_path = path + (component.code,)
        if component.phantom:
            if catalogue.bom(component.code) is None:
                raise MissingBomError(component.code, path=line_path, phantom=True)
            # flushed in the phantom's place, each child at its own flush point; the phantom's line flush is ignored
            _walk(catalogue, component.code, need, line_path, found)
            continue
        key = (component.code, line.flush)
        if key in found:
            found[key].quantity += need
            found[key].paths.append(line_path)
        else:
            found[key] = _Exact(need, component.unit, [line_path], component.supply_location)


def _rounded(found: dict[tuple[str, FlushPoint], _Exact]) -> list[Requirement]:
    requirements = [
        Requirement(code, exact.unit.round_requirement(exact.quantity), exact.unit, flush, tuple(exact.paths),
                    exact.location)
        for (code, flush), exact in found.items()
    ]
    return sorted(requirements, key=lambda r: (r.flush.rank, r.item))


def _by_key(requirements: Sequence[Requirement]) -> dict[tuple[str, FlushPoint], Requirement]:
    return {(r.item, r.flush): r for r in requirements}
