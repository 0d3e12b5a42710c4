"""Repetitive production: a run flushes every pre and post line at once (manual lines stay manual); variance per
line and period sums the runs' standards and actuals."""

from decimal import Decimal as D

from backflush_manufacturer.domain import FlushPoint, standard_consumption
from backflush_manufacturer.domain.runs import RunFigures, line_variance, run_requirements


def test_a_run_flushes_the_pre_and_post_lines_and_leaves_the_manual_ones_to_the_shop_floor(catalogue):
    requirements = run_requirements(catalogue, "CHAIR", D(10))
    assert {r.flush for r in requirements} == {FlushPoint.PRE, FlushPoint.POST}
    assert {r.item for r in requirements} == {"GREASE", "CASTOR", "SCREW", "FABRIC", "SEAT"}  # not LABEL


def test_a_run_flushes_what_the_bom_says_for_its_quantity_at_both_flush_points(catalogue):
    flushed: dict[str, D] = {}
    for r in run_requirements(catalogue, "CHAIR", D(100)):
        flushed[r.item] = flushed.get(r.item, D(0)) + r.quantity
    standard = standard_consumption(catalogue, "CHAIR", D(100))
    assert flushed == {item: q for item, q in standard.items() if item != "LABEL"}


def test_line_variance_sums_standard_and_actual_over_the_runs(catalogue):
    runs = [RunFigures("R-1", "CHAIR", D(100), {"SCREW": D(1250), "LABEL": D(101)}),
            RunFigures("R-2", "CHAIR", D(100), {"SCREW": D(1248)})]
    lines = {v.item: v for v in line_variance(catalogue, runs, {})}
    assert (lines["SCREW"].standard, lines["SCREW"].actual, lines["SCREW"].variance) == (D(2496), D(2498), D(2))
    assert (lines["LABEL"].standard, lines["LABEL"].actual) == (D(200), D(101))
    assert (lines["SEAT"].standard, lines["SEAT"].actual) == (D(200), D(0))


def test_no_runs_no_variance(catalogue):
    assert line_variance(catalogue, [], {}) == ()
