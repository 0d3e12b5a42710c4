"""Talking to the broker as an administrator: is it there, and do our topics exist."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Iterator

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from backflush_shared.errors import ConfigurationError


async def wait_for_broker(bootstrap_servers: str, timeout_seconds: float) -> list[str]:
    """Wait until the broker answers a metadata request; return its topics. Raises `ConfigurationError`."""
    deadline = time.monotonic() + timeout_seconds
    with _quiet("aiokafka"):  # each failed attempt would log an error; the outcome is ours to tell, once
        return await _wait(bootstrap_servers, timeout_seconds, deadline)


async def _wait(bootstrap_servers: str, timeout_seconds: float, deadline: float) -> list[str]:
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5_000)
        try:
            await asyncio.wait_for(admin.start(), timeout=max(1.0, deadline - time.monotonic()))
            return list(await admin.list_topics())
        except (KafkaError, OSError, TimeoutError) as error:
            last_error = error
        finally:
            try:
                await admin.close()
            except Exception:  # noqa: BLE001 - closing a client that never connected may fail too
                pass
        await asyncio.sleep(0.5)
    reason = str(last_error) if last_error else "no answer"
    raise ConfigurationError(
        f"cannot reach Kafka at {bootstrap_servers} within {timeout_seconds:.0f} s ({reason})"
    )


async def ensure_topics(bootstrap_servers: str, names: Iterable[str], *, partitions: int, replication: int) -> list[str]:
    """Create the topics that do not exist yet; return the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(names) if name not in existing]
        if not missing:
            return []
        try:
            await admin.create_topics(
                [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in missing]
            )
        except TopicAlreadyExistsError:
            pass  # another instance created them first
        return missing
    finally:
        await admin.close()


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
