"""Talking to the broker as an administrator: is it there, and do our topics exist."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from backflush_shared.errors import ConfigurationError
from backflush_shared.messaging.security import ClientErrors, KafkaSecurity, refusal, resolve


async def wait_for_broker(bootstrap_servers: str, timeout_seconds: float, *,
                          security: KafkaSecurity | None = None) -> list[str]:
    """Wait until the broker answers a metadata request; return its topics.

    Raises `ConfigurationError` when it does not answer in time, and at once its subclasses
    `KafkaAuthenticationError` (credentials refused) and `KafkaTlsError` (handshake failed): waiting cures neither.
    `security` None: the environment's settings.
    """
    security = resolve(security)
    deadline = time.monotonic() + timeout_seconds
    errors = ClientErrors()
    # Each failed attempt would log an error; the outcome is ours to tell, once, from what the client saw.
    with _quiet("aiokafka"), errors.attached():
        return await _wait(bootstrap_servers, timeout_seconds, deadline, security, errors)


async def _wait(bootstrap_servers: str, timeout_seconds: float, deadline: float, security: KafkaSecurity,
                errors: ClientErrors) -> list[str]:
    last_error: BaseException | None = None
    options = security.kafka_options()
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5_000, **options)
        try:
            await asyncio.wait_for(admin.start(), timeout=max(1.0, deadline - time.monotonic()))
            return list(await admin.list_topics())
        except (KafkaError, OSError, TimeoutError) as error:
            last_error = error
            refused = refusal("\n".join([*errors.messages, f"{type(error).__name__}: {error}"]),
                              bootstrap_servers, security)
            if refused is not None:
                raise refused from None
        finally:
            try:
                await admin.close()
            except Exception:  # noqa: BLE001 - closing a client that never connected may fail too
                pass
        await asyncio.sleep(0.5)
    reason = str(last_error) if last_error else "no answer"
    # A broker that wants TLS or SASL closes a plaintext client's connection without a word: name what we tried.
    raise ConfigurationError(
        f"cannot reach Kafka at {bootstrap_servers} within {timeout_seconds:.0f} s, connecting with "
        f"{security.describe()} ({reason})"
    )


async def ensure_topics(bootstrap_servers: str, names: Iterable[str], *, partitions: int, replication: int,
                        security: KafkaSecurity | None = None) -> list[str]:
    """Create the topics that do not exist yet; return the ones created. `security` None: the environment's."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000,
                                **resolve(security).kafka_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(names) if name not in existing]
        if not missing:
            return []
        try:
            response = await admin.create_topics(
                [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in missing]
            )
        except TopicAlreadyExistsError:
            return missing  # another instance created them first
        # The broker answers per topic; a refusal (not authorized to create, a bad name) must not pass for success.
        refused = [(name, for_code(code)) for name, code, *_message in response.topic_errors
                   if code and for_code(code) is not TopicAlreadyExistsError]
        if refused:
            raise ConfigurationError(
                "the broker refused to create " + ", ".join(f"{name} ({error.__name__})" for name, error in refused)
                + " (with ACLs on, an administrator creates the topics: README \"Security\")"
            )
        return missing
    finally:
        await admin.close()


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    # Not the level: handlers attached to this logger (ClientErrors) must still see its records.
    logger = logging.getLogger(logger_name)
    propagate = logger.propagate
    logger.propagate = False
    try:
        yield
    finally:
        logger.propagate = propagate
