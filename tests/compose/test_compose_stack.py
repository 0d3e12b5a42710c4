"""docker-compose.yml for real: build the three services from their Dockerfiles, `up --wait` (the broker on SASL_SSL
with ACLs, the secrets made by scripts/compose_secrets.py as `make up` makes them), run the demo's order
mix through the published broker port, each event sent by the principal allowed to write its topic, and check it ends exactly as `make demo` does, then SIGKILL the manufacturer
in mid-flow and check that nothing is lost or posted twice.

Where no Docker engine answers, scripts/container_engine.sh sets up Podman with its Docker API, and
scripts/local_images.py builds local stand-ins for the images the compose file names (`PYTHON_IMAGE`,
`KAFKA_IMAGE`); with both variables set already, those images are used as they are. The compose file is the one
users run: nothing is overridden but those two variables and the project name (unique per run).

The tests of this module share one stack (the `compose_run` fixture) and run in file order: the demo needs a
fresh deployment, so it comes before anything else places orders. Every step prints its duration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from backflush_shared.contracts import completions as c
from backflush_shared.contracts import master_data as md
from backflush_shared.contracts import orders as o
from backflush_shared.contracts.common import Flow
from backflush_shared.contracts.topics import Topic, TopicNames
from backflush_shared.demo import EXPECTED_CONSUMED, EXPECTED_END
from backflush_shared.deployment_view import (
    ComposeView,
    DistributorSnapshot,
    ManufacturerSnapshot,
    WarehouseSnapshot,
)
from backflush_shared.compose_secrets import generate, principal_security, secrets_dir
from backflush_shared.messaging.publish import publish
from backflush_shared.messaging.security import KafkaSecurity
from compose_support import (
    BOOTSTRAP_SERVERS,
    BROKER_PORT,
    HEALTH_PORTS,
    ROOT,
    ComposeStack,
    Timeline,
    new_project_name,
    ports_in_use,
    read_topic,
    remove_leftover_projects,
    remove_older_service_images,
    tail,
)
from compose_support import compose_command as find_compose_command

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1800)]

BUILD_TIMEOUT_S = 1200
#: `up --wait`: broker healthy, topics created by kafka-init, then the three services healthy.
UP_TIMEOUT_S = 300
#: The whole demo through the deployment (it reads the state with `compose exec`, a second or so a read).
DEMO_TIMEOUT_S = 600
#: The killed service started again until healthy.
RESTART_TIMEOUT_S = 120
#: From the last order placed to every order closed, the restart's rebalance included.
CLOSE_TIMEOUT_S = 240
#: Pre-product orders placed at once before the manufacturer is killed; as many again while it is down.
ORDERS_BEFORE_KILL = 12
#: Each of them and the calibration order: chairs, so that their racks and flushes are easy to count.
CHAIRS_PER_ORDER = 2
SOURCE = "/backflush/compose-test"
SAMPLE_DATA = ROOT / "services" / "manufacturer" / "sample_data"
TOPICS = TopicNames("")


def principal(name: str) -> KafkaSecurity:
    """The host client settings of one principal of the deployment (var/compose/principals/<name>.env)."""
    return principal_security(secrets_dir(ROOT) / "principals" / f"{name}.env")


@dataclass
class ComposeRun:
    """The stack of this module's tests, a view of its services' state, and the timeline they print."""

    stack: ComposeStack
    timeline: Timeline
    view: ComposeView

    def order(self, name: str, *, quantity: int = CHAIRS_PER_ORDER) -> o.OrderPlaced:
        return o.OrderPlaced(
            order_id=f"CT-{name}",
            order_holder="Acme Offices",
            flow=Flow.PRE,
            item="CHAIR-ERGO",
            quantity=Decimal(quantity),
            ship_to="12 Harbour Street, Rotterdam",
            due_date=dt.date.today() + dt.timedelta(days=14),
        )

    async def orders(self) -> dict[str, str]:
        """order id -> state, as the distributor sees it."""
        snapshot = await self.view.snapshot("distributor", DistributorSnapshot)
        return {row.order_id: row.state for row in snapshot.orders}

    async def consumed(self) -> dict[str, Decimal]:
        """Per component at MAIN, what the manufacturer's ledger says was consumed (net of reversals)."""
        snapshot = await self.view.snapshot("manufacturer", ManufacturerSnapshot)
        return {item: entry.consumed for item, entry in snapshot.component_stock.items()}

    async def racked(self) -> Decimal:
        """Units stored in the distribution-center racks."""
        snapshot = await self.view.snapshot("warehouse", WarehouseSnapshot)
        return sum((row.used for row in snapshot.locations if row.kind == "rack"), Decimal(0))

    async def wait_closed(self, order_ids: list[str], timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = await self.orders()
            if all(states.get(order_id) == "closed" for order_id in order_ids):
                return states
            await asyncio.sleep(1)
        open_ = {order_id: states.get(order_id) for order_id in order_ids if states.get(order_id) != "closed"}
        raise AssertionError(f"{len(open_)} of {len(order_ids)} orders not closed within {timeout:.0f} s: "
                             f"{open_}\n{self.stack.diagnostics()}")


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
    command = find_compose_command(env)
    remove_leftover_projects(command, env, terminal_write)
    busy = ports_in_use([BROKER_PORT, *HEALTH_PORTS.values()])
    if busy:
        pytest.fail(f"ports {busy} on this machine are taken; docker-compose.yml publishes 9092 and 8081-8083 "
                    "(another compose stack? `docker ps`)")
    stack = ComposeStack(new_project_name(), env, command, timeline)
    # What `make up` does before `docker compose up`: the .env with the passwords, the CA, the host clients' settings.
    generate(ROOT)
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
        yield ComposeRun(stack, timeline, ComposeView(stack.project_command(), env=env))
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
    assert states["kafka-acls"]["State"] == "exited" and states["kafka-acls"]["ExitCode"] == 0, states["kafka-acls"]
    for service in HEALTH_PORTS:
        assert (states[service]["State"], states[service]["Health"]) == ("running", "healthy"), states[service]


def test_every_service_answers_health_on_its_published_port(compose_run: ComposeRun) -> None:
    with compose_run.timeline.step("GET /health on 8081-8083"):
        statuses = {service: compose_run.stack.health_status(service) for service in HEALTH_PORTS}
    assert statuses == dict.fromkeys(HEALTH_PORTS, 204), statuses


async def test_kafka_init_created_every_topic(compose_run: ComposeRun) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP_SERVERS, **principal("cli").kafka_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    assert set(TOPICS.all()) <= existing, f"missing: {sorted(set(TOPICS.all()) - existing)}"


def test_the_demo_order_mix_ends_as_in_make_demo(compose_run: ComposeRun, tmp_path: Path) -> None:
    """`backflush demo --compose`, as a user runs it against their deployment: the seven orders and the run of
    `make demo` through the published broker port, the state read inside the containers, the same verdict and
    figures."""
    run = compose_run
    result_json = tmp_path / "demo.json"
    command = [sys.executable, "-m", "backflush_shared", "demo", "--compose",
               "--compose-command", shlex.join(run.stack.command + ["--file", str(ROOT / "docker-compose.yml"),
                                                                     "--project-directory", str(ROOT)]),
               "--compose-project", run.stack.project, "--bootstrap-servers", BOOTSTRAP_SERVERS,
               "--sample-data", str(SAMPLE_DATA), "--result-json", str(result_json),
               "--principals", str(secrets_dir(ROOT) / "principals")]
    with run.timeline.step("backflush demo --compose (the seven orders and the run of make demo)"):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False,
                                  cwd=ROOT, env={**run.stack.env, "COLUMNS": "120"})
        except subprocess.TimeoutExpired as exc:
            output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
            pytest.fail(f"the demo did not finish within {DEMO_TIMEOUT_S} s:\n{tail(output)}\n"
                        f"{run.stack.diagnostics()}")
    assert result_json.is_file(), f"the demo wrote no result (exit {done.returncode}):\n" \
                                  f"{tail(done.stdout + done.stderr, 60)}\n{run.stack.diagnostics()}"
    result = json.loads(result_json.read_text())
    for order_id, state in result["end_states"].items():
        took = result["took"].get(order_id)
        run.timeline.note(f"  {order_id:<9} {state:<10} {'-' if took is None else f'{took:.1f} s'} from placed")
    run.timeline.note(f"  demo: {result['seconds']:.1f} s in all; consumed "
                      + ", ".join(f"{item} {quantity}" for item, quantity in sorted(result["consumed"].items())))
    assert result["end_states"] == EXPECTED_END
    assert {item: Decimal(quantity) for item, quantity in result["consumed"].items()} == EXPECTED_CONSUMED
    assert done.returncode == 0 and result["ok"], tail(done.stdout + done.stderr, 60)


