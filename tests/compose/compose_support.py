"""Helpers of the container tests: the engine, the local images, a compose project, timed steps, topic reads.

The engine and the images come from the two project scripts (scripts/container_engine.sh, scripts/local_images.py)
so that what the tests run is what a person runs by hand (`make engine-up`, then `docker compose ...`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENGINE_SCRIPT = ROOT / "scripts" / "container_engine.sh"
IMAGES_SCRIPT = ROOT / "scripts" / "local_images.py"

#: The services built from this repository and the host port of each one's /health (docker-compose.yml).
HEALTH_PORTS: dict[str, int] = {"manufacturer": 8081, "distributor": 8082, "warehouse": 8083}
#: Every image compose builds from this repository: the services' and the ACL job's (named <project>-<service>).
BUILT_SERVICES: tuple[str, ...] = (*HEALTH_PORTS, "kafka-acls")
#: The broker's port published for clients on the host (PLAINTEXT_HOST, advertised as localhost:9092).
BROKER_PORT = 9092
BOOTSTRAP_SERVERS = f"localhost:{BROKER_PORT}"
#: Every compose project of these tests is named so: `<prefix><pid>-<random>` (a dead pid marks a leftover).
PROJECT_PREFIX = "backflush-ct-"

# Errors of Podman's Docker API (or the network under it) that a second attempt usually gets past.
TRANSIENT_ERRORS = (
    "database is locked",
    "connection reset by peer",
    "unexpected eof",
    "error reading from server",
    "i/o timeout",
    "context deadline exceeded",
    "resource temporarily unavailable",
    "error creating overlay mount",
    "device or resource busy",
)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# ------------------------------------------------------------------------------------------------ timeline


class Timeline:
    """Prints each step's duration as it ends, straight to the terminal (output capture is bypassed)."""

    def __init__(self, write: Callable[[str], None], prefix: str = "[compose]") -> None:
        self._write = write
        self.prefix = prefix
        self.steps: list[tuple[str, float, bool]] = []

    def note(self, message: str) -> None:
        self._write(f"{self.prefix} {message}")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        ok = False
        try:
            yield
            ok = True
        finally:
            took = time.monotonic() - started
            self.steps.append((name, took, ok))
            self.note(f"{name}: {took:.1f} s{'' if ok else '  FAILED'}")

    def summary(self) -> str:
        total = sum(took for _name, took, _ok in self.steps)
        return f"{len(self.steps)} steps, {total:.1f} s in all"


# ---------------------------------------------------------------------------------------- engine and images


def ensure_engine(timeout: float = 900) -> str:
    """Run `container_engine.sh start` (a no-op where Docker answers); return the DOCKER_HOST to use."""
    try:
        done = subprocess.run(["bash", str(ENGINE_SCRIPT), "start"], capture_output=True, text=True,
                              timeout=timeout, check=False, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{ENGINE_SCRIPT.name} start did not finish within {timeout:.0f} s") from exc
    match = re.search(r"^export DOCKER_HOST=(\S+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise AssertionError(
            f"{ENGINE_SCRIPT.name} start failed (exit {done.returncode}); no container engine for this test:\n"
            f"{tail(done.stderr + done.stdout)}"
        )
    return match.group(1)


def engine_script(command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`container_engine.sh status|stop`."""
    return subprocess.run(["bash", str(ENGINE_SCRIPT), command], capture_output=True, text=True, timeout=timeout,
                          check=False, cwd=ROOT)


def engine_started_by_script() -> bool:
    """Whether a Podman API service started by container_engine.sh runs now."""
    return "podman API service: running" in engine_script("status").stdout


def ensure_images(docker_host: str, timeout: float = 1500) -> dict[str, str]:
    """PYTHON_IMAGE and KAFKA_IMAGE for the compose file: the environment's when both are set (say, the official
    images on a machine with Docker Hub), else the local stand-ins built (or found cached) by local_images.py."""
    given = {name: os.environ.get(name, "").strip() for name in ("PYTHON_IMAGE", "KAFKA_IMAGE")}
    if all(given.values()):
        return given
    env = {**os.environ, "DOCKER_HOST": docker_host}
    try:
        done = subprocess.run([sys.executable, str(IMAGES_SCRIPT)], capture_output=True, text=True, timeout=timeout,
                              check=False, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{IMAGES_SCRIPT.name} did not finish within {timeout:.0f} s") from exc
    images = dict(re.findall(r"^export (PYTHON_IMAGE|KAFKA_IMAGE)=(\S+)$", done.stdout, re.MULTILINE))
    if done.returncode != 0 or set(images) != {"PYTHON_IMAGE", "KAFKA_IMAGE"}:
        raise AssertionError(
            f"{IMAGES_SCRIPT.name} failed (exit {done.returncode}):\n{tail(done.stderr + done.stdout)}"
        )
    return images


def compose_command(env: Mapping[str, str]) -> list[str]:
    """`docker compose` when the docker client has it (container_engine.sh links it), else the venv's binary."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30,
                               check=False, env=dict(env))
        if probe.returncode == 0:
            return ["docker", "compose"]
    binary = Path(sysconfig.get_path("scripts")) / "docker-compose"
    if binary.is_file():
        return [str(binary)]
    raise AssertionError("no Docker Compose v2: neither `docker compose` nor the venv's docker-compose (make install)")


