"""Master data files: the sample chair loads from YAML and from CSV into the same domain values."""

from decimal import Decimal as D
from pathlib import Path

import pytest

from backflush_manufacturer.domain import (
    CyclicBomError,
    FlushPoint,
    InspectionRule,
    NegativeStockPolicy,
    PhantomWithStockError,
    UnknownFlushPointError,
    UnknownUnitError,
    explode,
    inspect,
)
from backflush_manufacturer.master_data_files import MasterDataFileError, load_master_data

SAMPLE = Path(__file__).resolve().parents[3] / "services" / "manufacturer" / "sample_data"


@pytest.fixture(scope="module")
def sample():
    return load_master_data(SAMPLE)


def test_the_sample_chair_has_a_three_level_bom_with_a_phantom_and_a_stocked_subassembly(sample):
    catalogue = sample.catalogue
    assert catalogue.item("BASE-KIT").phantom
    assert not catalogue.item("SEAT-ASSY").phantom and catalogue.bom("SEAT-ASSY") is not None
    assert {line.component for line in catalogue.bom("BASE-KIT").lines} >= {"CASTOR-50", "GREASE-LI"}
    assert {line.flush for line in catalogue.bom("CHAIR-ERGO").lines} == set(FlushPoint)


def test_numbers_are_read_as_exact_decimals_never_floats(sample):
    grease = next(line for line in sample.catalogue.bom("BASE-KIT").lines if line.component == "GREASE-LI")
    assert grease.quantity_per == D("0.015") and isinstance(grease.quantity_per, D)
    assert grease.scrap_factor == D("0.10")


def test_the_csv_files_describe_the_same_master_data_as_the_yaml_files(sample):
    from_csv = load_master_data(SAMPLE / "csv")
    assert from_csv.catalogue == sample.catalogue
    assert from_csv.receipts == sample.receipts
    assert from_csv.policies == sample.policies
    assert dict(from_csv.inspection_plans) == dict(sample.inspection_plans)


def test_the_initial_stock_is_received_in_file_order(sample):
    ledger = sample.ledger()
    assert [lot.lot for lot in ledger.lots("CASTOR-50")] == ["CA-0915", "CA-1012"]
    assert ledger.on_hand("FOAM-PU") == D("105.500")


def test_the_policy_is_park_with_grease_allowed_to_go_negative(sample):
    assert sample.policies.default is NegativeStockPolicy.PARK
    assert sample.policies.for_item("GREASE-LI") is NegativeStockPolicy.ALLOW
    assert sample.policies.for_item("CASTOR-50") is NegativeStockPolicy.PARK


def test_the_ergonomic_chair_passes_inspection_and_the_task_chair_is_held(sample):
    assert inspect(sample.inspection_plans, "CHAIR-ERGO").passed
    failed = inspect(sample.inspection_plans, "CHAIR-TASK")
    assert not failed.passed and "EN 1021" in failed.reason
    assert sample.inspection_plans["CHAIR-TASK"].rule is InspectionRule.FAIL


def test_ten_sample_chairs_explode_as_the_readme_shows(sample):
    assert [r.as_json() for r in explode(sample.catalogue, "CHAIR-ERGO", D(10))] == [
        {"item": "BASE-STAR-5", "quantity": "11", "unit": "pcs", "flush": "pre"},
        {"item": "GAS-LIFT-100", "quantity": "11", "unit": "pcs", "flush": "pre"},
        {"item": "ARMREST-PAIR", "quantity": "10", "unit": "pcs", "flush": "post"},
        {"item": "BACKREST-MESH", "quantity": "10", "unit": "pcs", "flush": "post"},
        {"item": "CASTOR-50", "quantity": "53", "unit": "pcs", "flush": "post"},
        {"item": "SCREW-M6", "quantity": "125", "unit": "pcs", "flush": "post"},
        {"item": "SEAT-ASSY", "quantity": "10", "unit": "pcs", "flush": "post"},
        {"item": "CARTON-CH", "quantity": "10", "unit": "pcs", "flush": "manual"},
        {"item": "GREASE-LI", "quantity": "0.168", "unit": "kg", "flush": "manual"},
    ]


# -- bad files --------------------------------------------------------------------------------------------------

ITEMS = "items:\n  - {code: CHAIR, unit: pcs}\n  - {code: SEAT, unit: pcs}\n"
CSV_ITEMS = "code,unit\nCHAIR,pcs\nSEAT,pcs\n"


def write(directory: Path, **files: str) -> Path:
    """Write `items_yaml="..."` as items.yaml, and so on."""
    for name, text in files.items():
        (directory / name.replace("_", ".")).write_text(text, encoding="utf-8")
    return directory


def test_a_cyclic_bom_in_a_file_is_refused_with_its_path_and_the_file(tmp_path):
    boms = (
        "boms:\n"
        "  - {parent: CHAIR, lines: [{component: SEAT, quantity_per: 1}]}\n"
        "  - {parent: SEAT, lines: [{component: CHAIR, quantity_per: 1}]}\n"
    )
    with pytest.raises(CyclicBomError, match="CHAIR > SEAT > CHAIR") as caught:
        load_master_data(write(tmp_path, items_yaml=ITEMS, boms_yaml=boms))
    assert caught.value.__notes__ == ["in boms.yaml"]


def test_an_unknown_flush_point_in_a_csv_row_is_refused_naming_item_path_and_line(tmp_path):
    write(tmp_path, items_csv=CSV_ITEMS, boms_csv="parent,component,quantity_per,flush\nCHAIR,SEAT,1,during\n")
    with pytest.raises(UnknownFlushPointError, match="CHAIR > SEAT") as caught:
        load_master_data(tmp_path)
    assert caught.value.item == "SEAT"
    assert caught.value.__notes__ == ["in boms.csv line 2"]