async def test_the_manufacturer_killed_in_mid_flow_loses_nothing_and_posts_nothing_twice(
    compose_run: ComposeRun,
) -> None:
    """With the warehouse stopped, a dozen pre-product orders at once; the manufacturer is SIGKILLed as soon as
    the first of their flushes is on the topic (the rest of the batch in its hands, no order allocated), a dozen
    more arrive while it is down, and both are started again. Every order must close, and the ledger and the
    racks must hold exactly one order's worth per order: a flush or a put-away applied twice (or lost) would show
    in the figures."""
    run, stack = compose_run, compose_run.stack
    run_id = stack.project.rsplit("-", 1)[-1]
    components = sorted((await run.view.snapshot("manufacturer", ManufacturerSnapshot)).component_stock)

    with run.timeline.step("receipt of 1,000 of every component, and one calibration order closed"):
        await publish(BOOTSTRAP_SERVERS, security=principal("planner"), events=[
            md.ComponentsReceived(receipt_id=f"CT-{run_id}", item=item, lot=f"CT-{run_id}-{item}",
                                  quantity=Decimal(1000))
            for item in components
        ], source=SOURCE)
        # Measured, not assumed: what one order of this size consumes and racks (the walkthrough's rounding rules
        # apply per flush, so N orders consume exactly N times this).
        consumed_before, racked_before = await run.consumed(), await run.racked()
        calibration = run.order(f"{run_id}-calibration")
        await publish(BOOTSTRAP_SERVERS, [calibration], source=SOURCE, security=principal("holder"))
        await run.wait_closed([calibration.order_id], timeout=CLOSE_TIMEOUT_S)
        consumed_after, racked_after = await run.consumed(), await run.racked()
    per_order = {item: consumed_after[item] - consumed_before[item] for item in components}
    assert any(per_order.values()), f"the calibration order consumed nothing: {per_order}"
    assert racked_after - racked_before == CHAIRS_PER_ORDER

    first_half = [run.order(f"{run_id}-{n:02d}") for n in range(ORDERS_BEFORE_KILL)]
    second_half = [run.order(f"{run_id}-{n:02d}") for n in range(ORDERS_BEFORE_KILL, 2 * ORDERS_BEFORE_KILL)]
    placed_ids = sorted(order.order_id for order in first_half + second_half)

    async def seen(event_type: str) -> set[str]:
        records = await read_topic(BOOTSTRAP_SERVERS, TOPICS(Topic.COMPLETIONS), security=principal("cli"))
        return {r.key for r in records if r.event_type == event_type and r.key in placed_ids}

    with run.timeline.step("warehouse stopped, so that the flow waits at the manufacturer (flushed, not racked)"):
        # Without this the whole flow can be through before a kill lands (it takes well under a second), and the
        # kill would test nothing; with it every order is certainly mid-flow when the manufacturer dies.
        stack.compose("stop", "warehouse", timeout=120)
    with run.timeline.step(f"{len(first_half)} orders placed; manufacturer SIGKILLed at its first flush of them; "
                           f"{len(second_half)} more placed while it is down"):
        await publish(BOOTSTRAP_SERVERS, first_half, source=SOURCE, security=principal("holder"))
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        while not await seen(c.ComponentsBackflushed.event_type):
            assert time.monotonic() < deadline, f"no flush of the placed orders\n{stack.diagnostics()}"
            await asyncio.sleep(0.05)
        stack.compose("kill", "--signal", "SIGKILL", "manufacturer")
        flushed_at_kill = len(await seen(c.ComponentsBackflushed.event_type))
        allocated_at_kill = len(await seen(c.GoodsAllocated.event_type))
        await publish(BOOTSTRAP_SERVERS, second_half, source=SOURCE, security=principal("holder"))
    after_kill = stack.services_state()["manufacturer"]
    run.timeline.note(f"  at the kill: {flushed_at_kill} flushed and {allocated_at_kill} allocated of the first "
                      f"{len(first_half)}; manufacturer {after_kill.get('State')} ({after_kill.get('Status')})")
    assert after_kill.get("State") == "exited" and after_kill.get("ExitCode") == 137, after_kill
    assert flushed_at_kill >= 1 and allocated_at_kill == 0, "the kill did not land mid-flow"

    with run.timeline.step("manufacturer and warehouse started again (same containers, same volumes) and healthy"):
        # `up --no-deps` starts the existing containers as they are; `start` would re-run kafka-init first (a
        # dependency), which costs half a minute of JVMs and proves nothing here.
        stack.compose("up", "--detach", "--no-deps", "--wait", "--wait-timeout", str(RESTART_TIMEOUT_S),
                      "manufacturer", "warehouse", timeout=RESTART_TIMEOUT_S + 60)
        stack.wait_healthy("manufacturer")
    assert stack.services_state()["manufacturer"].get("ID") == after_kill.get("ID"), \
        "compose re-created the manufacturer instead of starting it"

    with run.timeline.step(f"all {len(placed_ids)} orders closed"):
        await run.wait_closed(placed_ids, timeout=CLOSE_TIMEOUT_S)
    consumed_end, racked_end = await run.consumed(), await run.racked()
    consumed = {item: consumed_end[item] - consumed_after[item] for item in components}
    expected = {item: quantity * len(placed_ids) for item, quantity in per_order.items()}
    run.timeline.note(f"  consumed by the {len(placed_ids)} orders: "
                      + ", ".join(f"{item} {format(q, 'f')}" for item, q in consumed.items() if q)
                      + f"; racked {format(racked_end - racked_after, 'f')}")
    assert consumed == expected, "flushes lost or posted twice"
    assert racked_end - racked_after == CHAIRS_PER_ORDER * len(placed_ids), "put-aways lost or posted twice"

    with run.timeline.step("backflush audit inside each container"):
        for service in HEALTH_PORTS:
            # Each container holds only its own database (BACKFLUSH_DATABASE_URL there).
            audit = stack.compose("exec", "-T", service, "sh", "-c",
                                  f'backflush audit --only {service} --{service}-database "$BACKFLUSH_DATABASE_URL"',
                                  check=False, timeout=120)
            assert audit.returncode == 0, f"{service}: audit found a breach:\n{audit.stdout}{audit.stderr}"


