"""Every event type and version we know, so that a record's headers name the model that reads its value."""

from __future__ import annotations

from backflush_shared.contracts import completions, inventory_details, master_data, orders
from backflush_shared.contracts.base import Event
from backflush_shared.contracts.topics import Topic

ALL_EVENTS: tuple[type[Event], ...] = tuple(
    model
    for module in (orders, inventory_details, completions, master_data)
    for model in vars(module).values()
    if isinstance(model, type) and issubclass(model, Event) and model is not Event and model.__module__ == module.__name__
)

_BY_TYPE_AND_VERSION: dict[tuple[str, int], type[Event]] = {
    (model.event_type, model.schema_version): model for model in ALL_EVENTS
}


def model_for(event_type: str, schema_version: int) -> type[Event] | None:
    """The model of an event type at one schema version, or None when we do not know that pair."""
    return _BY_TYPE_AND_VERSION.get((event_type, schema_version))


def known_versions(event_type: str) -> list[int]:
    return sorted(version for (name, version) in _BY_TYPE_AND_VERSION if name == event_type)


def events_on(topic: Topic) -> tuple[type[Event], ...]:
    return tuple(model for model in ALL_EVENTS if model.topic is topic)
