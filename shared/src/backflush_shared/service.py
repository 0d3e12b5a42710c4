"""One running service: its database, inbox, outbox relay, and the FastStream app that feeds it batches.

A service package describes itself with a `ServiceDefinition` (tables, migrations, handlers, the events it
publishes) and registers it under the `backflush.services` entry point; `backflush serve NAME` runs it.
"""

from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Union

import asyncio
import logging

import structlog
import typer
from faststream.asgi import AsgiFastStream, make_ping_asgi
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI
from pydantic import SkipValidation
from sqlalchemy import MetaData, Table

from backflush_shared.contracts.base import Event
from backflush_shared.contracts.topics import Topic, TopicNames
from backflush_shared.errors import ConfigurationError
from backflush_shared.messaging.admin import ensure_topics, wait_for_broker
from backflush_shared.messaging.processor import BatchProcessor, Handler
from backflush_shared.messaging.relay import OutboxRelay
from backflush_shared.persistence.database import Database
from backflush_shared.persistence.inbox import Inbox
from backflush_shared.persistence.migrations import upgrade_to_head_async
from backflush_shared.persistence.outbox import Outbox
from backflush_shared.settings import ServiceSettings

log = structlog.get_logger("backflush.service")

#: How often one record may fail (with the rest of its batch, then alone) before it is dead-lettered.
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    description: str
    metadata: MetaData
    inbox_table: Table
    outbox_table: Table
    migrations: Path
    build_handlers: Callable[["ServiceRuntime"], Mapping[type[Event], Handler]]
    publishes: tuple[type[Event], ...]
    cli: Callable[[], typer.Typer] | None = None
    version: str = "0.1.0"
    settings_class: type[ServiceSettings] = ServiceSettings
    #: Runs after migrations, before consuming: e.g. the warehouse lays out its racks from its settings.
    on_prepare: Callable[["ServiceRuntime"], Awaitable[None]] | None = None


def load_service(name: str) -> ServiceDefinition:
    """One installed service by name; raises `ConfigurationError` when it is not installed."""
    for entry in entry_points(group="backflush.services", name=name):
        return entry.load()  # type: ignore[no-any-return]
    installed = ", ".join(sorted(entry.name for entry in entry_points(group="backflush.services")))
    raise ConfigurationError(f"unknown service {name!r}; installed: {installed or 'none'}")


def load_services() -> dict[str, ServiceDefinition]:
    """Every installed service, by name."""
    services: dict[str, ServiceDefinition] = {}
    for entry in entry_points(group="backflush.services"):
        definition = entry.load()
        services[definition.name] = definition
    return dict(sorted(services.items()))


@dataclass
class ServiceRuntime:
    """Everything one instance of a service holds while it runs."""

    definition: ServiceDefinition
    settings: ServiceSettings
    topics: TopicNames
    database: Database
    inbox: Inbox
    outbox: Outbox
    relay: OutboxRelay
    processor: BatchProcessor | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    _failures: dict[tuple[str, int, int], int] = field(default_factory=lambda: defaultdict(int))

    @classmethod
    def create(cls, definition: ServiceDefinition, settings: ServiceSettings) -> "ServiceRuntime":
        topics = TopicNames(settings.topic_prefix)
        database = Database(settings.database_url)
        outbox = Outbox(definition.outbox_table, topics, source=f"/backflush/{definition.name}")
        relay = OutboxRelay(database, outbox, settings.bootstrap_servers, client_id=f"backflush-{definition.name}")
        runtime = cls(definition, settings, topics, database, Inbox(definition.inbox_table), outbox, relay)
        runtime.processor = BatchProcessor(
            service=definition.name,
            database=database,
            inbox=runtime.inbox,
            outbox=outbox,
            topics=topics,
            handlers=definition.build_handlers(runtime),
            max_value_bytes=settings.max_value_bytes,
            on_committed=relay.wake,
        )
        return runtime

    async def prepare(self) -> None:
        """Before consuming: the schema is current, the broker answers, the topics exist."""
        await upgrade_to_head_async(self.settings.database_url, self.definition.migrations)
        await wait_for_broker(self.settings.bootstrap_servers, self.settings.startup_timeout_seconds)
        created = await ensure_topics(
            self.settings.bootstrap_servers,
            self.topics.all(),
            partitions=self.settings.topic_partitions,
            replication=self.settings.topic_replication,
        )
        if created:
            log.info("topics created", topics=created)
        if self.definition.on_prepare is not None:
            await self.definition.on_prepare(self)

    async def consume(self, records: Sequence[Any], message: KafkaMessage) -> None:
        """Apply one batch, then commit its offsets; on failure rewind, back off, and retry."""
        assert self.processor is not None
        keys = [(record.topic, record.partition, record.offset) for record in records]
        try:
            if any(self._failures.get(key) for key in keys):
                await self._one_by_one(records)
            else:
                result = await self.processor.process(records)
                if result.dead_lettered or result.duplicates:
                    log.info("batch applied", records=len(records), applied=result.applied,
                             duplicates=result.duplicates, dead_lettered=result.dead_lettered)
        except Exception as error:  # noqa: BLE001 - anything unexpected is retried, never swallowed
            attempts = 0
            for key in keys:
                self._failures[key] += 1
                attempts = max(attempts, self._failures[key])
            delay = min(0.1 * 2**attempts, 5.0)
            log.error("batch failed; rewinding to retry", error_type=type(error).__name__, error=str(error),
                      records=len(records), attempt=attempts, retry_in_seconds=delay, exc_info=True)
            await message.nack()
            await asyncio.sleep(delay)
            return
        await message.ack()
        for key in keys:
            self._failures.pop(key, None)

    async def _one_by_one(self, records: Sequence[Any]) -> None:
        # A batch failed before: apply its records alone so that one poisonous record cannot hold back the rest.
        assert self.processor is not None
        for record in records:
            key = (record.topic, record.partition, record.offset)
            try:
                await self.processor.process([record], attempts=self._failures.get(key, 0) + 1)
            except Exception as error:
                self._failures[key] += 1
                if self._failures[key] < MAX_ATTEMPTS:
                    raise
                log.error("record dead-lettered after repeated failures", topic=record.topic,
                          partition=record.partition, offset=record.offset, attempts=self._failures[key],
                          error_type=type(error).__name__, error=str(error))
                await self.processor.dead_letter_unprocessable(record, error, self._failures[key])
            self._failures.pop(key, None)


