"""A consumer that cannot reach the broker as it starts keeps trying, and consumes once the broker is back.

Seen in the crash test: the broker went away just after a restarted service checked it, while its consumers were
starting. aiokafka raised out of a consumer's bootstrap, FastStream abandoned start-up, and its shutdown never ended:
the process neither worked nor exited. Here the bootstrap address is a proxy to the real broker that refuses
connections at first (the broker "away"), then lets them through.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from support.broker import Broker

from backflush_shared.messaging.consumer_watch import start_until_connected

pytestmark = [pytest.mark.kafka]


class BootstrapProxy:
    """A TCP proxy on a fixed local port to the broker's bootstrap address: closed, it refuses connections."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def test_a_consumer_started_while_the_broker_is_away_keeps_trying_and_then_consumes(kafka: Broker) -> None:
    topic = f"start-while-away-{uuid.uuid4().hex[:8]}"
    proxy = BootstrapProxy(kafka.bootstrap_servers)
    await proxy.open()
    broker = KafkaBroker(proxy.address)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    subscriber = broker.subscriber(topic, group_id=f"g-{topic}", auto_offset_reset="earliest")

    @subscriber
    async def handle(body: bytes) -> None:
        received.put_nowait(body)

    start_until_connected(subscriber, name=topic, first_retry_seconds=0.2)
    await broker.connect()  # the broker answered the service's check ...
    await proxy.close()  # ... and went away before its consumers started
    starting = asyncio.create_task(broker.start())
    try:
        await asyncio.sleep(2.0)
        assert not starting.done(), "start-up gave up (or finished) while the broker could not be reached"
        await proxy.open()  # the broker is back
        await asyncio.wait_for(starting, timeout=60)

        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"after the broker came back")
        finally:
            await producer.stop()
        assert await asyncio.wait_for(received.get(), timeout=60) == b"after the broker came back"
    finally:
        if not starting.done():
            starting.cancel()
        await asyncio.wait_for(broker.stop(), timeout=30)
        await proxy.close()
