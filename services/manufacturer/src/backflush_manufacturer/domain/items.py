"""Items: what the manufacturer buys, makes or assembles on the line, each counted in one unit."""

from __future__ import annotations

from dataclasses import dataclass

from backflush_manufacturer.domain.units import Unit


@dataclass(frozen=True, slots=True)
class Item:
    """An item of the item master.

    `phantom` marks an assembly that is never stocked: it is built on the line and its components are flushed in
    its place. An item with a BOM that is not a phantom is a stocked (sub)assembly: it has production of its own,
    so a parent consumes it as itself.

    `supply_location` is where flushes take the item from, and where a subassembly made here is received; None
    means the flush request's location (`MAIN`, where receipts land unless they name another).
    """

    code: str
    unit: Unit
    phantom: bool = False
    description: str = ""
    supply_location: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code.strip() or self.code != self.code.strip():
            raise ValueError(f"an item code must be a non-empty string without surrounding spaces: {self.code!r}")
        if not isinstance(self.unit, Unit):
            raise TypeError(f"item {self.code}: unit must be a Unit, not {type(self.unit).__name__}")
