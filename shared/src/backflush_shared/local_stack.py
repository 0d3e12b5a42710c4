"""The three services as separate processes on this machine, as in production: for the demo, tests, benchmarks.

Each service runs `python -m backflush_shared serve NAME` with its own SQLite file and health port, configured
through the same BACKFLUSH_* variables as in docker compose. With `instances` above one (and `database_urls` of a
PostgreSQL database per service), each service runs that many processes: same database, same consumer group,
a health port each; the first is named after its service, the others `NAME-2`, `NAME-3`, ...
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backflush_shared.errors import BackflushError

SERVICES = ("manufacturer", "distributor", "warehouse")


class LocalStackError(BackflushError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str  # the process: its service's name, or NAME-2, NAME-3, ... for further instances
    health_port: int
    database_url: str
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    service: str = ""  # the service it runs (its name when empty)

    def __post_init__(self) -> None:
        self.service = self.service or self.name

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class LocalStack:
    bootstrap_servers: str
    workdir: Path
    topic_prefix: str = ""
    services: Sequence[str] = SERVICES
    extra_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    log_level: str = "INFO"
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    #: processes per service; more than one needs a database every instance shares (`database_urls`)
    instances: int = 1
    database_urls: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for name in self.services:
            database_url = self.database_urls.get(name) or f"sqlite+aiosqlite:///{self.workdir / f'{name}.db'}"
            if self.instances > 1 and database_url.startswith("sqlite"):
                raise LocalStackError(f"{self.instances} instances of {name} need a PostgreSQL database: a SQLite "
                                      "file has one writer")
            for instance in range(1, self.instances + 1):
                key = name if instance == 1 else f"{name}-{instance}"
                port = free_port()
                env = {
                    "BACKFLUSH_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                    "BACKFLUSH_TOPIC_PREFIX": self.topic_prefix,
                    "BACKFLUSH_DATABASE_URL": database_url,
                    "BACKFLUSH_HEALTH_HOST": "127.0.0.1",
                    "BACKFLUSH_HEALTH_PORT": str(port),
                    "BACKFLUSH_LOG_LEVEL": self.log_level,
                    **self.extra_env.get(name, {}),
                }
                self.processes[key] = ServiceProcess(key, port, database_url, self.workdir / f"{key}.log", env,
                                                     service=name)

    def database_url(self, name: str) -> str:
        return self.processes[name].database_url

    def start(self, timeout: float = 60.0) -> None:
        for service in self.processes.values():
            self._spawn(service)
        self.wait_healthy(timeout)

    def _spawn(self, service: ServiceProcess) -> None:
        env = {**os.environ, **service.env}
        log = service.log_path.open("ab")
        service.process = subprocess.Popen(
            [sys.executable, "-m", "backflush_shared", "serve", service.service],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop the services in order
        )
        log.close()

    def wait_healthy(self, timeout: float = 60.0, names: Sequence[str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        for name in names or list(self.processes):
            service = self.processes[name]
            while True:
                if not service.running:
                    raise LocalStackError(f"{name} exited during start-up:\n{service.log_tail()}")
                if _healthy(service.health_port):
                    break
                if time.monotonic() > deadline:
                    raise LocalStackError(f"{name} not healthy within {timeout:.0f} s:\n{service.log_tail()}")
                time.sleep(0.2)

    def kill(self, name: str) -> None:
        """SIGKILL: the crash a power cut or an OOM killer would cause."""
        service = self.processes[name]
        if service.process is not None and service.running:
            service.process.send_signal(signal.SIGKILL)
            service.process.wait(timeout=10)

    def restart(self, name: str, timeout: float = 60.0) -> None:
        self.kill(name)
        self._spawn(self.processes[name])
        self.wait_healthy(timeout, [name])

    def stop(self, timeout: float = 25.0) -> dict[str, int | None]:
        """SIGTERM every service and wait for a graceful stop; returns the exit codes."""
        for service in self.processes.values():
            if service.running and service.process is not None:
                service.process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + timeout
        for service in self.processes.values():
            if service.process is None:
                continue
            try:
                codes[service.name] = service.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                service.process.kill()
                codes[service.name] = service.process.wait(timeout=10)
        return codes

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False
