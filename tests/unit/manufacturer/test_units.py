"""Units of measure: whole pieces round up, decimal units round half-up, floats never get in."""

from decimal import Decimal as D

import pytest

from backflush_manufacturer.domain import KG, PCS, NonPositiveQuantityError, TooManyDecimalsError, Unit
from backflush_manufacturer.domain.units import decimals_of, require_quantity


def test_whole_units_round_up_because_half_a_castor_cannot_be_consumed():
    assert PCS.round_requirement(D("525.3")) == D(526)
    assert PCS.round_requirement(D("525.0001")) == D(526)
    assert PCS.round_requirement(D("526.000")) == D(526)


def test_decimal_units_round_half_up_at_their_precision():
    assert KG.round_requirement(D("1.6835")) == D("1.684")
    assert KG.round_requirement(D("1.68349")) == D("1.683")
    assert KG.round_requirement(D("68.7225")) == D("68.723")


def test_a_quantity_is_formatted_at_its_units_precision():
    assert PCS.format(D("526")) == "526"
    assert KG.format(D("93.5")) == "93.500"
    assert KG.format(D("0.168")) == "0.168"


def test_trailing_zeros_are_not_decimals():
    assert decimals_of(D("2.500")) == 1
    assert decimals_of(D("100")) == 0
    assert decimals_of(D("1E+2")) == 0


def test_a_float_quantity_is_refused():
    with pytest.raises(TypeError, match="Decimal"):
        require_quantity("FOAM", KG, 1.25)


def test_a_quantity_with_more_decimals_than_its_unit_is_refused_naming_item_and_path():
    with pytest.raises(TooManyDecimalsError) as caught:
        require_quantity("FOAM", KG, D("1.2345"), path=("SEAT", "FOAM"))
    assert caught.value.item == "FOAM"
    assert caught.value.allowed == 3
    assert "FOAM" in str(caught.value) and "SEAT > FOAM" in str(caught.value)


def test_a_zero_quantity_is_refused_naming_the_item():
    with pytest.raises(NonPositiveQuantityError, match="CHAIR"):
        require_quantity("CHAIR", PCS, D(0))


def test_a_unit_has_between_zero_and_twelve_decimals():
    assert Unit("g", 1).step == D("0.1")
    with pytest.raises(ValueError):
        Unit("g", -1)
