"""Every figure the README quotes from `PREDICTABLE_RULES` holds for the sample chair."""

from decimal import Decimal as D
from pathlib import Path

import pytest

from backflush_manufacturer.domain import (
    NEGATIVE_LOT,
    PCS,
    PREDICTABLE_RULES,
    ComponentIssue,
    FlushPoint,
    FlushRequest,
    ParkedFlush,
    Receipt,
    backflush,
    explode,
    flush_requirements,
    issue,
    receive,
    reprocess_parked,
)
from backflush_manufacturer.master_data_files import load_master_data

SAMPLE = Path(__file__).resolve().parents[3] / "services" / "manufacturer" / "sample_data"


@pytest.fixture(scope="module")
def sample():
    return load_master_data(SAMPLE)


def rule(name):
    return next(r for r in PREDICTABLE_RULES if r.name == name)


def test_every_rule_states_itself_and_gives_an_example():
    assert [r.name for r in PREDICTABLE_RULES] == [
        "rounding",
        "partial-completions",
        "phantom-flush-points",
        "negative-lot",
        "all-or-nothing",
    ]
    assert all(r.rule and r.example for r in PREDICTABLE_RULES)


def test_rounding_example(sample):
    assert "52.53 -> 53 CASTOR-50" in rule("rounding").example
    found = {r.item: r.quantity for r in explode(sample.catalogue, "CHAIR-ERGO", D(10))}
    assert found["CASTOR-50"] == 53 and found["GREASE-LI"] == D("0.168")
    assert PCS.round_requirement(PCS.round_requirement(D("10.2")) * 5 * D("1.03")) == 57  # phantom rounded first


def test_partial_completions_example(sample):
    def castors(requirements):
        return next(r.quantity for r in requirements if r.item == "CASTOR-50")

    catalogue = sample.catalogue
    flushed = [
        castors(flush_requirements(catalogue, "CHAIR-ERGO", FlushPoint.POST, D(q), D(before)))
        for q, before in ((40, 0), (35, 40), (25, 75))
    ]
    assert flushed == [211, 183, 132]
    assert sum(castors(explode(catalogue, "CHAIR-ERGO", D(q))) for q in (40, 35, 25)) == 527


def test_phantom_flush_points_example(sample):
    kit_line = next(line for line in sample.catalogue.bom("CHAIR-ERGO").lines if line.component == "BASE-KIT")
    assert kit_line.flush is FlushPoint.PRE
    flushes = {r.item: r.flush for r in explode(sample.catalogue, "CHAIR-ERGO", D(1))}
    assert flushes["CASTOR-50"] is FlushPoint.POST
    assert flushes["BASE-STAR-5"] is FlushPoint.PRE and flushes["GAS-LIFT-100"] is FlushPoint.PRE
    assert flushes["GREASE-LI"] is FlushPoint.MANUAL


def test_negative_lot_example(sample):
    ledger = sample.ledger()
    assert ledger.on_hand("GREASE-LI", "MAIN", "G-01") == D("0.500")
    manual = FlushRequest("grease-40", "PO-1", "CHAIR-ERGO", FlushPoint.MANUAL, D(40), finished_lot="FG-1")
    outcome = backflush(sample.catalogue, ledger, manual, sample.policies)
    (alert,) = outcome.alerts
    assert (alert.item, alert.needed, alert.shortfall) == ("GREASE-LI", D("0.673"), D("0.173"))
    ledger = ledger.appended(outcome.movements)
    assert ledger.on_hand("GREASE-LI", "MAIN", "G-01") == 0
    assert ledger.on_hand("GREASE-LI", "MAIN", NEGATIVE_LOT) == D("-0.173")
    ledger = ledger.appended(receive(sample.catalogue, ledger, Receipt("r-g2", "GREASE-LI", "G-02", D(5))))
    assert ledger.on_hand("GREASE-LI", "MAIN", "G-02") == D("4.827")
    assert ledger.on_hand("GREASE-LI", "MAIN", NEGATIVE_LOT) == 0


def test_all_or_nothing_example(sample):
    """600 of the 650 castors go elsewhere; 30 chairs need 30.6 x 5.15 = 157.59 -> 158 castors."""
    ledger = sample.ledger()
    elsewhere = ComponentIssue("elsewhere", "PO-0", "CASTOR-50", D(600))
    ledger = ledger.appended(issue(sample.catalogue, ledger, elsewhere, sample.policies).movements)
    done = FlushRequest("done-30", "PO-1", "CHAIR-ERGO", FlushPoint.POST, D(30), finished_lot="FG-1")
    parked = backflush(sample.catalogue, ledger, done, sample.policies)
    assert isinstance(parked, ParkedFlush)
    assert [(s.item, s.needed, s.available) for s in parked.shortages] == [("CASTOR-50", 158, 50)]
    ledger = ledger.appended(receive(sample.catalogue, ledger, Receipt("r-ca", "CASTOR-50", "CA-1120", D(200))))
    (posted,) = reprocess_parked(ledger, [parked], sample.policies).posted
    assert {m.item for m in posted.movements} == {
        "SEAT-ASSY",
        "BACKREST-MESH",
        "ARMREST-PAIR",
        "SCREW-M6",
        "CASTOR-50",
    }
