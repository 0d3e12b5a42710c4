"""Kafka offsets committed on a short timer, never past what the database holds.

Committing a batch's offsets is a round trip to the broker; at a batch or two of one event per hop it was 9-13 %
of a service's CPU. So a batch only notes, once its transaction committed, the position each of its partitions
may be committed at (past what was applied, at a record rewound to retry it); `OffsetCommits` commits the noted
positions every `interval` seconds, on partition revocation and at shutdown. A crash in between redelivers up to
an interval's records, which the inbox makes harmless (they change nothing and are accounted again).

A position is also held back to the first offset whose accounting is not yet committed (see
`DeferredRanges`): the audit must find a `consumed_ranges` row for every offset below a committed position.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
from aiokafka import TopicPartition

log = structlog.get_logger("backflush.offsets")

#: The first offset of a partition whose accounting is not committed yet, or None: (topic, partition) -> offset.
Floor = Callable[[str, int], int | None]


class OffsetCommits:
    """The positions each consumer may commit, and their commits: on a timer, at revocation, at shutdown."""

    def __init__(self, *, interval: float, floor: Floor | None = None,
                 before_commit: Callable[[], Awaitable[None]] | None = None) -> None:
        self.interval = interval
        self._floor = floor
        #: run before each timed commit: e.g. write the accounting that holds positions back (see `floor`)
        self._before_commit = before_commit
        # per consumer (a group per topic, so one consumer per topic); weak: a consume loop started again gets a
        # new consumer, and the old one's positions go with it
        self._noted: weakref.WeakKeyDictionary[Any, dict[TopicPartition, int]] = weakref.WeakKeyDictionary()
        self._committed: weakref.WeakKeyDictionary[Any, dict[TopicPartition, int]] = weakref.WeakKeyDictionary()
        self._task: asyncio.Task[None] | None = None
        # one commit at a time: two in flight could land in the other order and move a position back
        self._lock = asyncio.Lock()
        #: at shutdown: every batch commits at once, as nothing comes after it to do so
        self.immediate = False

    def note(self, consumer: Any, positions: dict[TopicPartition, int]) -> None:
        """A batch's transaction committed: each partition may be committed at its position."""
        self._noted.setdefault(consumer, {}).update(positions)

    async def commit(self, consumer: Any, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Commit the consumer's noted positions (of `partitions` only, if given) that moved since the last commit.

        Only partitions still assigned to it are committed: one revoked while its batch ran is another consumer's
        now (which reads it again from the last committed position)."""
        async with self._lock:
            await self._commit(consumer, partitions)

    async def _commit(self, consumer: Any, partitions: Iterable[TopicPartition] | None) -> None:
        noted = self._noted.get(consumer)
        if not noted:
            return
        committed = self._committed.setdefault(consumer, {})
        assigned = consumer.assignment()
        offsets: dict[TopicPartition, int] = {}
        for partition in (list(noted) if partitions is None else partitions):
            position = noted.get(partition)
            if position is None or partition not in assigned:
                continue
            floor = self._floor(partition.topic, partition.partition) if self._floor is not None else None
            if floor is not None and floor < position:
                position = floor  # the records from there are not accounted for in the database yet
            if position > committed.get(partition, -1):
                offsets[partition] = position
        if not offsets:
            return
        await consumer.commit(offsets)
        committed.update(offsets)

    async def commit_logged(self, consumer: Any) -> None:
        """`commit`, a failure logged: the next try commits the positions, or their next owner reads them again."""
        try:
            await self.commit(consumer)
        except Exception as error:  # noqa: BLE001 - e.g. a rebalance: the next owner reads from the last commit
            log.warning("could not commit offsets; they are committed later or read again",
                        error_type=type(error).__name__, error=str(error))

    async def commit_all(self) -> None:
        for consumer in list(self._noted):
            await self.commit_logged(consumer)

    async def revoked(self, consumer: Any, partitions: Iterable[TopicPartition]) -> None:
        """Partitions about to be taken away: commit what the database holds of them, then forget them.

        Accounting still held back (see `floor`) is not written here, in the middle of a rebalance: the next
        owner reads those records again, and they change nothing."""
        partitions = list(partitions)
        try:
            await self.commit(consumer, partitions)
        except Exception as error:  # noqa: BLE001 - the next owner then reads from the last commit: harmless
            log.warning("could not commit offsets of revoked partitions; their next owner reads them again",
                        error_type=type(error).__name__, error=str(error))
        for mapping in (self._noted.get(consumer), self._committed.get(consumer)):
            for partition in partitions:
                if mapping is not None:
                    mapping.pop(partition, None)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="offset-commits")

    async def stop(self) -> None:
        """At shutdown: stop the timer; from now on every batch commits its own offsets; commit what is noted."""
        self.immediate = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self._tick()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._tick()

    async def _tick(self) -> None:
        if self._before_commit is not None:
            try:
                await self._before_commit()
            except Exception as error:  # noqa: BLE001 - the positions it holds back wait for the next tick
                log.warning("could not write deferred accounting; its offsets wait", error_type=type(error).__name__,
                            error=str(error))
        await self.commit_all()


def positions_after(records: Iterable[Any]) -> dict[TopicPartition, int]:
    """Each partition's position past the given records (all applied, dead-lettered or accounted)."""
    positions: dict[TopicPartition, int] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        if record.offset + 1 > positions.get(partition, -1):
            positions[partition] = record.offset + 1
    return positions
