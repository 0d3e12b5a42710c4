"""The audit's contract-manufacturing checks, on raw movement rows: owner stock never below zero at any point of
the history, and a consigned lot consumed only by its owner's orders."""

from types import SimpleNamespace

from backflush_shared.audit import consignment_checks


def row(n: int, lot: str, quantity: str, reason: str, owner: str | None, order: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(id=n, item="TOP", location="MAIN", lot=lot, quantity=quantity, reason=reason,
                           production_order=order, owner=owner)


def verdicts(rows: list[SimpleNamespace], orders: dict[str, str | None]) -> dict[str, bool]:
    return {f.check: f.ok for f in consignment_checks(rows, orders)}


def test_a_clean_history_passes_both_checks():
    rows = [row(1, "A1", "5", "receipt", "BRAND-A"), row(2, "A1", "-5", "backflush", "BRAND-A", "CM-1"),
            row(3, "OWN", "9", "receipt", None), row(4, "OWN", "-2", "backflush", None, "O-1")]
    assert verdicts(rows, {"CM-1": "BRAND-A", "O-1": None}) == {
        "manufacturer: owner stock never negative": True,
        "manufacturer: consigned lots consumed only by their owner's orders": True}


def test_an_owner_lot_that_dipped_below_zero_is_a_breach_even_if_it_ends_at_zero():
    rows = [row(1, "A1", "-2", "backflush", "BRAND-A", "CM-1"), row(2, "A1", "2", "receipt", "BRAND-A")]
    assert verdicts(rows, {"CM-1": "BRAND-A"})["manufacturer: owner stock never negative"] is False


def test_an_ordinary_order_or_another_owners_order_taking_a_consigned_lot_is_a_breach():
    rows = [row(1, "A1", "9", "receipt", "BRAND-A"), row(2, "A1", "-1", "backflush", "BRAND-A", "O-1")]
    assert verdicts(rows, {"O-1": None})["manufacturer: consigned lots consumed only by their owner's orders"] is False
    rows[1].production_order = "CM-B"
    assert verdicts(rows, {"CM-B": "BRAND-B"})[
        "manufacturer: consigned lots consumed only by their owner's orders"] is False


def test_a_lot_named_as_two_owners_is_a_breach():
    rows = [row(1, "A1", "9", "receipt", "BRAND-A"), row(2, "A1", "1", "receipt", None)]
    assert verdicts(rows, {})["manufacturer: owner stock never negative"] is False
