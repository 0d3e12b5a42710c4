"""Explosion of the worked-example chair (see conftest.py for the BOM and the exact figures per chair)."""

from decimal import Decimal as D

import pytest

from backflush_manufacturer.domain import (
    KG,
    M,
    PCS,
    Bom,
    BomCatalogue,
    BomLine,
    FlushPoint,
    Item,
    MissingBomError,
    NonPositiveQuantityError,
    Requirement,
    TooManyDecimalsError,
    UnknownItemError,
    explode,
    flush_requirements,
    requirements_as_json,
)

PRE, POST, MANUAL = FlushPoint.PRE, FlushPoint.POST, FlushPoint.MANUAL


def test_exploding_100_chairs_rounds_once_per_component_after_every_level(catalogue):
    """100 chairs, worked by hand:

    BASE (phantom) = 100 x 1 x 1.02 = 102, kept exact (never rounded).
    GREASE = 102 x 0.015 x 1.10 = 1.683 kg, pre (its own flush point; BASE's `manual` is ignored).
    CASTOR = 102 x 5 x 1.03 = 525.3 -> 526 pcs (whole units round up), post.
    FABRIC = 100 x 0.833 x 1.10 = 91.63 m, post.
    SCREW  = 100 x 8 x 1.05 + 102 x 4 = 840 + 408 = 1248 pcs, post (two lines, one requirement).
    SEAT   = 100 pcs, post: a stocked subassembly, consumed as itself (no FOAM, no SHELL).
    LABEL  = 100 pcs, manual.
    Listed by flush point (pre, post, manual), then item code.
    """
    assert explode(catalogue, "CHAIR", D(100)) == [
        Requirement("GREASE", D("1.683"), KG, PRE),
        Requirement("CASTOR", D(526), PCS, POST),
        Requirement("FABRIC", D("91.63"), M, POST),
        Requirement("SCREW", D(1248), PCS, POST),
        Requirement("SEAT", D(100), PCS, POST),
        Requirement("LABEL", D(100), PCS, MANUAL),
    ]


def test_rounding_happens_once_at_the_end_so_it_never_compounds(catalogue):
    """10 chairs: BASE = 10.2 exactly. CASTOR = 10.2 x 5.15 = 52.53 -> 53.

    Rounding the phantom first (10.2 -> 11 bases) would have taken 11 x 5.15 = 56.65 -> 57 castors.
    SCREW = 84 + 40.8 = 124.8 -> 125: the two lines are added exactly, then rounded once.
    GREASE = 10.2 x 0.0165 = 0.1683 -> 0.168 kg (half-up at 3 decimals).
    """
    requirements = {r.item: r.quantity for r in explode(catalogue, "CHAIR", D(10))}
    assert requirements["CASTOR"] == D(53)
    assert requirements["SCREW"] == D(125)
    assert requirements["GREASE"] == D("0.168")


def test_a_phantoms_children_keep_their_own_flush_points(catalogue):
    flush_points = {r.item: r.flush for r in explode(catalogue, "CHAIR", D(1))}
    assert flush_points["CASTOR"] is POST
    assert flush_points["GREASE"] is PRE
    assert "BASE" not in flush_points


def test_a_stocked_subassembly_is_consumed_as_itself_not_exploded(catalogue):
    items = {r.item for r in explode(catalogue, "CHAIR", D(1))}
    assert "SEAT" in items
    assert not items & {"FOAM", "SHELL"}


def test_a_stocked_subassembly_explodes_on_its_own_order(catalogue):
    """40 seats: FOAM = 40 x 1.25 x 1.05 = 52.5 kg (pre), SHELL = 40 (post)."""
    assert explode(catalogue, "SEAT", D(40)) == [
        Requirement("FOAM", D("52.500"), KG, PRE),
        Requirement("SHELL", D(40), PCS, POST),
    ]


def test_requirements_carry_every_bom_path_that_leads_to_them(catalogue):
    screw = next(r for r in explode(catalogue, "CHAIR", D(1)) if r.item == "SCREW")
    assert screw.paths == (("CHAIR", "BASE", "SCREW"), ("CHAIR", "SCREW"))


def test_requirements_print_as_json_with_decimal_strings(catalogue):
    assert requirements_as_json(explode(catalogue, "CHAIR", D(100)))[:3] == [
        {"item": "GREASE", "quantity": "1.683", "unit": "kg", "flush": "pre"},
        {"item": "CASTOR", "quantity": "526", "unit": "pcs", "flush": "post"},
        {"item": "FABRIC", "quantity": "91.630", "unit": "m", "flush": "post"},
    ]


def test_the_order_of_bom_lines_does_not_change_the_result(catalogue):
    chair = catalogue.bom("CHAIR")
    reversed_catalogue = catalogue.with_boms(Bom("CHAIR", tuple(reversed(chair.lines))))
    assert explode(reversed_catalogue, "CHAIR", D(37)) == explode(catalogue, "CHAIR", D(37))