async def _records(message: Any) -> Any:
    # Our own codec reads each record (headers + value) so that one bad record cannot fail the whole batch.
    return message.raw_message


def build_app(definition: ServiceDefinition, settings: ServiceSettings) -> tuple[AsgiFastStream, ServiceRuntime]:
    """The FastStream app of one service instance, with GET /health pinging the broker."""
    runtime = ServiceRuntime.create(definition, settings)
    broker = KafkaBroker(
        settings.bootstrap_servers,
        client_id=f"backflush-{definition.name}",
        logger=logging.getLogger(f"backflush.{definition.name}.broker"),
        graceful_timeout=20.0,
        enable_idempotence=True,
    )
    assert runtime.processor is not None
    handled_by_topic: dict[Topic, list[type[Event]]] = defaultdict(list)
    for model in runtime.processor.handlers:
        handled_by_topic[model.topic].append(model)
    for topic in Topic:
        if handled_by_topic.get(topic):
            _subscribe(broker, runtime, topic, handled_by_topic[topic])

    published_by_topic: dict[Topic, list[type[Event]]] = defaultdict(list)
    for model in definition.publishes:
        published_by_topic[model.topic].append(model)
    for topic, models in published_by_topic.items():
        # Declared for the AsyncAPI document only: events leave through the outbox relay, never through these.
        broker.publisher(
            runtime.topics(topic),
            title=f"{runtime.topics(topic)}.published",
            description=f"Published by the {definition.name} through its outbox: "
            + ", ".join(model.__name__ for model in models),
            schema=Union[tuple(models)],  # type: ignore[valid-type]  # noqa: UP007
        )

    app = AsgiFastStream(
        broker,
        asgi_routes=[("/health", make_ping_asgi(broker, timeout=5.0, description="204 when the broker answers"))],
        specification=asyncapi_of(definition, broker),
        logger=logging.getLogger(f"backflush.{definition.name}.app"),
    )
    app.on_startup(runtime.prepare)
    app.after_startup(runtime.relay.start)
    app.after_shutdown(runtime.relay.stop)
    app.after_shutdown(runtime.database.close)
    return app, runtime


def asyncapi_of(definition: ServiceDefinition, broker: KafkaBroker) -> AsyncAPI:
    return AsyncAPI(
        broker,
        title=f"backflush {definition.name}",
        version=definition.version,
        description=definition.description,
        schema_version="3.0.0",
    )


def _subscribe(broker: KafkaBroker, runtime: ServiceRuntime, topic: Topic, models: list[type[Event]]) -> None:
    async def handle(events: Any, message: KafkaMessage) -> None:
        await runtime.consume(events, message)

    # The annotation documents the topic's events in the AsyncAPI document; SkipValidation because our codec,
    # not FastStream, reads each record (a bad one is dead-lettered, not allowed to fail the batch).
    handle.__annotations__ = {
        "events": SkipValidation[list[Union[tuple(models)]]],  # type: ignore[valid-type]  # noqa: UP007
        "message": KafkaMessage,
        "return": None,
    }
    handle.__name__ = f"on_{topic.name.lower()}"
    handle.__qualname__ = handle.__name__
    handle.__doc__ = f"The {runtime.definition.name} applies: " + ", ".join(model.__name__ for model in models)
    broker.subscriber(
        runtime.topics(topic),
        batch=True,
        group_id=f"{runtime.settings.group_id}.{topic.value}",
        ack_policy=AckPolicy.MANUAL,  # offsets are committed only after the batch's transaction committed
        decoder=_records,
        max_records=runtime.settings.max_batch,
        auto_offset_reset="earliest",  # a new group must read what was published before it joined
        title=f"{runtime.topics(topic)}.consumed",
    )(handle)


async def serve(definition: ServiceDefinition, settings: ServiceSettings) -> None:
    """Run until SIGTERM or SIGINT; configuration errors stop start-up with one clear line."""
    app, _runtime = build_app(definition, settings)  # a bad database URL stops us here, before any waiting
    await wait_for_broker(settings.bootstrap_servers, settings.startup_timeout_seconds)
    await app.run(
        log_level=logging.getLevelName(settings.log_level),
        # log_config None: uvicorn logs through our JSON handlers instead of installing its own
        run_extra_options={"host": settings.health_host, "port": settings.health_port, "log_config": None},
    )


__all__ = ["ConfigurationError", "ServiceDefinition", "ServiceRuntime", "build_app", "load_services", "serve"]
