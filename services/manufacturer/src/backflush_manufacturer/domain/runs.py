"""Repetitive production: what one run report flushes, and variance per line and period (pure).

A run has no production order behind it: the line reports a quantity produced, and every automatic line of the
item's BOM (pre and post alike) is flushed for that quantity in one flush, which posts or parks whole. Manual
lines are never flushed here: the shop floor issues them by hand, charged to the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from backflush_manufacturer.domain.bom import BomCatalogue, FlushPoint
from backflush_manufacturer.domain.explosion import Requirement, flush_requirements
from backflush_manufacturer.domain.units import Unit
from backflush_manufacturer.domain.variance import ComponentVariance, standard_consumption

ZERO = Decimal(0)

#: The flush points a run report flushes at once.
RUN_FLUSH_POINTS = (FlushPoint.PRE, FlushPoint.POST)


def run_requirements(catalogue: BomCatalogue, item: str, quantity: Decimal) -> tuple[Requirement, ...]:
    """Every pre and post line of `item`'s BOM for `quantity` (manual lines left out): one flush for the run."""
    return tuple(requirement for point in RUN_FLUSH_POINTS
                 for requirement in flush_requirements(catalogue, item, point, quantity))


@dataclass(frozen=True, slots=True)
class RunFigures:
    """One run, for variance: its item, the quantity produced, and what the ledger charged to it per component."""

    run_id: str
    item: str
    quantity: Decimal
    consumed: Mapping[str, Decimal]


def line_variance(catalogue: BomCatalogue, runs: Iterable[RunFigures],
                  units: Mapping[str, Unit]) -> tuple[ComponentVariance, ...]:
    """Standard (each run's BOM for its quantity) against actual (what was charged to the runs), summed over the
    runs of a line and period, per component, sorted by component."""
    standard: dict[str, Decimal] = {}
    actual: dict[str, Decimal] = {}
    for run in runs:
        for component, quantity in standard_consumption(catalogue, run.item, run.quantity).items():
            standard[component] = standard.get(component, ZERO) + quantity
        for component, quantity in run.consumed.items():
            actual[component] = actual.get(component, ZERO) + quantity
    return tuple(
        ComponentVariance(component, units.get(component, Unit("?", 12)), standard.get(component, ZERO),
                          actual.get(component, ZERO))
        for component in sorted(standard.keys() | actual.keys())
    )
