"""The published message contracts: versioned pydantic models, one module per topic."""

from backflush_shared.contracts.base import Event
from backflush_shared.contracts.completions import *  # noqa: F403
from backflush_shared.contracts.envelope import Envelope
from backflush_shared.contracts.inventory_details import *  # noqa: F403
from backflush_shared.contracts.master_data import *  # noqa: F403
from backflush_shared.contracts.orders import *  # noqa: F403
from backflush_shared.contracts.registry import ALL_EVENTS, events_on, model_for
from backflush_shared.contracts.topics import Topic, TopicNames

__all__ = ["ALL_EVENTS", "Envelope", "Event", "Topic", "TopicNames", "events_on", "model_for"]
