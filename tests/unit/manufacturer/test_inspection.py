"""Inspection plans decide the quality gate; an item without a plan never passes silently."""

import pytest

from backflush_manufacturer.domain import InspectionPlan, InspectionResult, UnknownInspectionRuleError, inspect

PLANS = {
    "CHAIR": InspectionPlan("CHAIR", "pass"),
    "STOOL": InspectionPlan("STOOL", "fail", "leg weld porosity"),
}


def test_a_pass_rule_passes():
    assert inspect(PLANS, "CHAIR") == InspectionResult("CHAIR", True)


def test_a_fail_rule_fails_with_its_reason():
    assert inspect(PLANS, "STOOL") == InspectionResult("STOOL", False, "leg weld porosity")


def test_an_item_without_a_plan_fails_saying_so():
    assert inspect(PLANS, "SOFA") == InspectionResult("SOFA", False, "no inspection plan for SOFA")


def test_an_unknown_rule_is_refused_naming_the_item():
    with pytest.raises(UnknownInspectionRuleError, match="SOFA"):
        InspectionPlan("SOFA", "maybe")
