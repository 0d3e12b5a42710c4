"""What a flush does when a component lacks stock: the negative-stock policy, global with per-item overrides.

- `reject`: the flush fails with `InsufficientComponentStockError` (item, needed, available); nothing posts.
- `allow`: the flush posts; what stock cannot cover goes onto the item's `NEGATIVE` lot at the location (see
  `ledger.py`) and the flush yields a `NegativeStockAlert` the caller turns into an event. The next receipt of
  the item settles the negative lot.
- `park`: the flush is returned whole as parked, for the caller to queue; `reprocess_parked` says which parked
  flushes can post once receipts have come in, in arrival order.

A flush posts in full or not at all. When several components are short, the strictest of their policies decides
for the whole flush: reject before park before allow.

A brand owner's consigned stock is never posted negative: a shortage of owner stock (`Shortage.owner`) parks the
flush, or rejects it where the item's policy is `reject`, whatever the policy says about the manufacturer's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from backflush_manufacturer.domain.errors import UnknownNegativeStockPolicyError, format_path
from backflush_manufacturer.domain.explosion import BomPath
from backflush_manufacturer.domain.units import Unit


class NegativeStockPolicy(StrEnum):
    """What a flush does when stock does not cover a component."""

    REJECT = "reject"
    ALLOW = "allow"
    PARK = "park"

    @classmethod
    def parse(cls, value: object, *, item: str = "*") -> NegativeStockPolicy:
        if isinstance(value, NegativeStockPolicy):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        raise UnknownNegativeStockPolicyError(value, item=item)

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self]


_STRICTNESS = {NegativeStockPolicy.ALLOW: 0, NegativeStockPolicy.PARK: 1, NegativeStockPolicy.REJECT: 2}


@dataclass(frozen=True, slots=True)
class StockPolicies:
    """The global negative-stock policy and the items that override it."""

    default: NegativeStockPolicy = NegativeStockPolicy.PARK
    overrides: Mapping[str, NegativeStockPolicy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "default", NegativeStockPolicy.parse(self.default))
        overrides = {item: NegativeStockPolicy.parse(p, item=item) for item, p in dict(self.overrides).items()}
        object.__setattr__(self, "overrides", MappingProxyType(overrides))

    def for_item(self, item: str) -> NegativeStockPolicy:
        return self.overrides.get(item, self.default)

    def for_shortage(self, shortage: Shortage) -> NegativeStockPolicy:
        """The item's policy; for owner stock, never `allow` (an owner's lots are never posted negative)."""
        policy = self.for_item(shortage.item)
        if shortage.owner is not None and policy is NegativeStockPolicy.ALLOW:
            return NegativeStockPolicy.PARK
        return policy

    def deciding(self, shortages: Iterable[Shortage]) -> NegativeStockPolicy | None:
        """The policy that decides a flush with these shortages: the strictest of theirs; None when none is short."""
        policies = [self.for_shortage(shortage) for shortage in shortages]
        return max(policies, key=lambda p: p.strictness) if policies else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StockPolicies):
            return NotImplemented
        return self.default == other.default and dict(self.overrides) == dict(other.overrides)

    def __hash__(self) -> int:
        return hash((self.default, tuple(sorted(self.overrides.items()))))


@dataclass(frozen=True, slots=True)
class Shortage:
    """A component a flush needs more of than is available at the location."""

    item: str
    location: str
    needed: Decimal
    available: Decimal
    unit: Unit
    paths: tuple[BomPath, ...] = field(default=(), compare=False)
    #: The brand owner whose consigned stock is short; None when the manufacturer's own stock is.
    owner: str | None = None

    @property
    def shortfall(self) -> Decimal:
        return self.needed - self.available

    @property
    def path_text(self) -> str:
        return "; ".join(format_path(path) for path in self.paths) or self.item


@dataclass(frozen=True, slots=True)
class NegativeStockAlert:
    """A flush posted under `allow` took `shortfall` more than was available: the negative lot now carries it."""

    item: str
    location: str
    lot: str
    needed: Decimal
    available: Decimal
    shortfall: Decimal
    flush_id: str
    production_order: str | None
