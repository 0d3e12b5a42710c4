"""A consumer whose loop ended on its own (FastStream returns from it when aiokafka says the consumer stopped) is
started again; one that runs, or that was stopped on purpose, is left alone."""

from __future__ import annotations

import asyncio
from typing import Any

from backflush_shared.messaging.consumer_watch import ConsumerWatch, ended_on_its_own, start_until_connected


class FakeSubscriber:
    def __init__(self, name: str) -> None:
        self.name = name
        self.tasks: list[asyncio.Task[Any]] = []
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        self.tasks = [asyncio.create_task(asyncio.sleep(3600))]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks = []


async def ended() -> None:
    return None  # FastStream's loop on ConsumerStoppedError: a plain return


async def test_a_subscriber_whose_loop_returned_is_started_again_and_the_others_are_left_alone() -> None:
    running, stopped_by_itself, cancelled = FakeSubscriber("running"), FakeSubscriber("ended"), FakeSubscriber("x")
    for subscriber in (running, stopped_by_itself, cancelled):
        await subscriber.start()
    stopped_by_itself.tasks = [asyncio.create_task(ended())]
    cancelled.tasks[0].cancel()
    await asyncio.sleep(0)
    assert [ended_on_its_own(s) for s in (running, stopped_by_itself, cancelled)] == [False, True, False]

    watch = ConsumerWatch(lambda: [running, stopped_by_itself, cancelled], name_of=lambda s: s.name)
    assert await watch.check() == 1
    assert (running.starts, stopped_by_itself.starts, cancelled.starts) == (1, 2, 1)
    assert not stopped_by_itself.tasks[0].done()  # consuming again
    assert await watch.check() == 0
    for subscriber in (running, stopped_by_itself, cancelled):
        await subscriber.stop()


async def test_the_watch_runs_on_its_own_and_stops_when_asked() -> None:
    subscriber = FakeSubscriber("ended")
    subscriber.tasks = [asyncio.create_task(ended())]
    watch = ConsumerWatch(lambda: [subscriber], interval_seconds=0.01)
    await watch.start()
    for _ in range(100):
        if subscriber.starts:
            break
        await asyncio.sleep(0.01)
    await watch.stop()
    assert subscriber.starts == 1 and watch.restarts == 1
    await subscriber.stop()


class SlowStartingSubscriber(FakeSubscriber):
    """A subscriber whose start is still connecting when a stop comes (FastStream clears its consumer on stop)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.connecting = asyncio.Event()
        self.connected = asyncio.Event()
        self.consumer: object | None = None
        self.loop_started_without_consumer = False

    async def start(self) -> None:
        self.consumer = object()
        self.connecting.set()
        await self.connected.wait()
        if self.consumer is None:
            self.loop_started_without_consumer = True  # FastStream: "You should start subscriber at first."
        await super().start()

    async def stop(self) -> None:
        self.consumer = None
        await super().stop()


async def test_a_stop_during_a_start_waits_for_it_and_leaves_nothing_running() -> None:
    subscriber = SlowStartingSubscriber("slow")
    start_until_connected(subscriber, name="slow")
    starting = asyncio.create_task(subscriber.start())
    await subscriber.connecting.wait()
    stopping = asyncio.create_task(subscriber.stop())
    await asyncio.sleep(0.01)
    assert not stopping.done(), "the stop did not wait for the start in progress"
    subscriber.connected.set()
    await asyncio.wait_for(asyncio.gather(starting, stopping), timeout=5)
    assert not subscriber.loop_started_without_consumer
    assert subscriber.tasks == [] and subscriber.consumer is None
