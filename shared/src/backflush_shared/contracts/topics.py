"""The topics of the system, who writes each, and their dead-letter twins.

Each topic has exactly one writer, a kind of principal (README "Security"): the broker's ACLs let only that
principal write it, so an event's topic tells who said it. The three kinds of message of DESIGN.md (orders,
inventory details, completions) are each split by writer; `orders` stays the distributor's, `completions` and
`inventory-details` the manufacturer's, and what comes from outside arrives on intake topics of its own.
"""

from __future__ import annotations

from enum import StrEnum


class Writer(StrEnum):
    """The kinds of principal that write topics: the three services, and the outside parties' intakes."""

    MANUFACTURER = "manufacturer"
    DISTRIBUTOR = "distributor"
    WAREHOUSE = "warehouse"
    ORDER_HOLDER = "order-holder"  # orders, cancellation requests, call-offs and signatures of order holders
    SHOP_FLOOR = "shop-floor"  # completions, hand issues and outside inspection results
    PLANNER = "planner"  # master data, component receipts, retries of parked backflushes

    @property
    def source(self) -> str | None:
        """The `ce_source` this writer's events carry when it is a service; None for an intake (any source)."""
        return service_source(self.value) if self in SERVICES else None


def service_source(service: str) -> str:
    """The `ce_source` a service publishes with (its outbox relay) and consumers hold its topics' events to."""
    return f"/backflush/{service}"


#: The writers that are our own services; the others are intakes whose principals are people's clients and tools.
SERVICES: frozenset[Writer] = frozenset({Writer.MANUFACTURER, Writer.DISTRIBUTOR, Writer.WAREHOUSE})


class Topic(StrEnum):
    """The logical topics; a deployment may put a prefix in front of each name."""

    ORDERS = "orders"
    ORDERS_INTAKE = "orders.intake"
    INVENTORY_DETAILS = "inventory-details"
    INVENTORY_DETAILS_WAREHOUSE = "inventory-details.warehouse"
    INVENTORY_DETAILS_DISTRIBUTOR = "inventory-details.distributor"
    COMPLETIONS = "completions"
    COMPLETIONS_WAREHOUSE = "completions.warehouse"
    COMPLETIONS_DISTRIBUTOR = "completions.distributor"
    COMPLETIONS_SHOP_FLOOR = "completions.shop-floor"
    MASTER_DATA = "master-data"

    @property
    def writer(self) -> Writer:
        """The one kind of principal that may write this topic."""
        return _WRITERS[self]

    @property
    def dead_letter(self) -> str:
        """The name of this topic's dead-letter twin (without prefix)."""
        return f"{self.value}.dlq"


_WRITERS: dict[Topic, Writer] = {
    Topic.ORDERS: Writer.DISTRIBUTOR,
    Topic.ORDERS_INTAKE: Writer.ORDER_HOLDER,
    Topic.INVENTORY_DETAILS: Writer.MANUFACTURER,
    Topic.INVENTORY_DETAILS_WAREHOUSE: Writer.WAREHOUSE,
    Topic.INVENTORY_DETAILS_DISTRIBUTOR: Writer.DISTRIBUTOR,
    Topic.COMPLETIONS: Writer.MANUFACTURER,
    Topic.COMPLETIONS_WAREHOUSE: Writer.WAREHOUSE,
    Topic.COMPLETIONS_DISTRIBUTOR: Writer.DISTRIBUTOR,
    Topic.COMPLETIONS_SHOP_FLOOR: Writer.SHOP_FLOOR,
    Topic.MASTER_DATA: Writer.PLANNER,
}


def topics_written_by(writer: Writer) -> tuple[Topic, ...]:
    return tuple(topic for topic in Topic if topic.writer is writer)


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