# ------------------------------------------------------------------------------------------------ compose


def new_project_name() -> str:
    return f"{PROJECT_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class ComposeStack:
    """One compose project of docker-compose.yml, driven through the compose CLI."""

    project: str
    env: dict[str, str]
    command: list[str]
    timeline: Timeline
    log: list[str] = field(default_factory=list)

    # ---------------------------------------------------------------------------------------------- running

    def compose(self, *args: str, timeout: float = 180, check: bool = True, attempts: int = 3,
                variables: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """One compose command; transient engine errors are retried, anything else fails with the logs.
        `variables` are set for this command only (the compose file's `${...}` read them)."""
        full = [*self.project_command(), *args]
        env = {**self.env, **(variables or {})}
        for attempt in range(1, attempts + 1):
            try:
                done = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False,
                                      env=env, cwd=ROOT)
            except subprocess.TimeoutExpired as exc:
                output = _decode(exc.stdout) + _decode(exc.stderr)
                raise AssertionError(
                    f"`compose {' '.join(args)}` did not finish within {timeout:.0f} s:\n{tail(output)}"
                    f"\n{self.diagnostics()}"
                ) from exc
            self.log.append(f"$ compose {' '.join(args)} -> {done.returncode}")
            if done.returncode == 0 or not check:
                return done
            output = done.stdout + done.stderr
            if attempt < attempts and any(marker in output.lower() for marker in TRANSIENT_ERRORS):
                self.timeline.note(f"transient engine error in `compose {args[0]}` (attempt {attempt}), retrying: "
                                   f"{tail(output, 2)}")
                time.sleep(2 * attempt)
                continue
            raise AssertionError(
                f"`compose {' '.join(args)}` failed (exit {done.returncode}):\n{tail(output)}\n{self.diagnostics()}"
            )
        raise AssertionError("unreachable")

    def project_command(self) -> list[str]:
        """The compose command with this project's options: what `compose_run` adds `exec`, `ps`, ... to."""
        return [*self.command, "--project-name", self.project, "--file", str(COMPOSE_FILE),
                "--project-directory", str(ROOT)]

    def diagnostics(self, lines: int = 40) -> str:
        """`compose ps -a` and the last lines of every service's log, for failure messages."""
        parts = []
        for args in (("ps", "--all"), ("logs", "--no-color", "--tail", str(lines))):
            try:
                done = subprocess.run(
                    [*self.project_command(), *args],
                    capture_output=True, text=True, timeout=60, check=False, env=self.env, cwd=ROOT,
                )
                parts.append(f"--- compose {' '.join(args)}\n{done.stdout}{done.stderr}")
            except Exception as exc:  # noqa: BLE001 - diagnostics must never hide the original failure
                parts.append(f"--- compose {' '.join(args)}: {exc}")
        return "\n".join(parts)

    # --------------------------------------------------------------------------------------------- state

    def services_state(self) -> dict[str, dict[str, Any]]:
        """Per service: compose's view of its container (State, Health, ExitCode, ...)."""
        done = self.compose("ps", "--all", "--format", "json", timeout=60)
        text = done.stdout.strip()
        rows: list[dict[str, Any]] = []
        if text.startswith("["):
            rows = json.loads(text)
        else:  # one JSON object per line (Compose >= 2.21)
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return {str(row.get("Service")): row for row in rows}

    def wait_healthy(self, service: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        seen: dict[str, Any] = {}
        while time.monotonic() < deadline:
            seen = self.services_state().get(service, {})
            if seen.get("State") == "running" and seen.get("Health") == "healthy":
                return
            time.sleep(1)
        raise AssertionError(
            f"{service} did not turn healthy within {timeout:.0f} s (last: state={seen.get('State')!r}, "
            f"health={seen.get('Health')!r}, status={seen.get('Status')!r})\n{self.diagnostics()}"
        )

    def health_status(self, service: str) -> int | str:
        """The HTTP status of GET /health on the service's published port, or what went wrong."""
        url = f"http://127.0.0.1:{HEALTH_PORTS[service]}/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError as error:
            return f"{type(error).__name__}: {error}"

    # ---------------------------------------------------------------------------------------------- teardown

    def down(self) -> None:
        """Remove containers, network and volumes. The built images stay until the next run has built its own
        (`remove_older_service_images`): their layers are that build's cache."""
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=180)


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def remove_project_images(project: str, env: Mapping[str, str]) -> None:
    """The service images compose built (named <project>-<service>): `down --rmi local` leaves them on Podman."""
    if not shutil.which("docker"):
        return
    names = [f"{project}-{service}" for service in BUILT_SERVICES]
    subprocess.run(["docker", "image", "rm", *names], capture_output=True, text=True, timeout=180,
                   check=False, env=dict(env))


