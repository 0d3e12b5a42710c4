"""The topics of the system and their dead-letter twins."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    """The logical topics of DESIGN.md; a deployment may put a prefix in front of each name."""

    ORDERS = "orders"
    INVENTORY_DETAILS = "inventory-details"
    COMPLETIONS = "completions"
    MASTER_DATA = "master-data"

    @property
    def dead_letter(self) -> str:
        """The name of this topic's dead-letter twin (without prefix)."""
        return f"{self.value}.dlq"


DEAD_LETTER_SUFFIX = ".dlq"


class TopicNames:
    """Resolves logical topics to the names used on one broker, with the deployment's prefix."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def __call__(self, topic: Topic) -> str:
        return f"{self.prefix}{topic.value}"

    def dead_letter(self, topic: Topic | str) -> str:
        name = topic.value if isinstance(topic, Topic) else topic
        if name.startswith(self.prefix):
            name = name[len(self.prefix) :]
        return f"{self.prefix}{name}{DEAD_LETTER_SUFFIX}"

    def logical(self, name: str) -> Topic | None:
        """The logical topic of a physical name, or None for a name that is not one of ours."""
        if not name.startswith(self.prefix):
            return None
        try:
            return Topic(name[len(self.prefix) :])
        except ValueError:
            return None

    def all(self) -> list[str]:
        """Every topic the system uses, dead-letter twins included."""
        names: list[str] = []
        for topic in Topic:
            names.append(self(topic))
            names.append(self.dead_letter(topic))
        return names
