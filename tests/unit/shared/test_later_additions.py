"""Fields added to a schema version that readers already run: older readers forbid fields they do not know, so a
later addition goes on the wire only when it differs from its default. An upgraded writer's events that don't use
the new field are read by every older reader; one that uses it is refused by them as invalid (they could not
honour it) and is replayed after their upgrade."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.base import ADDED_LATER, Event
from backflush_shared.contracts.common import ConsumedComponent, OrderProcessingInfo
from backflush_shared.contracts.registry import ALL_EVENTS


def older_reader(model: type[BaseModel]) -> type[BaseModel]:
    """`model` as a reader deployed before its later additions: those fields missing, unknown fields forbidden."""
    fields: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get(ADDED_LATER):
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = older_reader(annotation)
        fields[name] = (annotation, field)
    return create_model(f"Older{model.__name__}", __config__=ConfigDict(extra="forbid"), **fields)


def placed(**changes: Any) -> o.OrderPlaced:
    return o.OrderPlaced(order_id="W-1", order_holder="Wire Ltd", flow="stock", item="CHAIR-ERGO",
                         quantity=Decimal(2), ship_to="1 Wire Road", due_date=dt.date(2030, 1, 1), **changes)


def forwarded(**changes: Any) -> o.OrderForwarded:
    processing = OrderProcessingInfo(order_holder="Wire Ltd", ship_to="1 Wire Road", due_date=dt.date(2030, 1, 1),
                                     **changes)
    return o.OrderForwarded(order_id="W-1", flow="stock", item="CHAIR-ERGO", quantity=Decimal(2),
                            processing=processing)


def backflushed(**changes: Any) -> c.ComponentsBackflushed:
    line = ConsumedComponent(item="SEAT-ASSY", quantity=Decimal(2), unit="EA", lots=["L1"])
    return c.ComponentsBackflushed(order_id="W-1", flush_point="pre", produced_quantity=Decimal(2),
                                   components=[line], **changes)


UNUSED = [placed(), forwarded(), backflushed()]
def contract_forwarded() -> o.OrderForwarded:
    return o.OrderForwarded(order_id="W-1", flow="post", item="CHAIR-ERGO", quantity=Decimal(2),
                            processing=forwarded().processing, components_owner="Wire Ltd")


USED = [placed(partial_deliveries=True), forwarded(partial_deliveries=True), backflushed(make_to_stock=True),
        o.OrderPlaced(**{**placed().model_dump(), "flow": "post", "contract_manufacturing": True}),
        contract_forwarded()]


@pytest.mark.parametrize("event", UNUSED, ids=lambda event: type(event).__name__)
def test_an_event_not_using_a_later_addition_is_read_by_an_older_reader(event: Event) -> None:
    value = event.wire_json()
    older_reader(type(event)).model_validate(json.loads(value))
    assert type(event).model_validate_json(value) == event  # and by today's reader, unchanged


@pytest.mark.parametrize("event", USED, ids=lambda event: type(event).__name__)
def test_an_event_using_a_later_addition_carries_it_and_an_older_reader_refuses_it(event: Event) -> None:
    value = event.wire_json()
    assert type(event).model_validate_json(value) == event
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        older_reader(type(event)).model_validate(json.loads(value))


def test_only_fields_with_a_default_are_marked_as_later_additions() -> None:
    for model in ALL_EVENTS:
        for name, field in model.model_fields.items():
            if isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get(ADDED_LATER):
                assert not field.is_required(), f"{model.__name__}.{name}: a later addition needs a default"
