"""Inspection plans: the quality gate a production order passes before its pre-product flush.

Each finished item has a plan whose rule is `pass` or `fail` (with the reason a failed check reports). An item
without a plan fails the check, with that as the reason: the gate never passes silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from backflush_manufacturer.domain.errors import UnknownInspectionRuleError


class InspectionRule(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    EXTERNAL = "external"  # an outside inspector decides, by an event; the order waits for it

    @classmethod
    def parse(cls, value: object, *, item: str) -> InspectionRule:
        if isinstance(value, InspectionRule):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        raise UnknownInspectionRuleError(value, item=item)


@dataclass(frozen=True, slots=True)
class InspectionPlan:
    """How `item` is inspected: `rule`, and the `reason` reported when the rule fails it."""

    item: str
    rule: InspectionRule
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", InspectionRule.parse(self.rule, item=self.item))


@dataclass(frozen=True, slots=True)
class InspectionResult:
    item: str
    passed: bool
    reason: str = ""
    awaiting_inspector: bool = False


def inspect(plans: Mapping[str, InspectionPlan], item: str) -> InspectionResult:
    """Run the quality check of `item` by its plan; no plan is a failed check with that reason."""
    plan = plans.get(item)
    if plan is None:
        return InspectionResult(item, False, f"no inspection plan for {item}")
    if plan.rule is InspectionRule.PASS:
        return InspectionResult(item, True)
    if plan.rule is InspectionRule.EXTERNAL:
        return InspectionResult(item, False, f"waiting for an outside inspector's result for {item}",
                                awaiting_inspector=True)
    return InspectionResult(item, False, plan.reason or f"inspection plan of {item} fails it")
