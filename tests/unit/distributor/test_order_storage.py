"""What the distributor stores of an order and its history, however cheaply it now forms it.

The history's summary of an event is the event as validated, serialised once; an order's milestones round-trip
through their JSON field by field; changing milestones by a name that is none of theirs is refused.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import fields, replace
from decimal import Decimal

import pytest
from sqlalchemy import select

from backflush_shared.contracts import completions as c
from backflush_shared.contracts import orders as o
from backflush_shared.service import ServiceRuntime

from backflush_distributor.adapters.repository import _milestones_from_json, _milestones_to_json
from backflush_distributor.adapters.tables import order_events
from backflush_distributor.domain.lifecycle import Milestones, Order
from support.consumed import Record


async def test_the_history_keeps_each_event_as_validated_in_its_own_json(runtime: ServiceRuntime) -> None:
    placed = o.OrderPlaced(order_id="H-1", order_holder="  Zoë Ünal GmbH ", flow="pre", item="CHAIR-ERGO",
                           quantity=Decimal("1.50"), ship_to="1 Straße", due_date=dt.date(2030, 1, 1))
    inspected = c.QualityInspectionRecorded(order_id="H-1", item="CHAIR-ERGO", passed=True, inspected_by="QA")
    assert runtime.processor is not None
    result = await runtime.processor.process([Record.of_event(placed, 0), Record.of_event(inspected, 1)])
    assert result.applied == 2

    async with runtime.database.reading() as session:
        summaries = (await session.execute(select(order_events.c.summary).order_by(order_events.c.id))).scalars().all()
    assert summaries == [placed.model_dump_json(), inspected.model_dump_json()]
    first = json.loads(summaries[0])
    assert first == placed.model_dump(mode="json")  # every field, defaults included
    assert first["order_holder"] == "Zoë Ünal GmbH"  # stripped as validated, readable as sent


def every_milestone_set() -> Milestones:
    at = dt.datetime(2030, 1, 2, 3, 4, 5, 600_000, tzinfo=dt.UTC)
    values: dict[str, object] = {}
    for n, field in enumerate(fields(Milestones)):
        if field.name.endswith("_since"):
            values[field.name] = at + dt.timedelta(minutes=n)
        elif isinstance(field.default, bool):
            values[field.name] = True
        elif isinstance(field.default, Decimal) or field.type == "Decimal | None":
            values[field.name] = Decimal(f"{n}.125")
        else:
            values[field.name] = f"text {n}"
    return Milestones(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize("milestones", [Milestones(), every_milestone_set()], ids=["none", "every"])
def test_milestones_round_trip_through_their_json_field_by_field(milestones: Milestones) -> None:
    text = _milestones_to_json(milestones)
    assert list(json.loads(text)) == [f.name for f in fields(Milestones)]
    assert _milestones_from_json(text) == milestones


def test_changed_milestones_are_what_replace_gives_and_leave_the_order_they_came_from_alone() -> None:
    order = Order("M-1", "pre", "CHAIR-ERGO", Decimal(1), Milestones(quality_passed=True))
    moved = order.with_milestones(racked=True, produced=Decimal(1))
    assert moved.milestones == replace(order.milestones, racked=True, produced=Decimal(1))
    assert order.milestones == Milestones(quality_passed=True)
    assert hash(moved.milestones) == hash(replace(order.milestones, racked=True, produced=Decimal(1)))


def test_a_change_to_a_milestone_that_does_not_exist_is_refused() -> None:
    with pytest.raises(TypeError, match="not milestones: rackd"):
        Order("M-1", "pre", "CHAIR-ERGO", Decimal(1)).with_milestones(rackd=True)
