"""What a production order must be before anything of it is stored: an item that can be produced on its own."""

from __future__ import annotations

from decimal import Decimal

from backflush_manufacturer.domain.bom import BomCatalogue
from backflush_manufacturer.domain.errors import MissingBomError, PhantomProductionOrderError
from backflush_manufacturer.domain.items import Item
from backflush_manufacturer.domain.units import require_quantity


def producible(catalogue: BomCatalogue, item: str, quantity: Decimal) -> Item:
    """The item of a production order, or the refusal: unknown item, a phantom, no BOM, too many decimals."""
    found = catalogue.item(item)
    if found.phantom:
        raise PhantomProductionOrderError(found.code)
    if catalogue.bom(found.code) is None:
        raise MissingBomError(found.code)
    require_quantity(found.code, found.unit, quantity)
    return found
