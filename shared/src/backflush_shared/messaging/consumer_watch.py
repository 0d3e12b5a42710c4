"""Keeps every topic's consumer running: a subscriber whose consume loop ended on its own is started again.

FastStream restarts a consume loop that raised, but not one that returned: its aiokafka loop returns when the
consumer reports itself stopped (`ConsumerStoppedError`), which a broker restart can bring about. The service
then stays up and healthy while one of its topics is read by no one, and every order waiting on that topic waits
for ever (seen once in the crash test: the manufacturer stopped reading `master-data` as the broker came back, so
a receipt never released the parked flushes). Restarting the subscriber joins its consumer group again and
resumes from the committed offsets, so nothing is skipped and the inbox absorbs what is read twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import structlog
from aiokafka.errors import KafkaConnectionError

log = structlog.get_logger("backflush.consumers")


class Subscriber(Protocol):
    tasks: list[asyncio.Task[Any]]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def ended_on_its_own(subscriber: Subscriber) -> bool:
    """Whether the subscriber's consume loop is over although nobody stopped it (stopping cancels it)."""
    tasks = getattr(subscriber, "tasks", None)
    return bool(tasks) and all(task.done() and not task.cancelled() for task in tasks)


class ConsumerWatch:
    def __init__(self, subscribers: Callable[[], Iterable[Subscriber]], *, interval_seconds: float = 2.0,
                 name_of: Callable[[Subscriber], str] = repr) -> None:
        self.subscribers = subscribers
        self.interval_seconds = interval_seconds
        self.name_of = name_of
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consumer-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> int:
        """Start again every subscriber whose loop ended on its own; returns how many."""
        restarted = 0
        for subscriber in list(self.subscribers()):
            if not ended_on_its_own(subscriber):
                continue
            log.error("a consumer stopped on its own; starting it again", subscriber=self.name_of(subscriber))
            await subscriber.stop()
            await subscriber.start()
            restarted += 1
        self.restarts += restarted
        return restarted

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await self.check()
            except Exception as error:  # noqa: BLE001 - the watch must outlive a failed restart; it tries again
                log.error("starting a stopped consumer again failed; trying again", error=str(error),
                          error_type=type(error).__name__)


#: How long a subscriber waits between attempts to start while the broker cannot be reached, at most.
START_RETRY_MAX_SECONDS = 5.0


def start_until_connected(subscriber: Subscriber, *, name: str, first_retry_seconds: float = 0.5) -> None:
    """Make `subscriber.start` keep trying while the broker cannot be reached, instead of failing start-up; and
    make a stop wait for a start in progress.

    The service checks the broker before it starts its consumers, but the broker may go away while they start (a
    broker restart right after a service's own restart, seen in the crash test). aiokafka then raises out of the
    consumer's bootstrap, FastStream abandons start-up and begins to shut down, and that shutdown never ends: the
    consumers already started keep heartbeating a coordinator that is being closed. The process then neither
    works nor exits. Retried here, the start waits for the broker like every other client of ours does.

    A SIGTERM may also come while a consumer is starting (the health check answers before every consumer runs):
    FastStream's stop then cleared the consumer under the start, whose consume loop began with none and failed
    with a traceback. A stop now waits for the attempt in progress, and no attempt begins once it was asked.
    """
    original_start, original_stop = subscriber.start, subscriber.stop
    turn = asyncio.Lock()  # one of start or stop at a time
    stopping = False

    async def start() -> None:
        nonlocal stopping
        stopping = False
        delay = first_retry_seconds
        while True:
            async with turn:
                if stopping:
                    return
                try:
                    await original_start()
                    return
                except KafkaConnectionError as error:
                    log.warning("a consumer could not reach the broker as it started; trying again",
                                subscriber=name, error=str(error), retry_in_seconds=delay)
                # the consumer that failed to bootstrap is dropped before the next attempt builds a new one
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(original_stop(), timeout=10)
            await asyncio.sleep(delay)
            delay = min(delay * 2, START_RETRY_MAX_SECONDS)

    async def stop() -> None:
        nonlocal stopping
        stopping = True
        async with turn:
            await original_stop()

    subscriber.start = start  # type: ignore[method-assign]
    subscriber.stop = stop  # type: ignore[method-assign]
