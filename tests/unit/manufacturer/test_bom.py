"""A BOM catalogue is validated whole: every bad BOM is refused with the BOM path that leads to the fault."""

from decimal import Decimal as D

import pytest

from backflush_manufacturer.domain import (
    KG,
    PCS,
    Bom,
    BomCatalogue,
    BomLine,
    CyclicBomError,
    DuplicateDefinitionError,
    FlushPoint,
    Item,
    MissingBomError,
    NegativeScrapFactorError,
    NonPositiveQuantityError,
    UnknownFlushPointError,
    UnknownItemError,
)

ITEMS = [Item("CHAIR", PCS), Item("SEAT", PCS), Item("CUSHION", PCS), Item("FOAM", KG), Item("LEG", PCS)]


def test_a_bom_that_contains_itself_is_refused_showing_the_cycle():
    boms = [Bom("CHAIR", (BomLine("SEAT", D(1)),)), Bom("SEAT", (BomLine("CHAIR", D(1)),))]
    with pytest.raises(CyclicBomError) as caught:
        BomCatalogue(ITEMS, boms)
    assert caught.value.path == ("CHAIR", "SEAT", "CHAIR")
    assert "CHAIR > SEAT > CHAIR" in str(caught.value)
    assert caught.value.item == "CHAIR"


def test_a_cycle_deep_below_the_top_item_is_shown_from_where_it_starts():
    boms = [
        Bom("CHAIR", (BomLine("SEAT", D(1)),)),
        Bom("SEAT", (BomLine("CUSHION", D(1)),)),
        Bom("CUSHION", (BomLine("SEAT", D(1)),)),
    ]
    with pytest.raises(CyclicBomError, match="SEAT > CUSHION > SEAT"):
        BomCatalogue(ITEMS, boms)


def test_an_item_that_is_its_own_component_is_a_cycle():
    with pytest.raises(CyclicBomError, match="LEG > LEG"):
        BomCatalogue(ITEMS, [Bom("LEG", (BomLine("LEG", D(1)),))])


def test_a_bom_line_naming_an_unknown_item_is_refused_with_its_path():
    boms = [Bom("CHAIR", (BomLine("SEAT", D(1)),)), Bom("SEAT", (BomLine("BOLT", D(4)),))]
    with pytest.raises(UnknownItemError) as caught:
        BomCatalogue(ITEMS, boms)
    assert caught.value.item == "BOLT"
    assert "BOLT" in str(caught.value) and "CHAIR > SEAT > BOLT" in str(caught.value)


def test_a_bom_for_an_unknown_parent_is_refused():
    with pytest.raises(UnknownItemError, match="STOOL"):
        BomCatalogue(ITEMS, [Bom("STOOL", (BomLine("LEG", D(3)),))])


def test_a_zero_quantity_per_is_refused_with_its_path():
    boms = [Bom("CHAIR", (BomLine("SEAT", D(1)),)), Bom("SEAT", (BomLine("FOAM", D(0)),))]
    with pytest.raises(NonPositiveQuantityError) as caught:
        BomCatalogue(ITEMS, boms)
    assert caught.value.item == "FOAM"
    assert "quantity per of FOAM" in str(caught.value) and "CHAIR > SEAT > FOAM" in str(caught.value)


def test_a_negative_scrap_factor_is_refused_with_its_path():
    with pytest.raises(NegativeScrapFactorError, match="CHAIR > LEG") as caught:
        BomCatalogue(ITEMS, [Bom("CHAIR", (BomLine("LEG", D(4), D("-0.01")),))])
    assert caught.value.item == "LEG"


def test_an_unknown_flush_point_is_refused_with_its_path():
    with pytest.raises(UnknownFlushPointError) as caught:
        FlushPoint.parse("during", item="LEG", path=("CHAIR", "LEG"))
    assert caught.value.value == "during"
    assert "LEG" in str(caught.value) and "CHAIR > LEG" in str(caught.value)


def test_a_bom_line_accepts_flush_points_by_name_and_refuses_others():
    assert BomLine("LEG", D(4), flush="PRE").flush is FlushPoint.PRE
    with pytest.raises(UnknownFlushPointError, match="LEG"):
        BomLine("LEG", D(4), flush="sometimes")


def test_a_phantom_without_a_bom_is_refused():
    with pytest.raises(MissingBomError, match="phantom assembly KIT") as caught:
        BomCatalogue([*ITEMS, Item("KIT", PCS, phantom=True)], [])
    assert caught.value.phantom


def test_an_item_defined_twice_is_refused():
    with pytest.raises(DuplicateDefinitionError, match="LEG"):
        BomCatalogue([*ITEMS, Item("LEG", KG)])


def test_a_float_quantity_per_is_refused():
    with pytest.raises(TypeError):
        BomLine("LEG", 0.5)  # type: ignore[arg-type]


def test_updating_a_catalogue_returns_a_new_validated_one(catalogue):
    updated = catalogue.with_boms(Bom("SEAT", (BomLine("FOAM", D("1.5")),)))
    assert updated.bom("SEAT").lines[0].quantity_per == D("1.5")
    assert catalogue.bom("SEAT").lines[0].quantity_per == D("1.25")
    with pytest.raises(CyclicBomError, match="CHAIR > SEAT > CHAIR"):
        catalogue.with_boms(Bom("SEAT", (BomLine("CHAIR", D(1)),)))
