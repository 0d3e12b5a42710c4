"""Every failure the manufacturer's domain core refuses on purpose, one type per failure a user can tell apart.

Each error carries its data as attributes (always `item` and `path`, the BOM path from the item asked for down to
the item at fault) so that a handler can turn it into an outcome event without parsing the message. The message
names the item and shows the path the way a planner reads a BOM: `CHAIR > BASE-KIT > CASTOR-50`.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from backflush_shared.errors import BackflushError


def format_path(path: Sequence[str]) -> str:
    """`("CHAIR", "BASE", "CASTOR")` -> `"CHAIR > BASE > CASTOR"`: how every message shows a BOM path."""
    return " > ".join(path)


class ManufacturerDomainError(BackflushError):
    """The root of the manufacturer's domain errors: the item at fault and the BOM path that leads to it."""

    def __init__(self, message: str, *, item: str, path: Sequence[str] = ()) -> None:
        self.item = item
        self.path: tuple[str, ...] = tuple(path) or (item,)
        super().__init__(message)

    @property
    def path_text(self) -> str:
        return format_path(self.path)


class UnknownItemError(ManufacturerDomainError):
    """An item code that the item master does not know (asked for directly, or named by a BOM line)."""

    def __init__(self, item: str, *, path: Sequence[str] = ()) -> None:
        path = tuple(path) or (item,)
        super().__init__(f"unknown item {item} (BOM path {format_path(path)})", item=item, path=path)


class UnknownUnitError(ManufacturerDomainError):
    """An item declared in a unit of measure nobody defined."""

    def __init__(self, unit: str, *, item: str, known: Sequence[str] = (), path: Sequence[str] = ()) -> None:
        self.unit = unit
        self.known = tuple(known)
        path = tuple(path) or (item,)
        super().__init__(
            f"unknown unit {unit!r} for item {item}; known units: {', '.join(self.known) or 'none'} "
            f"(BOM path {format_path(path)})",
            item=item,
            path=path,
        )


class DuplicateDefinitionError(ManufacturerDomainError):
    """The same item or the same BOM defined twice in one catalogue: which one is meant would be a guess."""

    def __init__(self, kind: str, *, item: str) -> None:
        self.kind = kind
        super().__init__(f"{kind} {item} is defined twice", item=item)


class CyclicBomError(ManufacturerDomainError):
    """A BOM that contains its own parent at some depth; exploding it would never end."""

    def __init__(self, path: Sequence[str]) -> None:
        path = tuple(path)
        super().__init__(
            f"the BOM of {path[-1]} contains itself: {format_path(path)}", item=path[-1], path=path
        )


class MissingBomError(ManufacturerDomainError):
    """An item that must be exploded (a phantom, or an item being produced) has no BOM."""

    def __init__(self, item: str, *, path: Sequence[str] = (), phantom: bool = False) -> None:
        self.phantom = phantom
        path = tuple(path) or (item,)
        what = f"phantom assembly {item} has no BOM, so nothing can be flushed in its place" if phantom else (
            f"{item} has no BOM to explode"
        )
        super().__init__(f"{what} (BOM path {format_path(path)})", item=item, path=path)


class NonPositiveQuantityError(ManufacturerDomainError):
    """A quantity (produced, received, per parent, issued) that is zero or negative where only positive makes sense."""

    def __init__(self, item: str, quantity: Decimal, *, path: Sequence[str] = (), what: str = "quantity") -> None:
        self.quantity = quantity
        self.what = what
        path = tuple(path) or (item,)
        super().__init__(
            f"{what} of {item} must be positive, got {quantity} (BOM path {format_path(path)})", item=item, path=path
        )


class NegativeScrapFactorError(ManufacturerDomainError):
    """A BOM line whose scrap factor is below zero: scrap adds to consumption, it never gives stock back."""

    def __init__(self, item: str, scrap_factor: Decimal, *, path: Sequence[str] = ()) -> None:
        self.scrap_factor = scrap_factor
        path = tuple(path) or (item,)
        super().__init__(
            f"scrap factor of {item} must be zero or more, got {scrap_factor} (BOM path {format_path(path)})",
            item=item,
            path=path,
        )


class TooManyDecimalsError(ManufacturerDomainError):
    """A quantity with more decimals than the item's unit allows (half a chair, 1.2345 kg when kg has 3)."""

    def __init__(
        self, item: str, quantity: Decimal, *, unit: str, allowed: int, path: Sequence[str] = ()
    ) -> None:
        self.quantity = quantity
        self.unit = unit
        self.allowed = allowed
        path = tuple(path) or (item,)
        super().__init__(
            f"{item} is counted in {unit} with at most {allowed} decimal(s); {quantity} has more "
            f"(BOM path {format_path(path)})",
            item=item,
            path=path,
        )


