"""The rules a user must be able to predict, in words the README quotes (`PREDICTABLE_RULES`).

Each example uses the sample office chair (`services/manufacturer/sample_data/`): CHAIR-ERGO has the phantom
BASE-KIT (scrap 2 %), which holds 5 CASTOR-50 per base (scrap 3 %). The unit tests check every figure here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    rule: str
    example: str


PREDICTABLE_RULES: tuple[Rule, ...] = (
    Rule(
        "rounding",
        "Quantities stay exact through every phantom level; each component's requirement is summed per flush "
        "point and rounded once, at the end, to its unit: whole units (pcs) round up, decimal units (kg, m, l: "
        "3 decimals) round half-up. Rounding never compounds.",
        "10 CHAIR-ERGO need 10 x 1.02 = 10.2 BASE-KIT (not rounded: a phantom), so 10.2 x 5 x 1.03 = 52.53 "
        "-> 53 CASTOR-50 (rounding the phantom first would have taken 57) and 10.2 x 0.015 x 1.10 = 0.1683 "
        "-> 0.168 kg GREASE-LI.",
    ),
    Rule(
        "partial-completions",
        "Partial completions never drift: each partial flush is the rounded requirement for the cumulative "
        "completed quantity minus the rounded requirement for what was completed before.",
        "Completing 40, 35 and 25 CHAIR-ERGO flushes 211, 183 and 132 CASTOR-50 (cumulative 211, 394, 526): "
        "526 in all, exactly what one completion of 100 flushes (rounding each completion alone would take 527).",
    ),
    Rule(
        "phantom-flush-points",
        "A phantom's components keep their own flush points; the flush point written on the phantom's line in "
        "the parent BOM is ignored. A stocked subassembly is consumed as itself, at its own line's flush point.",
        "BASE-KIT sits on a pre line of CHAIR-ERGO, yet its CASTOR-50 are flushed at completion (post), "
        "BASE-STAR-5 and GAS-LIFT-100 at release (pre) and GREASE-LI only by a manual issue.",
    ),
    Rule(
        "negative-lot",
        "Under the allow policy, what stock cannot cover is posted on the item's dedicated lot NEGATIVE at that "
        "location, never on a real lot, with an alert. The next receipt of the item there is received into its "
        "own lot and settles the negative lot from it, oldest flush first, so NEGATIVE returns to zero and "
        "genealogy names the received lot.",
        "GREASE-LI (allow) has 0.5 kg in lot G-01 and a flush needs 0.673 kg: G-01 goes to 0, NEGATIVE to "
        "-0.173 and an alert is raised. A receipt of 5 kg into G-02 then leaves G-02 at 4.827 and NEGATIVE at 0.",
    ),
    Rule(
        "all-or-nothing",
        "A flush that cannot post in full posts nothing: a parked flush waits whole, and when several components "
        "are short the strictest of their policies decides (reject, then park, then allow). Parked flushes are "
        "retried in arrival order, and one still short of a component keeps its place in line for it.",
        "A completion short of CASTOR-50 under park posts none of its screws or seats either; when castors "
        "arrive it posts whole, before any later parked flush needing castors.",
    ),
)