def remove_older_service_images(current_project: str, env: Mapping[str, str]) -> list[str]:
    """Remove the service images of earlier test projects; return the projects whose images were removed.

    Called once this run's images are built: until then the earlier images serve as the build cache (with
    unchanged sources a rebuild takes seconds). Images still used by a container (a run in progress elsewhere) are
    refused by the engine and stay.
    """
    if not shutil.which("docker"):
        return []
    done = subprocess.run(["docker", "images", "--format", "{{.Repository}}"], capture_output=True, text=True,
                          timeout=60, check=False, env=dict(env))
    pattern = re.compile(rf"(?:.*/)?({re.escape(PROJECT_PREFIX)}\d+-[0-9a-f]+)-(?:{'|'.join(BUILT_SERVICES)})")
    projects = set()
    for repository in done.stdout.split():
        match = pattern.fullmatch(repository)
        if match and match.group(1) != current_project:
            projects.add(match.group(1))
    for project in sorted(projects):
        remove_project_images(project, env)
    return sorted(projects)


def remove_leftover_projects(command: Sequence[str], env: Mapping[str, str], write: Callable[[str], None]) -> None:
    """Take down projects of earlier runs whose test process died (killed runs skip their own cleanup)."""
    if not shutil.which("docker"):
        return
    done = subprocess.run(
        ["docker", "ps", "--all", "--filter", "label=com.docker.compose.project",
         "--format", '{{.Label "com.docker.compose.project"}}'],
        capture_output=True, text=True, timeout=60, check=False, env=dict(env),
    )
    for project in sorted(set(done.stdout.split())):
        match = re.fullmatch(rf"{re.escape(PROJECT_PREFIX)}(\d+)-[0-9a-f]+", project)
        if match is None or Path(f"/proc/{match.group(1)}").exists():
            continue
        write(f"[compose] removing leftover project {project} of a test run that died")
        subprocess.run([*command, "--project-name", project, "--file", str(COMPOSE_FILE), "--project-directory",
                        str(ROOT), "down", "--volumes", "--remove-orphans", "--timeout", "5"],
                       capture_output=True, text=True, timeout=180, check=False, env=dict(env), cwd=ROOT)
        remove_project_images(project, env)


def ports_in_use(ports: Sequence[int]) -> list[int]:
    import socket

    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


# ------------------------------------------------------------------------------------------------- topics


@dataclass(frozen=True)
class TopicRecord:
    partition: int
    offset: int
    key: str | None
    event_type: str | None
    value: dict[str, Any] | None


async def read_topic(bootstrap_servers: str, topic: str, timeout: float = 30,
                     security: Any = None) -> list[TopicRecord]:
    """Every record on `topic` from the beginning up to its end at the time of the call (no consumer group)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from backflush_shared.messaging.security import kafka_options

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None,
                                request_timeout_ms=15000, **kafka_options(security))
    await consumer.start()
    try:
        async with asyncio.timeout(timeout):
            partitions = None
            while not partitions:
                # `partitions_for_topic()` only knows topics the client already tracks; a metadata fetch of all
                # topics answers for any topic (aiokafka has no public call for that on a consumer).
                cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001
                partitions = cluster.partitions_for_topic(topic)
                if not partitions:
                    await asyncio.sleep(0.5)
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            end = await consumer.end_offsets(assigned)
            records: list[TopicRecord] = []
            while True:
                pending = [tp for tp in assigned if await consumer.position(tp) < end[tp]]
                if not pending:
                    return records
                batches = await consumer.getmany(*pending, timeout_ms=500)
                for tp, batch in batches.items():
                    for record in batch:
                        if record.offset >= end[tp]:
                            continue
                        headers = {name: bytes(value or b"").decode(errors="replace")
                                   for name, value in (record.headers or ())}
                        try:
                            value = json.loads(record.value) if record.value else None
                        except ValueError:
                            value = None
                        records.append(TopicRecord(record.partition, record.offset,
                                                   record.key.decode(errors="replace") if record.key else None,
                                                   headers.get("ce_type"), value))
    finally:
        await consumer.stop()
