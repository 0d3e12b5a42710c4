"""What every event on our topics is: a versioned pydantic model with a type name and a home topic.

The envelope (event id, correlation and causation ids, source, time) travels in the record's headers, not in
the model: the JSON value is the event's own data only, so one envelope serves every event type.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from backflush_shared.contracts.topics import Topic


def _not_a_number(value: object) -> object:
    """Refuse a JSON number for a decimal: 2.1 as a float is already not 2.1, so the wire carries strings."""
    if isinstance(value, int | float):
        raise ValueError("a decimal is sent as a string such as \"2.5\", never as a JSON number")
    return value


#: Put after the constraints of every `Decimal` field of a contract: on the wire a decimal is a string.
DECIMAL_STRING = BeforeValidator(_not_a_number)

#: A quantity on the wire: a decimal string (never a float), strictly positive.
Quantity = Annotated[
    Decimal,
    Field(gt=0, max_digits=18, decimal_places=6, examples=["12", "2.750"]),
    DECIMAL_STRING,
    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
]

#: Identifiers chosen by people (order ids, item numbers, lots): short, printable, no whitespace.
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]


#: The JSON Schema mark of a field added to a schema version after readers of that version were deployed.
ADDED_LATER = "x-added-later"


def added_later(*, default: Any, description: str, **constraints: Any) -> Any:
    """A field added to a schema version that deployed readers already run, who forbid fields they do not know.

    It goes on the wire only when it differs from its default, so an older reader still reads every event that does
    not use it; one that does is refused by the older reader as invalid (it could not honour it) and replayed
    after the upgrade (`dlq replay --unreadable`)."""
    return Field(default=default, description=description, json_schema_extra={ADDED_LATER: True}, **constraints)


@cache
def _wire_shape(model: type[BaseModel]) -> tuple[tuple[str, bool, Any], ...]:
    """The fields `wire_exclusions` looks at: (name, added later?, default), for later additions and nested models."""
    shape: list[tuple[str, bool, Any]] = []
    for name, field in model.model_fields.items():
        later = isinstance(field.json_schema_extra, dict) and bool(field.json_schema_extra.get(ADDED_LATER))
        nested = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        if later or nested:
            shape.append((name, later, field.default))
    return tuple(shape)


def wire_exclusions(model: BaseModel) -> dict[str, Any] | None:
    """What to leave out of `model`'s JSON: each later addition that holds its default, in nested models too."""
    exclude: dict[str, Any] = {}
    for name, later, default in _wire_shape(type(model)):
        value = getattr(model, name)
        if later and value == default:
            exclude[name] = True
        elif isinstance(value, BaseModel) and (nested := wire_exclusions(value)):
            exclude[name] = nested
    return exclude or None


class Event(BaseModel):
    """Base of every event. Subclasses set `event_type`, `schema_version` and `topic` as class variables."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    topic: ClassVar[Topic]

    def wire_json(self) -> bytes:
        """The record value: the event as JSON, later additions left out while they hold their default."""
        return self.model_dump_json(exclude=wire_exclusions(self)).encode()

    def correlation_key(self) -> str:
        """The envelope's correlation id: the order the event is about (master data: the item)."""
        return self.record_key()

    def record_key(self) -> str:
        """The Kafka record key: the order id, so that every event of one order stays in order."""
        order_id = getattr(self, "order_id", None)
        if order_id is None:
            raise NotImplementedError(f"{type(self).__name__} has no order_id; override record_key")
        return str(order_id)
