"""Variance: standard (BOM) against actual consumption, per production order and component."""

from decimal import Decimal as D

from backflush_manufacturer.domain import (
    ComponentIssue,
    FlushPoint,
    FlushRequest,
    MovementReason,
    NegativeStockPolicy,
    StockPolicies,
    backflush,
    issue,
    order_variance,
    standard_consumption,
    variance,
)

PARK = StockPolicies(NegativeStockPolicy.PARK)


def test_standard_is_the_explosion_of_the_completed_quantity_at_every_flush_point(catalogue):
    assert standard_consumption(catalogue, "CHAIR", D(100)) == {
        "GREASE": D("1.683"),
        "CASTOR": D(526),
        "FABRIC": D("91.630"),
        "SCREW": D(1248),
        "SEAT": D(100),
        "LABEL": D(100),
    }


def test_reported_actual_consumption_gives_a_variance_per_component(catalogue):
    """100 chairs; the line reports 540 castors (standard 526: +14, +2.66 %) and 90 m of fabric (standard 91.63:
    -1.63, -1.78 %). Components not reported count as zero actual."""
    lines = {v.item: v for v in variance(catalogue, "CHAIR", D(100), {"CASTOR": D(540), "FABRIC": D(90)})}
    assert (lines["CASTOR"].standard, lines["CASTOR"].actual, lines["CASTOR"].variance) == (526, 540, 14)
    assert lines["CASTOR"].percent == D("2.66")
    assert lines["FABRIC"].variance == D("-1.630") and lines["FABRIC"].percent == D("-1.78")
    assert lines["SEAT"].actual == 0 and lines["SEAT"].variance == -100


def test_the_ledger_gives_the_actual_consumption_of_an_order_scrap_included(catalogue, ledger):
    """Released for 100 (grease 1.683 pre), completed 100 (post), labels issued, and 2.5 m fabric reported as
    extra scrap: the only variance is the scrap."""
    requests = [
        FlushRequest("rel", "PO-1", "CHAIR", FlushPoint.PRE, D(100)),
        FlushRequest("done", "PO-1", "CHAIR", FlushPoint.POST, D(100)),
        FlushRequest("labels", "PO-1", "CHAIR", FlushPoint.MANUAL, D(100)),
    ]
    for request in requests:
        ledger = ledger.appended(backflush(catalogue, ledger, request, PARK).movements)
    scrap = ComponentIssue("scrap", "PO-1", "FABRIC", D("2.5"), MovementReason.SCRAP)
    ledger = ledger.appended(issue(catalogue, ledger, scrap, PARK).movements)
    lines = order_variance(catalogue, ledger, "PO-1", "CHAIR", D(100))
    assert {v.item: v.variance for v in lines if v.variance} == {"FABRIC": D("2.5")}


def test_a_component_used_outside_the_bom_shows_with_no_standard(catalogue):
    (line,) = [v for v in variance(catalogue, "CHAIR", D(1), {"SHELL": D(2)}) if v.item == "SHELL"]
    assert (line.standard, line.actual, line.percent) == (0, 2, None)