class TestPartialCompletionsNeverDrift:
    """Completions of 40, 35 and 25 chairs, post flush point, worked by hand.

    Cumulative 40: BASE 40.8; CASTOR 40.8 x 5.15 = 210.12 -> 211; FABRIC 40 x 0.9163 = 36.652;
                   SCREW 336 + 163.2 = 499.2 -> 500; SEAT 40.
    Cumulative 75: BASE 76.5; CASTOR 393.975 -> 394; FABRIC 68.7225 -> 68.723; SCREW 630 + 306 = 936; SEAT 75.
    Cumulative 100: CASTOR 526; FABRIC 91.630; SCREW 1248; SEAT 100.
    Each flush is cumulative minus what was flushed before:
      40 -> CASTOR 211, FABRIC 36.652, SCREW 500, SEAT 40
      35 -> CASTOR 183, FABRIC 32.071, SCREW 436, SEAT 35
      25 -> CASTOR 132, FABRIC 22.907, SCREW 312, SEAT 25
    Rounding each completion on its own would drift: CASTOR 211 + 184 + 132 = 527, FABRIC 36.652 + 32.071 +
    22.908 = 91.631.
    """

    def flushes(self, catalogue):
        return [
            flush_requirements(catalogue, "CHAIR", POST, D(40)),
            flush_requirements(catalogue, "CHAIR", POST, D(35), completed_before=D(40)),
            flush_requirements(catalogue, "CHAIR", POST, D(25), completed_before=D(75)),
        ]

    def test_each_partial_flush_is_the_rounded_cumulative_minus_what_was_flushed(self, catalogue):
        figures = [{r.item: r.quantity for r in flush} for flush in self.flushes(catalogue)]
        assert figures == [
            {"CASTOR": D(211), "FABRIC": D("36.652"), "SCREW": D(500), "SEAT": D(40)},
            {"CASTOR": D(183), "FABRIC": D("32.071"), "SCREW": D(436), "SEAT": D(35)},
            {"CASTOR": D(132), "FABRIC": D("22.907"), "SCREW": D(312), "SEAT": D(25)},
        ]

    def test_completions_of_40_35_25_flush_exactly_what_one_completion_of_100_flushes(self, catalogue):
        totals: dict[str, D] = {}
        for flush in self.flushes(catalogue):
            for r in flush:
                totals[r.item] = totals.get(r.item, D(0)) + r.quantity
        whole = {r.item: r.quantity for r in flush_requirements(catalogue, "CHAIR", POST, D(100))}
        assert totals == whole

    def test_rounding_each_completion_alone_would_have_drifted(self, catalogue):
        alone = sum(
            next(r.quantity for r in explode(catalogue, "CHAIR", D(q)) if r.item == "CASTOR") for q in (40, 35, 25)
        )
        assert alone == D(527)


def test_a_flush_point_only_flushes_its_own_lines(catalogue):
    assert [r.item for r in flush_requirements(catalogue, "CHAIR", PRE, D(100))] == ["GREASE"]
    assert [r.item for r in flush_requirements(catalogue, "CHAIR", MANUAL, D(100))] == ["LABEL"]


def test_a_completion_that_does_not_move_a_rounded_total_flushes_none_of_that_component():
    """One glue tube serves ten stools: completing 1 stool takes ceil(0.1) = 1 tube; completing a 2nd takes
    ceil(0.2) - 1 = 0 more, so the tube is left out of that flush; the 11th stool takes the 2nd tube."""
    stools = BomCatalogue(
        [Item("STOOL", PCS), Item("GLUE-TUBE", PCS), Item("LEG", PCS)],
        [Bom("STOOL", (BomLine("GLUE-TUBE", D("0.1")), BomLine("LEG", D(3))))],
    )
    assert flush_requirements(stools, "STOOL", POST, D(1)) == [
        Requirement("GLUE-TUBE", D(1), PCS, POST),
        Requirement("LEG", D(3), PCS, POST),
    ]
    assert flush_requirements(stools, "STOOL", POST, D(1), completed_before=D(1)) == [
        Requirement("LEG", D(3), PCS, POST)
    ]
    assert flush_requirements(stools, "STOOL", POST, D(1), completed_before=D(10))[0] == Requirement(
        "GLUE-TUBE", D(1), PCS, POST
    )


class TestBadInput:
    def test_an_unknown_item_is_refused_naming_it(self, catalogue):
        with pytest.raises(UnknownItemError) as caught:
            explode(catalogue, "SOFA", D(1))
        assert caught.value.item == "SOFA" and caught.value.path == ("SOFA",)
        assert "SOFA" in str(caught.value)

    def test_a_zero_quantity_is_refused_naming_item_and_path(self, catalogue):
        with pytest.raises(NonPositiveQuantityError) as caught:
            explode(catalogue, "CHAIR", D(0))
        assert caught.value.item == "CHAIR" and "BOM path CHAIR" in str(caught.value)

    def test_a_negative_quantity_is_refused(self, catalogue):
        with pytest.raises(NonPositiveQuantityError, match="CHAIR"):
            flush_requirements(catalogue, "CHAIR", POST, D(-5))

    def test_half_a_chair_is_refused_because_chairs_are_counted_in_pieces(self, catalogue):
        with pytest.raises(TooManyDecimalsError) as caught:
            explode(catalogue, "CHAIR", D("2.5"))
        assert caught.value.item == "CHAIR" and caught.value.unit == "pcs"
        assert "CHAIR" in str(caught.value) and "BOM path CHAIR" in str(caught.value)

    def test_an_item_without_a_bom_cannot_be_exploded(self, catalogue):
        with pytest.raises(MissingBomError, match="CASTOR has no BOM"):
            explode(catalogue, "CASTOR", D(1))

    def test_a_float_is_refused(self, catalogue):
        with pytest.raises(TypeError):
            explode(catalogue, "CHAIR", 1.0)  # type: ignore[arg-type]
