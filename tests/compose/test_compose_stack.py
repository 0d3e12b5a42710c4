"""docker-compose.yml for real: build the three services from their Dockerfiles, `up --wait`, place orders through
the published broker port, SIGKILL a service in mid-flow, and check that nothing is lost or posted twice.

Where no Docker engine answers, scripts/container_engine.sh sets up Podman with its Docker API, and
scripts/local_images.py builds local stand-ins for the images the compose file names (`PYTHON_IMAGE`,
`KAFKA_IMAGE`); with both variables set already, those images are used as they are. The compose file is the one
users run: nothing is overridden but those two variables and the project name (unique per run).

The tests of this module share one stack (the `compose_run` fixture) and run in file order; add checks as further
test functions (before the SIGKILL test if they need an undisturbed stack). Every step prints its duration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.common import Flow
from backflush_shared.contracts.topics import Topic, TopicNames
from backflush_shared.messaging.publish import publish
from compose_support import (
    BOOTSTRAP_SERVERS,
    BROKER_PORT,
    HEALTH_PORTS,
    ComposeStack,
    Timeline,
    TopicRecord,
    compose_command,
    count,
    new_project_name,
    ports_in_use,
    read_topic,
    remove_leftover_projects,
    remove_older_service_images,
)

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1800)]

BUILD_TIMEOUT_S = 1200
#: `up --wait`: broker healthy, topics created by kafka-init, then the three services healthy.
UP_TIMEOUT_S = 300
#: The killed service started again until healthy.
RESTART_TIMEOUT_S = 120
#: From publishing an order to the distributor's `order.forwarded` on the topic.
FORWARD_TIMEOUT_S = 90
#: After every expected record has been seen, how long we keep looking for duplicates before counting.
SETTLE_S = 5.0
#: Orders published right before the distributor is killed with SIGKILL.
MID_FLOW_ORDERS = 10
SOURCE = "/backflush/compose-test"
TOPICS = TopicNames("")


@dataclass
class ComposeRun:
    """The stack of this module's tests, what they placed, and the timeline they print."""

    stack: ComposeStack
    timeline: Timeline
    placed: list[str] = field(default_factory=list)

    def order(self, name: str, *, flow: Flow = Flow.PRE, item: str = "CHAIR-ERGO", quantity: int = 2) -> o.OrderPlaced:
        return o.OrderPlaced(
            order_id=f"CT-{self.stack.project.rsplit('-', 1)[-1]}-{name}",
            order_holder="Acme Offices",
            flow=flow,
            item=item,
            quantity=Decimal(quantity),
            ship_to="12 Harbour Street, Rotterdam",
            due_date=dt.date.today() + dt.timedelta(days=14),
        )

    async def place(self, *orders: o.OrderPlaced) -> None:
        await publish(BOOTSTRAP_SERVERS, list(orders), source=SOURCE)
        self.placed.extend(order.order_id for order in orders)

    async def expect_once(self, order_ids: Sequence[str], event_type: str, *, topic: Topic = Topic.ORDERS,
                          timeout: float = FORWARD_TIMEOUT_S) -> list[TopicRecord]:
        """Wait until every order has a record of `event_type`, wait SETTLE_S more, then require exactly one each."""
        deadline = time.monotonic() + timeout
        while True:
            records = await read_topic(BOOTSTRAP_SERVERS, TOPICS(topic))
            missing = [order_id for order_id in order_ids if count(records, order_id, event_type) == 0]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {event_type} on {TOPICS(topic)} within {timeout:.0f} s for {missing}\n"
                    f"{self.stack.diagnostics()}"
                )
            await asyncio.sleep(0.5)
        await asyncio.sleep(SETTLE_S)
        records = await read_topic(BOOTSTRAP_SERVERS, TOPICS(topic))
        counts = {order_id: count(records, order_id, event_type) for order_id in order_ids}
        twice = {order_id: n for order_id, n in counts.items() if n != 1}
        assert not twice, f"{event_type} expected exactly once per order, seen: {twice}"
        return records