async def test_the_published_broker_admits_no_one_without_credentials_and_allows_only_what_acls_say(
    compose_run: ComposeRun,
) -> None:
    """Through the published port: plaintext gets no answer, a wrong password is refused, a client without the
    CA does not trust the broker, and a holder's principal cannot write the manufacturer's topic."""
    from aiokafka.errors import TopicAuthorizationFailedError
    from pydantic import SecretStr
    from backflush_shared.errors import ConfigurationError, KafkaAuthenticationError, KafkaTlsError
    from backflush_shared.messaging.admin import wait_for_broker

    holder = principal("holder")
    with compose_run.timeline.step("plaintext, a wrong password, no CA: refused; a forged OrderClosed: denied"):
        with pytest.raises(ConfigurationError, match="cannot reach Kafka .* connecting with PLAINTEXT"):
            await wait_for_broker(BOOTSTRAP_SERVERS, 3, security=KafkaSecurity(security_protocol="PLAINTEXT"))
        with pytest.raises(KafkaAuthenticationError, match="refused the credentials"):
            await wait_for_broker(BOOTSTRAP_SERVERS, 20,
                                  security=holder.model_copy(update={"sasl_password": SecretStr("not-the-password")}))
        with pytest.raises(KafkaTlsError, match="CERTIFICATE_VERIFY_FAILED"):
            await wait_for_broker(BOOTSTRAP_SERVERS, 20, security=holder.model_copy(update={"ssl_cafile": None}))
        with pytest.raises(TopicAuthorizationFailedError):
            await publish(BOOTSTRAP_SERVERS, [c.OrderClosed(order_id="CT-FORGED", closed_by="distributor")],
                          source=SOURCE, security=holder)