class PhantomWithStockError(ManufacturerDomainError):
    """Stock offered to (or asked of) a phantom assembly, which by definition is never stocked."""

    def __init__(self, item: str, quantity: Decimal, *, path: Sequence[str] = ()) -> None:
        self.quantity = quantity
        path = tuple(path) or (item,)
        super().__init__(
            f"{item} is a phantom assembly and is never stocked; refusing a stock movement of {quantity} "
            f"(BOM path {format_path(path)})",
            item=item,
            path=path,
        )


class PhantomProductionOrderError(ManufacturerDomainError):
    """A production order for a phantom assembly: a phantom is built only inside its parent, never on its own."""

    def __init__(self, item: str) -> None:
        super().__init__(
            f"{item} is a phantom assembly: it is built only inside its parent and never stocked, so it cannot "
            f"be produced on its own order",
            item=item,
        )


class CompletionNotReversibleError(ManufacturerDomainError):
    """A completion whose finished lot is no longer whole where it was received (allocated, consumed or gone)."""

    def __init__(self, item: str, lot: str, why: str) -> None:
        self.lot = lot
        self.why = why
        super().__init__(f"the completion of lot {lot} of {item} cannot be reversed: {why}", item=item)


class ReservedLotError(ManufacturerDomainError):
    """A receipt into the lot name the ledger keeps for negative balances."""

    def __init__(self, item: str, lot: str) -> None:
        self.lot = lot
        super().__init__(f"lot {lot!r} of {item} is reserved for negative balances and cannot receive stock", item=item)


class LotOwnerMismatchError(ManufacturerDomainError):
    """A receipt into an existing lot that belongs to someone else: a brand owner's consigned lot received as the
    manufacturer's own, own stock consigned, or one owner's lot consigned by another. A lot has one owner."""

    def __init__(self, item: str, lot: str, *, owner: str | None, received_for: str | None) -> None:
        self.lot = lot
        self.owner = owner
        self.received_for = received_for
        super().__init__(
            f"lot {lot!r} of {item} belongs to {_whose(owner)} and cannot receive stock for {_whose(received_for)}; "
            "use another lot name", item=item)


def _whose(owner: str | None) -> str:
    return f"brand owner {owner}" if owner is not None else "the manufacturer"


class UnknownFlushPointError(ManufacturerDomainError):
    """A BOM line whose flush point is none of pre, post, manual."""

    def __init__(self, value: object, *, item: str, path: Sequence[str] = ()) -> None:
        self.value = value
        path = tuple(path) or (item,)
        super().__init__(
            f"unknown flush point {value!r} for {item}; expected pre, post or manual (BOM path {format_path(path)})",
            item=item,
            path=path,
        )


class UnknownNegativeStockPolicyError(ManufacturerDomainError):
    """A negative-stock policy that is none of reject, allow, park."""

    def __init__(self, value: object, *, item: str) -> None:
        self.value = value
        super().__init__(
            f"unknown negative-stock policy {value!r} for {item}; expected reject, allow or park", item=item
        )


class UnknownInspectionRuleError(ManufacturerDomainError):
    """An inspection plan whose rule is neither pass nor fail."""

    def __init__(self, value: object, *, item: str) -> None:
        self.value = value
        super().__init__(f"unknown inspection rule {value!r} for {item}; expected pass or fail", item=item)


class InsufficientStockError(ManufacturerDomainError):
    """Less stock available than a movement needs (the root of the stock shortages)."""

    def __init__(
        self,
        item: str,
        *,
        needed: Decimal,
        available: Decimal,
        location: str,
        path: Sequence[str] = (),
        production_order: str | None = None,
        message: str | None = None,
    ) -> None:
        self.needed = needed
        self.available = available
        self.location = location
        self.production_order = production_order
        path = tuple(path) or (item,)
        order = f" for production order {production_order}" if production_order else ""
        super().__init__(
            message
            or (
                f"not enough {item} at {location}{order}: needed {needed}, available {available} "
                f"(BOM path {format_path(path)})"
            ),
            item=item,
            path=path,
        )


class InsufficientComponentStockError(InsufficientStockError):
    """A flush refused under the `reject` policy: a component lacks stock. Nothing was posted.

    `item`, `needed`, `available` name the first short component whose policy is `reject`; `shortages` lists
    every short component of the flush.
    """

    def __init__(
        self,
        item: str,
        *,
        needed: Decimal,
        available: Decimal,
        location: str,
        path: Sequence[str] = (),
        production_order: str | None = None,
        shortages: Sequence[object] = (),
    ) -> None:
        self.shortages = tuple(shortages)
        super().__init__(
            item, needed=needed, available=available, location=location, path=path, production_order=production_order
        )