@pytest.fixture(scope="module")
def compose_run(
    container_engine: str, local_images: dict[str, str], terminal_write: Callable[[str], None]
) -> Iterator[ComposeRun]:
    timeline = Timeline(terminal_write)
    # The compose file as users run it: only the image variables and the engine come from this test.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COMPOSE_", "BACKFLUSH_")) and name not in ("KAFKA_IMAGE", "PYTHON_IMAGE")
    }
    env.update(local_images, DOCKER_HOST=container_engine)
    command = compose_command(env)
    remove_leftover_projects(command, env, terminal_write)
    busy = ports_in_use([BROKER_PORT, *HEALTH_PORTS.values()])
    if busy:
        pytest.fail(f"ports {busy} on this machine are taken; docker-compose.yml publishes 9092 and 8081-8083 "
                    "(another compose stack? `docker ps`)")
    stack = ComposeStack(new_project_name(), env, command, timeline)
    timeline.note(f"project {stack.project} with {' '.join(command)}; "
                  f"PYTHON_IMAGE={local_images['PYTHON_IMAGE']} KAFKA_IMAGE={local_images['KAFKA_IMAGE']}")
    try:
        with timeline.step("compose build (the three services from their Dockerfiles)"):
            stack.compose("build", timeout=BUILD_TIMEOUT_S)
        removed = remove_older_service_images(stack.project, env)
        if removed:
            timeline.note(f"removed the service images of earlier runs ({', '.join(removed)})")
        with timeline.step("compose up --wait (kafka healthy, kafka-init done, services healthy)"):
            stack.compose("up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_S), timeout=UP_TIMEOUT_S + 60)
        yield ComposeRun(stack, timeline)
    finally:
        try:
            with timeline.step("compose down --volumes"):
                stack.down()
        finally:
            timeline.note(timeline.summary())


def test_the_stack_is_up_as_the_compose_file_says(compose_run: ComposeRun) -> None:
    states = compose_run.stack.services_state()
    assert states["kafka"]["State"] == "running" and states["kafka"]["Health"] == "healthy", states["kafka"]
    assert states["kafka-init"]["State"] == "exited" and states["kafka-init"]["ExitCode"] == 0, states["kafka-init"]
    for service in HEALTH_PORTS:
        assert (states[service]["State"], states[service]["Health"]) == ("running", "healthy"), states[service]


def test_every_service_answers_health_on_its_published_port(compose_run: ComposeRun) -> None:
    with compose_run.timeline.step("GET /health on 8081-8083"):
        statuses = {service: compose_run.stack.health_status(service) for service in HEALTH_PORTS}
    assert statuses == dict.fromkeys(HEALTH_PORTS, 204), statuses


async def test_kafka_init_created_every_topic(compose_run: ComposeRun) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP_SERVERS)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    assert set(TOPICS.all()) <= existing, f"missing: {sorted(set(TOPICS.all()) - existing)}"


async def test_a_pre_flow_order_is_forwarded_once(compose_run: ComposeRun) -> None:
    order = compose_run.order("first")
    with compose_run.timeline.step(f"order {order.order_id} placed and forwarded once by the distributor"):
        await compose_run.place(order)
        await compose_run.expect_once([order.order_id], o.OrderForwarded.event_type)


async def test_the_distributor_killed_in_mid_flow_loses_and_repeats_nothing(compose_run: ComposeRun) -> None:
    run, stack = compose_run, compose_run.stack
    batch = [run.order(f"mid-{n}") for n in range(MID_FLOW_ORDERS)]
    with run.timeline.step(f"{len(batch)} orders placed, distributor killed with SIGKILL right after"):
        await run.place(*batch)
        stack.compose("kill", "--signal", "SIGKILL", "distributor")
    after_kill = stack.services_state()["distributor"]
    run.timeline.note(f"distributor after SIGKILL: {after_kill.get('State')} ({after_kill.get('Status')})")

    with run.timeline.step("distributor started again (same container, same volume) and healthy"):
        # `up --no-deps` starts the existing container as it is; `start` would re-run kafka-init first (a
        # dependency), which costs half a minute of JVMs and proves nothing here.
        stack.compose("up", "--detach", "--no-deps", "--wait", "--wait-timeout", str(RESTART_TIMEOUT_S),
                      "distributor", timeout=RESTART_TIMEOUT_S + 60)
        stack.wait_healthy("distributor")
    restarted = stack.services_state()["distributor"]
    assert restarted.get("ID") == after_kill.get("ID"), "compose re-created the distributor instead of starting it"
    assert stack.health_status("distributor") == 204

    second = run.order("after-restart")
    with run.timeline.step(f"order {second.order_id} after the restart; every order forwarded exactly once"):
        await run.place(second)
        # Every order of this run, the one placed before the kill included: nothing lost, nothing posted twice.
        records = await run.expect_once(run.placed, o.OrderForwarded.event_type)
    forwarded = sum(1 for record in records if record.event_type == o.OrderForwarded.event_type)
    run.timeline.note(f"{len(run.placed)} orders placed, {forwarded} order.forwarded records on {TOPICS(Topic.ORDERS)}")
    # The broker is this project's own (fresh): no record on it comes from anything but this module's orders.
    assert forwarded == len(run.placed)
