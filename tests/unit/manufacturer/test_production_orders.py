"""What a production order must name before anything of it is stored (issue 15, defect 3)."""

from decimal import Decimal as D

import pytest

from backflush_manufacturer.domain.errors import (
    MissingBomError,
    PhantomProductionOrderError,
    TooManyDecimalsError,
    UnknownItemError,
)
from backflush_manufacturer.domain.orders import producible


def test_an_order_for_a_stocked_item_with_a_bom_is_producible(catalogue):
    assert producible(catalogue, "CHAIR", D(3)).code == "CHAIR"


def test_an_order_for_a_phantom_is_refused_as_a_phantom_although_it_has_a_bom(catalogue):
    with pytest.raises(PhantomProductionOrderError, match="BASE is a phantom assembly"):
        producible(catalogue, "BASE", D(3))


@pytest.mark.parametrize(("item", "quantity", "error"), [
    ("NO-SUCH", D(1), UnknownItemError), ("CASTOR", D(1), MissingBomError), ("CHAIR", D("1.5"), TooManyDecimalsError),
])
def test_an_order_that_cannot_be_produced_names_why(catalogue, item, quantity, error):
    with pytest.raises(error):
        producible(catalogue, item, quantity)