def test_a_service_that_cannot_start_says_why_in_one_line_and_never_turns_healthy(compose_run: ComposeRun) -> None:
    """Last: it leaves the warehouse broken. A broker it cannot reach, and a bad setting given through the compose
    file's own variable, each stop the service with exit 2 and one line, and compose does not call it healthy."""
    run, stack = compose_run, compose_run.stack
    with run.timeline.step("distributor with an unreachable broker: `compose run`, exit 2 and one line"):
        # Not `run --rm`: Podman's API removes the container before compose reads its exit code (it reports 0).
        unreachable = stack.compose("run", "--no-deps", "-T", "-e", "BACKFLUSH_BOOTSTRAP_SERVERS=nowhere.invalid:9092",
                                    "-e", "BACKFLUSH_STARTUP_TIMEOUT_SECONDS=3", "distributor", check=False,
                                    timeout=120)
    output = unreachable.stdout + unreachable.stderr
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    run.timeline.note(f"  {errors[0] if errors else output}")
    assert unreachable.returncode == 2, output
    assert "Traceback" not in output
    assert len(errors) == 1 and "cannot reach Kafka at nowhere.invalid:9092 within 3 s" in errors[0], output

    with run.timeline.step("distributor with a wrong password: `compose run`, exit 2 and one line"):
        refused = stack.compose("run", "--no-deps", "-T", "-e", "BACKFLUSH_SASL_PASSWORD=not-the-password",
                                "distributor", check=False, timeout=120)
    output = refused.stdout + refused.stderr
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    run.timeline.note(f"  {errors[0] if errors else output}")
    assert refused.returncode == 2, output
    assert "Traceback" not in output and "not-the-password" not in output
    assert len(errors) == 1 and "refused the credentials" in errors[0] and "'distributor'" in errors[0], output

    with run.timeline.step("warehouse with BACKFLUSH_LOG_LEVEL=LOUD: `up --wait` fails, not healthy"):
        bad = stack.compose("up", "--detach", "--no-deps", "--wait", "--wait-timeout", "15", "warehouse",
                            variables={"BACKFLUSH_LOG_LEVEL": "LOUD"}, check=False, timeout=120)
    state = stack.services_state()["warehouse"]
    run.timeline.note(f"  compose up --wait: exit {bad.returncode}, "
                      f"{tail(bad.stdout + bad.stderr, 1)}; warehouse {state.get('State')}/{state.get('Health')} "
                      f"({state.get('Status')})")
    assert bad.returncode != 0, bad.stdout + bad.stderr
    assert state.get("Health") != "healthy", state
    logs = stack.compose("logs", "--no-color", "warehouse", timeout=60).stdout
    assert "Traceback" not in logs
    lines = {line.split("|", 1)[-1].strip() for line in logs.splitlines() if "error:" in line}
    assert lines == {"error: bad setting BACKFLUSH_LOG_LEVEL: Input should be 'DEBUG', 'INFO', 'WARNING' or "
                     "'ERROR'"}, logs[-2000:]