def test_an_unknown_unit_is_refused_listing_the_known_ones(tmp_path):
    write(tmp_path, items_yaml="items:\n  - {code: ROPE, unit: yard}\n", boms_yaml="boms: []\n")
    with pytest.raises(UnknownUnitError, match="'yard' for item ROPE; known units: kg, l, m, pcs"):
        load_master_data(tmp_path)


def test_extra_units_can_be_declared_next_to_the_items(tmp_path):
    items = "units:\n  - {code: g, decimals: 1}\nitems:\n  - {code: DYE, unit: g}\n"
    data = load_master_data(write(tmp_path, items_yaml=items, boms_yaml="boms: []\n"))
    assert data.catalogue.item("DYE").unit.decimals == 1


def test_initial_stock_for_a_phantom_is_refused(tmp_path):
    items = ITEMS + "  - {code: KIT, unit: pcs, phantom: true}\n"
    boms = "boms:\n  - {parent: KIT, lines: [{component: SEAT, quantity_per: 2}]}\n"
    stock = "receipts:\n  - {item: KIT, lot: K1, quantity: 5}\n"
    data = load_master_data(write(tmp_path, items_yaml=items, boms_yaml=boms, stock_yaml=stock))
    with pytest.raises(PhantomWithStockError, match="KIT"):
        data.initial_movements()


def test_a_misspelt_field_is_refused_rather_than_ignored(tmp_path):
    boms = "boms:\n  - {parent: CHAIR, lines: [{component: SEAT, quantity_per: 1, scrap: 0.05}]}\n"
    with pytest.raises(MasterDataFileError, match=r"boms.yaml: boms\[0\].lines\[0\]: unknown field\(s\) scrap"):
        load_master_data(write(tmp_path, items_yaml=ITEMS, boms_yaml=boms))


def test_a_quantity_that_is_not_a_number_is_refused_naming_file_and_line(tmp_path):
    write(tmp_path, items_csv=CSV_ITEMS, boms_csv="parent,component,quantity_per\nCHAIR,SEAT,one\n")
    with pytest.raises(MasterDataFileError, match="boms.csv line 2: field `quantity_per` must be a decimal number"):
        load_master_data(tmp_path)


def test_a_missing_bom_file_is_refused(tmp_path):
    with pytest.raises(MasterDataFileError, match="boms.yaml: file is missing"):
        load_master_data(write(tmp_path, items_yaml=ITEMS))


def test_a_directory_without_items_is_refused(tmp_path):
    with pytest.raises(MasterDataFileError, match="no items.yaml or items.csv"):
        load_master_data(tmp_path)


# -- every refusal names the BOM path from the top item (issue 15, defect 6) ----------------------------------------

THREE_LEVELS = "items:\n  - {code: FG, unit: pcs}\n  - {code: PH, unit: pcs, phantom: true}\n  - {code: SPRING, unit: %s}\n"
FG_PH_SPRING = (
    "boms:\n"
    "  - {parent: PH, lines: [{component: SPRING, quantity_per: 2, flush: %s}]}\n"
    "  - {parent: FG, lines: [{component: PH, quantity_per: 1}]}\n"
)


def test_a_bad_flush_point_names_the_path_from_the_top_item_down_to_the_line(tmp_path):
    files = write(tmp_path, items_yaml=THREE_LEVELS % "pcs", boms_yaml=FG_PH_SPRING % "during")
    with pytest.raises(UnknownFlushPointError) as caught:
        load_master_data(files)
    assert caught.value.path == ("FG", "PH", "SPRING") and "BOM path FG > PH > SPRING" in str(caught.value)


def test_a_bad_flush_point_in_csv_names_the_path_from_the_top_item_too(tmp_path):
    write(tmp_path, items_csv="code,unit,phantom\nFG,pcs,false\nPH,pcs,true\nSPRING,pcs,false\n",
          boms_csv="parent,component,quantity_per,flush\nPH,SPRING,2,during\nFG,PH,1,post\n")
    with pytest.raises(UnknownFlushPointError, match="BOM path FG > PH > SPRING"):
        load_master_data(tmp_path)


def test_an_unknown_unit_names_the_path_from_the_top_item_down_to_the_item(tmp_path):
    files = write(tmp_path, items_yaml=THREE_LEVELS % "yard", boms_yaml=FG_PH_SPRING % "post")
    with pytest.raises(UnknownUnitError) as caught:
        load_master_data(files)
    assert caught.value.path == ("FG", "PH", "SPRING") and "BOM path FG > PH > SPRING" in str(caught.value)


def test_a_stock_line_without_a_location_lands_at_the_items_supply_location(tmp_path: Path) -> None:
    """As a ComponentsReceived naming no location does (issue 15 review)."""
    for name in ("boms.yaml", "inspection.yaml", "policies.yaml"):
        (tmp_path / name).write_text((SAMPLE / name).read_text())
    items = (SAMPLE / "items.yaml").read_text().replace(
        "code: SEAT-ASSY,", "code: SEAT-ASSY, supply_location: LINE-1,")
    assert "LINE-1" in items
    (tmp_path / "items.yaml").write_text(items)
    (tmp_path / "stock.yaml").write_text("receipts:\n  - {item: SEAT-ASSY, lot: SA-1, quantity: 4}\n"
                                         "  - {item: SCREW-M6, lot: SC-1, quantity: 9}\n"
                                         "  - {item: SEAT-ASSY, lot: SA-2, quantity: 1, location: MAIN}\n")
    master = load_master_data(tmp_path)
    assert [(r.lot, r.location) for r in master.receipts] == [("SA-1", "LINE-1"), ("SC-1", "MAIN"), ("SA-2", "MAIN")]
