"""Ids the manufacturer derives from an order id always fit the contract field they are published in."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from backflush_shared.contracts.base import Identifier, Quantity
from backflush_manufacturer.domain.identifiers import (
    FLUSH_ID_MAX,
    certificate_id,
    completion_lot,
    derived_id,
    finished_lot,
    step_flush_id,
)
from backflush_manufacturer.domain.units import Unit

IDENTIFIER = TypeAdapter(Identifier)
QUANTITY = TypeAdapter(Quantity)
FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
REST = FIRST + "._:/-"

#: Any order id the contract accepts: its pattern `^[A-Za-z0-9][A-Za-z0-9._:/-]*$`, 1 to 64 characters; long ids
#: drawn often, since they are the ones that used to break.
order_ids = st.builds(lambda first, rest: first + rest, st.sampled_from(FIRST),
                      st.one_of(st.text(REST, max_size=63), st.text(REST, min_size=55, max_size=63)))
#: A completed quantity as the contract allows it (18 digits, 6 decimals), as a unit shows it.
completed = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("999999999999.999999"), places=6)


def valid_identifier(value: str) -> bool:
    try:
        IDENTIFIER.validate_python(value)
    except ValidationError:
        return False
    return True


@given(order_ids)
def test_the_strategy_draws_only_ids_the_contract_accepts(order_id: str) -> None:
    assert valid_identifier(order_id)


@given(order_ids, st.integers(min_value=1, max_value=9999), completed, st.integers(min_value=0, max_value=12))
def test_every_id_derived_from_a_valid_order_id_is_a_valid_identifier(order_id: str, number: int,
                                                                      quantity: Decimal, decimals: int) -> None:
    shown = Unit("u", decimals).format(QUANTITY.validate_python(quantity))
    for derived in (certificate_id(order_id), finished_lot(order_id, number), completion_lot(order_id, shown)):
        assert valid_identifier(derived), derived
    for step in ("release", "completion"):
        assert len(step_flush_id(order_id, step)) <= FLUSH_ID_MAX


@given(order_ids, order_ids)
def test_different_order_ids_derive_different_ids(first: str, second: str) -> None:
    if first == second:
        return
    assert certificate_id(first) != certificate_id(second)
    assert finished_lot(first, 1) != finished_lot(second, 1)
    assert completion_lot(first, "8") != completion_lot(second, "8")


@given(order_ids, completed, completed)
def test_the_lots_of_one_order_stay_distinct_and_apart_from_its_finished_lot(order_id: str, a: Decimal,
                                                                            b: Decimal) -> None:
    lots = {completion_lot(order_id, format(a, "f")), completion_lot(order_id, format(b, "f")),
            finished_lot(order_id, 1)}
    assert len(lots) == (2 if a == b else 3)


@given(order_ids)
def test_a_derivation_is_deterministic_so_a_redelivery_names_the_same_lot(order_id: str) -> None:
    assert completion_lot(order_id, "15") == completion_lot(order_id, "15")
    assert certificate_id(order_id) == certificate_id(order_id)


def test_short_ids_stay_as_readable_as_before() -> None:
    assert certificate_id("PRE-1") == "QC-PRE-1"
    assert finished_lot("PRE-1", 1) == "PRE-1-1"
    assert completion_lot("POST-1", "15") == "POST-1-C15"
    assert step_flush_id("PRE-1", "release") == "PRE-1:release"


def test_a_long_id_keeps_its_start_and_its_readable_suffix() -> None:
    order_id = "O" * 64
    lot = completion_lot(order_id, "15")
    assert len(lot) == 64 and lot.startswith("OOOO") and lot.endswith("-C15")
    assert derived_id("A" * 60, suffix="-" + "9" * 60) != derived_id("A" * 60, suffix="-" + "9" * 59 + "8")
