"""Properties of the explosion: linear when no rounding bites, and partial completions that never drift."""

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from backflush_manufacturer.domain import (
    PCS,
    Bom,
    BomCatalogue,
    BomLine,
    FlushPoint,
    Item,
    Unit,
    explode,
    flush_requirements,
)

# A kilogram weighed to the milligram. Every quantity per and scrap factor below has one decimal, so each BOM line
# multiplies by a number with at most 2 decimals (q x (1 + s)), and a leaf three lines below the finished good
# (TOP > P1 > P2 > leaf) has at most 3 x 2 = 6 decimals per finished piece. The finished good is counted in whole
# pieces, so at 6 decimals rounding never bites, and explode(k x q) must be exactly k x explode(q).
FINE = Unit("kg", 6)

quantity_per = st.decimals(min_value=D("0.1"), max_value=D("9.9"), places=1)
scrap_factor = st.decimals(min_value=D("0.0"), max_value=D("0.5"), places=1)
flush_point = st.sampled_from(list(FlushPoint))


@st.composite
def line(draw, component):
    return BomLine(component, draw(quantity_per), draw(scrap_factor), draw(flush_point))


@st.composite
def fine_catalogue(draw):
    """TOP > [P1 (phantom), A]; P1 > [P2 (phantom), B]; P2 > [C, A]: three levels, two phantoms, no pcs leaf."""
    items = [
        Item("TOP", PCS),
        Item("P1", FINE, phantom=True),
        Item("P2", FINE, phantom=True),
        Item("A", FINE),
        Item("B", FINE),
        Item("C", FINE),
    ]
    boms = [
        Bom("TOP", (draw(line("P1")), draw(line("A")))),
        Bom("P1", (draw(line("P2")), draw(line("B")))),
        Bom("P2", (draw(line("C")), draw(line("A")))),
    ]
    return BomCatalogue(items, boms)


@settings(max_examples=150, deadline=None)
@given(fine_catalogue(), st.integers(1, 1000), st.integers(1, 50))
def test_explosion_without_whole_unit_components_is_linear_in_the_quantity(catalogue, quantity, k):
    """explode(k x q) == k x explode(q), line by line, when every component has room for every decimal."""
    once = explode(catalogue, "TOP", D(quantity))
    scaled = explode(catalogue, "TOP", D(k * quantity))
    assert [(r.item, r.flush, r.quantity * k) for r in once] == [(r.item, r.flush, r.quantity) for r in scaled]


completions = st.lists(st.integers(1, 60), min_size=1, max_size=6)


@settings(max_examples=100, deadline=None)
@given(completions, st.sampled_from([FlushPoint.PRE, FlushPoint.POST, FlushPoint.MANUAL]))
def test_partial_completions_add_up_to_one_completion_of_the_total(chair, parts, flush):
    """However the total is split into completions, the partial flushes add up to the flush of the total."""
    totals: dict[str, D] = {}
    before = 0
    for part in parts:
        for requirement in flush_requirements(chair, "CHAIR", flush, D(part), D(before)):
            assert requirement.quantity > 0
            totals[requirement.item] = totals.get(requirement.item, D(0)) + requirement.quantity
        before += part
    whole = {r.item: r.quantity for r in flush_requirements(chair, "CHAIR", flush, D(before))}
    assert totals == whole


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10_000))
def test_rounding_never_consumes_less_than_the_exact_requirement_of_whole_pieces(chair, quantity):
    """Castors per chair are exactly 1.02 x 5 x 1.03 = 5.253: the rounded requirement is the ceiling of that."""
    castors = next(r.quantity for r in explode(chair, "CHAIR", D(quantity)) if r.item == "CASTOR")
    exact = D(quantity) * D("5.253")
    assert exact <= castors < exact + 1
