"""Units of measure, and the one rounding rule each unit follows.

A unit has a fixed number of decimals: `pcs` has none (whole pieces), `kg`, `m` and `l` have three. Quantities are
`Decimal`, never `float`: a float is refused with `TypeError` wherever a quantity enters the domain.

Rounding a requirement to its unit (see `Unit.round_requirement`):

- whole units (0 decimals) round UP (ceiling): half a bracket cannot be consumed, so 525.3 castors take 526;
- decimal units round HALF-UP at their precision: 1.6835 kg -> 1.684 kg, 1.6834 kg -> 1.683 kg.

Where this rounding happens in a multi-level explosion is the explosion's business (see `explosion.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, localcontext

from backflush_manufacturer.domain.errors import NonPositiveQuantityError, TooManyDecimalsError

# Wide enough that no product of BOM factors is ever rounded by the arithmetic itself; only the unit rounds.
EXACT_PRECISION = 100


def as_decimal(value: object, *, what: str = "quantity") -> Decimal:
    """`value` as a finite Decimal; ints are accepted, floats are refused (they cannot hold 0.1 exactly)."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"{what} must be a Decimal (or an int), not {type(value).__name__}: {value!r}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return result


def decimals_of(quantity: Decimal) -> int:
    """How many decimals `quantity` really has: `Decimal("2.500")` has 1, `Decimal("100")` has 0."""
    exponent = quantity.normalize().as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"{quantity} is not a finite quantity")
    return max(0, -exponent)


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit of measure: its code (`pcs`, `kg`) and how many decimals a quantity in it may carry."""

    code: str
    decimals: int

    def __post_init__(self) -> None:
        if not self.code or not isinstance(self.code, str):
            raise ValueError("a unit needs a code")
        if isinstance(self.decimals, bool) or not isinstance(self.decimals, int) or not 0 <= self.decimals <= 12:
            raise ValueError(f"unit {self.code}: decimals must be an int from 0 to 12, got {self.decimals!r}")

    @property
    def whole(self) -> bool:
        """Counted in whole units (pieces)."""
        return self.decimals == 0

    @property
    def step(self) -> Decimal:
        """The smallest quantity the unit can express: 1 for pcs, 0.001 for kg."""
        return Decimal(1).scaleb(-self.decimals)

    def round_requirement(self, quantity: Decimal) -> Decimal:
        """Round a computed requirement to this unit: whole units up (ceiling), decimal units half-up."""
        # whole units round up: half a bracket cannot be consumed; decimal units to the nearest step, half up
        rounding = ROUND_CEILING if self.whole else ROUND_HALF_UP
        with localcontext(prec=EXACT_PRECISION):
            return quantity.quantize(self.step, rounding=rounding)

    def allows(self, quantity: Decimal) -> bool:
        """True when `quantity` has no more decimals than this unit carries."""
        return decimals_of(quantity) <= self.decimals

    def format(self, quantity: Decimal) -> str:
        """The quantity as a plain decimal string at this unit's precision: `"526"`, `"1.683"`, `"93.500"`."""
        with localcontext(prec=EXACT_PRECISION):
            shown = quantity.quantize(self.step) if self.allows(quantity) else quantity
        return f"{shown:f}"

    def __str__(self) -> str:
        return self.code


PCS = Unit("pcs", 0)
KG = Unit("kg", 3)
M = Unit("m", 3)
L = Unit("l", 3)

STANDARD_UNITS: dict[str, Unit] = {unit.code: unit for unit in (PCS, KG, M, L)}


def require_quantity(
    item: str, unit: Unit, quantity: object, *, path: Sequence[str] = (), what: str = "quantity"
) -> Decimal:
    """`quantity` checked for `item`: a positive Decimal with no more decimals than `unit` allows."""
    value = as_decimal(quantity, what=what)
    if value <= 0:
        raise NonPositiveQuantityError(item, value, path=path, what=what)
    if not unit.allows(value):
        raise TooManyDecimalsError(item, value, unit=unit.code, allowed=unit.decimals, path=path)
    return value
