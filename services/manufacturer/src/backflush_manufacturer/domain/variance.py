"""Variance: standard (what the BOM says the completed quantity should consume) against actual consumption.

Standard is the explosion of the completed quantity at every flush point, rounded exactly as the flushes round
it, summed per component. Actual is either reported (a mapping of component to quantity) or read from the ledger
for a production order: its flushes, manual issues and extra scrap, net of reversals. A positive variance means
more was consumed than standard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from backflush_manufacturer.domain.bom import BomCatalogue
from backflush_manufacturer.domain.explosion import explode
from backflush_manufacturer.domain.ledger import StockLedger
from backflush_manufacturer.domain.units import Unit, as_decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ComponentVariance:
    """Standard against actual consumption of one component."""

    item: str
    unit: Unit
    standard: Decimal
    actual: Decimal

    @property
    def variance(self) -> Decimal:
        """Actual minus standard: positive is over-consumption."""
        return self.actual - self.standard

    @property
    def percent(self) -> Decimal | None:
        """Variance as a percentage of standard, two decimals half-up; None when there is no standard."""
        if not self.standard:
            return None
        return (self.variance * 100 / self.standard).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def standard_consumption(catalogue: BomCatalogue, item: str, completed_quantity: Decimal) -> dict[str, Decimal]:
    """What the BOM says `completed_quantity` of `item` consumes per component, all flush points together."""
    standard: dict[str, Decimal] = {}
    for requirement in explode(catalogue, item, completed_quantity):
        standard[requirement.item] = standard.get(requirement.item, ZERO) + requirement.quantity
    return standard


def variance(
    catalogue: BomCatalogue, item: str, completed_quantity: Decimal, actual: Mapping[str, Decimal]
) -> tuple[ComponentVariance, ...]:
    """Standard against the reported `actual` per component, sorted by component; a missing side counts as zero."""
    standard = standard_consumption(catalogue, item, completed_quantity)
    actual = {component: as_decimal(quantity) for component, quantity in actual.items()}
    return tuple(
        ComponentVariance(
            component,
            catalogue.item(component, path=(item, component)).unit,
            standard.get(component, ZERO),
            actual.get(component, ZERO),
        )
        for component in sorted(standard.keys() | actual.keys())
    )


def order_variance(
    catalogue: BomCatalogue,
    ledger: StockLedger,
    production_order: str,
    item: str,
    completed_quantity: Decimal,
) -> tuple[ComponentVariance, ...]:
    """Standard for the completed quantity against what the ledger charged to the production order."""
    return variance(catalogue, item, completed_quantity, ledger.consumed_by_order(production_order))
