"""A real Apache Kafka broker for development and tests, run from Maven Central jars without Docker.

Our machines reach Maven Central but neither Docker Hub nor Apache's download site, so the broker is assembled
from the published `org.apache.kafka:kafka_2.13` artifact and its runtime dependencies (fetched once into a cache
folder by Maven) and run as one KRaft node that is both broker and controller, on free 127.0.0.1 ports.

Three users:

- tests (`tests/support/broker.py`): `with LocalKafka() as broker: ... broker.bootstrap_servers`;
- `backflush demo` and `make kafka-up` / `make kafka-down`: the CLI at the bottom (`up | down | status`), which
  leaves a detached broker running and records it in `<cache>/run/state.json` (see `read_state()`);
- crash tests: `LocalKafka.restart()` stops the JVM and starts it again on the same ports and data.

`start()`, `stop()` and `restart()` block (a start takes a few seconds, a stop one or two). From async code use
`astart()`, `astop()`, `arestart()` or `async with LocalKafka() as broker`, which run them in a worker thread so
the event loop keeps serving. The readiness check talks to the broker through aiokafka in a private event loop on
its own thread, so the blocking methods are safe to call from inside a running loop as well.

Environment: `BACKFLUSH_KAFKA_VERSION` (default 4.1.1) and `BACKFLUSH_KAFKA_CACHE` (default `<repo>/.cache/kafka`).
Needs Java 17 or newer (`JAVA_HOME` or `java` on PATH) and, for the first fetch, Maven (`mvn`).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache, partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from backflush_shared.errors import BackflushError

if TYPE_CHECKING:
    from backflush_shared.messaging.acls import Role
    from backflush_shared.messaging.security import KafkaSecurity

DEFAULT_KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
# Kafka 4.0 to 4.2 log through SLF4J 1.7, hence the `log4j-slf4j-impl` binding (not `-slf4j2-impl`); 2.24.3 is the
# log4j that Kafka 4.1.1 itself ships with.
LOG4J_VERSION = "2.24.3"
# Pinned so that a new plugin release (which may need a newer Maven than Debian's) cannot break the fetch.
DEPENDENCY_PLUGIN_VERSION = "3.8.1"

VERSION_ENV = "BACKFLUSH_KAFKA_VERSION"
CACHE_ENV = "BACKFLUSH_KAFKA_CACHE"

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
# Enough for tests on two cores: a small heap, no parallel GC threads, C1 only (faster start, lower CPU).
JVM_FLAGS: tuple[str, ...] = ("-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
READY_LINE = "Kafka Server started"
MIN_JAVA = 17

_COMPLETE_MARKER = ".complete"
_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.\-]*$")
_LOG_VERSION_RE = re.compile(r"Kafka version: (\S+)")

T = TypeVar("T")


class LocalKafkaError(BackflushError):
    """The local broker could not be fetched, started or stopped; the message says why and what was seen."""


# --------------------------------------------------------------------------------------------------- locations


def kafka_version() -> str:
    """The Kafka version to fetch and run: `BACKFLUSH_KAFKA_VERSION`, else 4.1.1."""
    version = os.environ.get(VERSION_ENV, "").strip() or DEFAULT_KAFKA_VERSION
    # It ends up in a pom and in paths: refuse anything that is not a plain version string.
    if not _VERSION_RE.match(version):
        raise LocalKafkaError(f"{VERSION_ENV}={version!r} is not a version like 4.1.1")
    return version


def repo_root() -> Path:
    """The workspace checkout this module lives in (found by walking up), else the current directory."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "Makefile").is_file() and (parent / "shared" / "pyproject.toml").is_file():
            return parent
    # Installed as a regular wheel there is no checkout to find; the working directory is the best guess.
    return Path.cwd()


def cache_dir() -> Path:
    """Where jars and the detached broker live: `BACKFLUSH_KAFKA_CACHE`, else `<repo>/.cache/kafka`."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured).expanduser().resolve() if configured else repo_root() / ".cache" / "kafka"


# ------------------------------------------------------------------------------------------------------ fetch


@dataclass(frozen=True)
class KafkaDistribution:
    """A complete broker classpath in the cache."""

    version: str
    libs_dir: Path

    @property
    def classpath(self) -> str:
        # The JVM expands `dir/*` itself: no need to list 46 jars on the command line.
        return str(self.libs_dir / "*")

    @property
    def kafka_jar(self) -> Path:
        return self.libs_dir / f"kafka_{SCALA_VERSION}-{self.version}.jar"


def _pom(version: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by backflush_shared.local_kafka: only used to collect the broker's runtime classpath. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.backflush</groupId>
  <artifactId>kafka-broker-classpath</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-core</artifactId>
      <version>{LOG4J_VERSION}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>{DEPENDENCY_PLUGIN_VERSION}</version>
      </plugin>
    </plugins>
  </build>
</project>
"""


#: A SCRAM credential on the StorageTool's command line (`--add-scram SCRAM-SHA-512=[name=x,password=y]`), which
#: the tool may also echo in its error output.
_SCRAM_PASSWORD = re.compile(r"(?P<name>password=)(?:\"[^\"]*\"|[^,\]\s]*)", re.IGNORECASE)


def redacted(text: str) -> str:
    """`text` with every `password=...` of a SCRAM credential replaced: errors are printed and logged."""
    return _SCRAM_PASSWORD.sub(r"\g<name>****", text)


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (parallel test runs, `make kafka-up` during tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_kafka(version: str | None = None, *, cache: Path | None = None) -> KafkaDistribution:
    """Make sure the broker's jars are in the cache; download them with Maven the first time only.

    A marker file written after a successful copy makes later calls return at once; a fetch interrupted halfway
    has no marker and is redone from scratch.
    """
    version = version or kafka_version()
    if not _VERSION_RE.match(version):
        raise LocalKafkaError(f"{version!r} is not a version like 4.1.1")
    home = (cache or cache_dir()) / version
    libs = home / "libs"
    marker = home / _COMPLETE_MARKER
    if marker.is_file():
        return KafkaDistribution(version, libs)

    with _file_lock(home.parent / f"{version}.lock"):
        if marker.is_file():  # another process finished the fetch while we waited for the lock
            return KafkaDistribution(version, libs)
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError(
                "Maven (`mvn`) is needed once to fetch Apache Kafka from Maven Central but is not on PATH "
                "(Debian: apt-get install maven)."
            )
        home.mkdir(parents=True, exist_ok=True)
        (home / "pom.xml").write_text(_pom(version), encoding="utf-8")
        staging = home / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(libs, ignore_errors=True)
        command = [
            mvn,
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(home / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        try:
            done = subprocess.run(command, cwd=home, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired as exc:
            raise LocalKafkaError(f"Maven did not finish fetching Kafka {version} within 15 minutes") from exc
        if done.returncode != 0:
            # Maven prints its [ERROR] lines on stdout, so both streams are needed to explain a failure.
            seen = _tail((done.stdout or "") + "\n" + (done.stderr or ""))
            raise LocalKafkaError(
                f"Maven could not fetch Apache Kafka {version} (exit {done.returncode}): {' '.join(command)}\n{seen}"
            )
        dist = KafkaDistribution(version, staging)
        if not dist.kafka_jar.is_file():
            raise LocalKafkaError(f"Maven finished but {dist.kafka_jar.name} is missing from {staging}")
        staging.rename(libs)
        marker.write_text(f"kafka_{SCALA_VERSION} {version}, log4j {LOG4J_VERSION}\n", encoding="utf-8")
        return KafkaDistribution(version, libs)


# ------------------------------------------------------------------------------------------------------- java


@cache
def find_java() -> str:
    """The `java` to run the broker with (JAVA_HOME first), checked to be Java 17 or newer."""
    java_home = os.environ.get("JAVA_HOME", "").strip()
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if java is None:
        raise LocalKafkaError(
            "Java is needed to run the local Kafka broker but no `java` is on PATH and JAVA_HOME is not set "
            f"(Kafka 4 needs Java {MIN_JAVA}+; Debian: apt-get install openjdk-17-jre-headless)."
        )
    done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if done.returncode != 0 or match is None:
        raise LocalKafkaError(f"`{java} -version` failed:\n{_tail(done.stderr + done.stdout)}")
    major = int(match.group(1))
    if major == 1:  # "1.8.0_..." is Java 8
        major = int(match.group(2) or 0)
    if major < MIN_JAVA:
        raise LocalKafkaError(f"Kafka 4 needs Java {MIN_JAVA} or newer; {java} is Java {major}")
    return java


# ----------------------------------------------------------------------------------------------------- helpers


def free_ports(count: int) -> list[int]:
    """Distinct free 127.0.0.1 ports below the kernel's ephemeral range.

    Ports handed out by `bind(0)` come from the ephemeral range, the same range outgoing connections use: during a
    `restart()` a client's connection could take the port the broker is about to listen on again. Below that range
    nobody gets a port by accident.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        candidates = list(range(max(1024, low - 12000), low))
        rng = secrets.SystemRandom()
        rng.shuffle(candidates)
        for port in candidates + [0] * count:
            if len(ports) == count:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)  # keep it bound so the next pick cannot return the same port
            ports.append(sock.getsockname()[1])
    finally:
        for sock in held:
            sock.close()
    return ports


def _run_coroutine_blocking(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when the caller is itself inside a running loop."""
    outcome: dict[str, Any] = {}

    def runner() -> None:
        try:
            outcome["value"] = asyncio.run(factory())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            outcome["error"] = exc

    thread = threading.Thread(target=runner, name="local-kafka-probe", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


async def _count_brokers(bootstrap_servers: str, request_timeout_s: float,
                         security: KafkaSecurity | None = None) -> int:
    from aiokafka.admin import AIOKafkaAdminClient  # imported late: the CLI's `status` does not need it

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        request_timeout_ms=int(request_timeout_s * 1000),
        client_id="backflush-local-kafka-probe",
        **(security.kafka_options() if security is not None else {}),
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return len(cluster.get("brokers", []))
    finally:
        await admin.close()


def wait_for_metadata(bootstrap_servers: str, *, timeout: float = 30.0, min_brokers: int = 1,
                      security: KafkaSecurity | None = None) -> int:
    """Block until a metadata request through aiokafka lists at least `min_brokers` brokers; return the count.

    A TCP connect can succeed before the broker serves requests; a metadata answer listing the broker cannot.
    Raises `LocalKafkaError` with the last error seen when `timeout` passes.
    """
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LocalKafkaError(
                f"Kafka at {bootstrap_servers} did not answer a metadata request within {timeout:.0f} s ({last})"
            )
        request_timeout = max(1.0, min(5.0, remaining))
        try:
            count = _run_coroutine_blocking(partial(_count_brokers, bootstrap_servers, request_timeout, security))
        except Exception as exc:  # noqa: BLE001 - every failure here means "not ready yet"
            last = f"{type(exc).__name__}: {exc}"
        else:
            if count >= min_brokers:
                return count
            last = f"metadata lists {count} broker(s)"
        time.sleep(0.2)


def _proc_state(pid: int) -> str | None:
    """The process state letter from /proc (None when there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may hold spaces; the state follows the last ')'.
    return stat.rsplit(")", 1)[1].split()[0]


def _pid_alive(pid: int) -> bool:
    state = _proc_state(pid)
    if state is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # No /proc (not Linux): signal 0 is all we have.
        return not Path("/proc").is_dir()
    # A detached broker is re-parented to PID 1, which on some machines never reaps: a zombie has exited.
    return state not in ("Z", "X")


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_our_broker(pid: int, server_properties: Path) -> bool:
    """Is `pid` the JVM started with this run dir's server.properties (and not a recycled pid)?"""
    args = _cmdline(pid)
    return "kafka.Kafka" in args and str(server_properties) in args


def _terminate(pid: int, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM (Kafka shuts down cleanly on it), wait up to `timeout`, then SIGKILL."""

    def gone() -> bool:
        if process is not None:
            return process.poll() is not None
        return not _pid_alive(pid)

    if gone():
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone():
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not gone():
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------ configuration

_BROKER_LOG4J = """<?xml version="1.0" encoding="UTF-8"?>
<!-- The broker logs INFO to its stdout, which LocalKafka sends to broker.log. -->
<Configuration status="WARN">
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="STDOUT"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients" level="WARN"/>
  </Loggers>
</Configuration>
"""

# The storage tool prints its answers (the cluster id) on stdout: its own log lines must not mix in.
_TOOLS_LOG4J = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <Console name="STDERR" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="WARN"><AppenderRef ref="STDERR"/></Root>
  </Loggers>
</Configuration>
"""


def _server_properties(port: int, controller_port: int, data_dir: Path, extra: Mapping[str, str]) -> str:
    settings: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Static voters, so the storage is formatted WITHOUT --standalone (4.1 refuses the mix).
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        # Advertise exactly what we bind: clients reconnect to the advertised address.
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "3",
        # Topics are created with the admin client; auto-creation answers LEADER_NOT_AVAILABLE for a moment and
        # hides misspelt topic names.
        "auto.create.topics.enable": "false",
        # One node: every internal topic must make do with one replica, or groups, idempotent producers and
        # transactions fail. Few partitions make the first group join and first transaction quick.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "3",
        # Tests join groups one consumer at a time: waiting 3 s for more members only slows them down.
        "group.initial.rebalance.delay.ms": "0",
        # After a hard kill (restart(hard=True)) the node cannot re-register until the controller has fenced its
        # previous incarnation, which takes a broker session timeout (9 s by default). Still far above any pause
        # a 512 MB serial-GC heap makes.
        "broker.session.timeout.ms": "4000",
        "broker.heartbeat.interval.ms": "500",
    }
    settings.update(extra)
    # Java properties take no comment after a value; one key=value per line, nothing else.
    return "".join(f"{key}={value}\n" for key, value in settings.items())


# ------------------------------------------------------------------------------------------------------ broker

_live: set[LocalKafka] = set()
_live_lock = threading.Lock()


def _stop_leftovers() -> None:
    # A test run that ends without stopping its broker must not leave a 512 MB JVM behind.
    with _live_lock:
        leftovers = list(_live)
    for broker in leftovers:
        with contextlib.suppress(Exception):
            broker.stop()


atexit.register(_stop_leftovers)


class LocalKafka:
    """One Apache Kafka node (broker + KRaft controller) on free 127.0.0.1 ports, run from cached jars.

    `run_dir` holds server.properties, the log4j2 configs, `broker.log` and the data dir (`data/`). Without one a
    temporary folder is used and removed by `stop()` (unless `keep_data`); with one, `stop()` removes only
    `data/` and leaves config and log for reading. `detached=True` puts the JVM in its own session so that it
    outlives this Python process (the CLI's `up`); otherwise a broker still running at interpreter exit is stopped.
    `extra_config` overrides or adds server.properties settings.

    `scram_users` (name -> password) makes the client listener SASL_SSL: the users' SCRAM-SHA-512 credentials are
    stored when the storage is formatted (KRaft keeps them in its metadata), a throwaway CA and a broker certificate
    for 127.0.0.1 and localhost are made in `<run_dir>/tls` (`ca_file`), and `security_for(name)` gives a client's
    settings. The broker itself authenticates as `BROKER_USER` with a random password; it is the one super user.
    Kafka's `StandardAuthorizer` denies whatever no ACL allows: `grant(principals, topic_prefix)` creates the
    topics of one deployment and gives each principal what its role needs (messaging/acls.py).
    """

    BROKER_USER = "broker"

    def __init__(
        self,
        *,
        version: str | None = None,
        run_dir: Path | None = None,
        keep_data: bool = False,
        detached: bool = False,
        extra_config: Mapping[str, str] | None = None,
        start_timeout: float = START_TIMEOUT_S,
        cache: Path | None = None,
        scram_users: Mapping[str, str] | None = None,
    ) -> None:
        self._requested_version = version or kafka_version()
        self._cache = cache
        self._owns_run_dir = run_dir is None
        self._run_dir = Path(run_dir).resolve() if run_dir is not None else None
        self._keep_data = keep_data
        self._detached = detached
        self._extra = dict(extra_config or {})
        self._start_timeout = start_timeout
        self._port: int | None = None
        self._controller_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._running_version: str | None = None
        self._lock = threading.RLock()
        self._scram_users: dict[str, str] | None = None
        if scram_users is not None:
            for name, password in scram_users.items():
                # they go into the storage tool's `[name=...,password=...]` and a JAAS line: no quoting there
                if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or not re.fullmatch(r"[A-Za-z0-9._~-]+", password):
                    raise LocalKafkaError(f"SCRAM user {name!r}: names and passwords may use A-Z a-z 0-9 . _ - only")
            self._scram_users = {self.BROKER_USER: secrets.token_hex(16), **scram_users}

    # ------------------------------------------------------------------------------------------- properties

    @property
    def bootstrap_servers(self) -> str:
        if self._port is None:
            raise LocalKafkaError("the local Kafka broker has not been started")
        return f"127.0.0.1:{self._port}"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def controller_port(self) -> int | None:
        return self._controller_port

    @property
    def version(self) -> str:
        """The Kafka version running: from the broker's own "Kafka version:" line, else from the jar's name."""
        return self._running_version or self._requested_version

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def run_dir(self) -> Path:
        if self._run_dir is None:
            raise LocalKafkaError("the local Kafka broker has no run dir before start()")
        return self._run_dir

    @property
    def data_dir(self) -> Path:
        return self.run_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "broker.log"

    @property
    def server_properties(self) -> Path:
        return self.run_dir / "server.properties"

    @property
    def secure(self) -> bool:
        """True when the client listener is SASL_SSL (`scram_users` given)."""
        return self._scram_users is not None

    @property
    def ca_file(self) -> Path:
        """The PEM file of the CA that signed the broker's certificate (secure brokers only)."""
        return self.run_dir / "tls" / "ca.pem"

    def security_for(self, user: str, *, password: str | None = None) -> KafkaSecurity:
        """The client settings of `user` on this secure broker (another `password` to try a wrong one)."""
        from backflush_shared.messaging.security import KafkaSecurity

        if self._scram_users is None:
            raise LocalKafkaError("security_for() needs a broker started with scram_users")
        if password is None and user not in self._scram_users:
            raise LocalKafkaError(f"no SCRAM user {user!r} on this broker")
        return KafkaSecurity(
            security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username=user,
            sasl_password=password if password is not None else self._scram_users[user], ssl_cafile=self.ca_file,
        )

    def client_env(self, user: str) -> dict[str, str]:
        """The BACKFLUSH_* environment of a process (a service, the CLI) that connects as `user`."""
        security = self.security_for(user)
        return {
            "BACKFLUSH_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "BACKFLUSH_SECURITY_PROTOCOL": security.security_protocol,
            "BACKFLUSH_SASL_MECHANISM": security.sasl_mechanism,
            "BACKFLUSH_SASL_USERNAME": user,
            "BACKFLUSH_SASL_PASSWORD": security.sasl_password.get_secret_value(),
            "BACKFLUSH_SSL_CAFILE": str(self.ca_file),
        }

    async def agrant(self, principals: Mapping[str, Role], *, topic_prefix: str = "", partitions: int = 1) -> None:
        """Create the topics of the deployment `topic_prefix` and the ACLs of `principals` (name -> role), as the
        broker's super user. The services then find their topics and need no right to create any."""
        from backflush_shared.messaging.acls import acls_for_all, grant
        from backflush_shared.contracts.topics import TopicNames
        from backflush_shared.messaging.admin import ensure_topics

        if self._scram_users is None:
            raise LocalKafkaError("grant() needs a broker started with scram_users")
        unknown = sorted(set(principals) - set(self._scram_users))
        if unknown:
            raise LocalKafkaError(f"no SCRAM user for {', '.join(unknown)} on this broker")
        admin = self.security_for(self.BROKER_USER)
        await ensure_topics(self.bootstrap_servers, TopicNames(topic_prefix).all(), partitions=partitions,
                            replication=1, security=admin)
        await grant(self.bootstrap_servers, acls_for_all(principals, topic_prefix=topic_prefix), security=admin)

    def grant(self, principals: Mapping[str, Role], *, topic_prefix: str = "", partitions: int = 1) -> None:
        _run_coroutine_blocking(lambda: self.agrant(principals, topic_prefix=topic_prefix, partitions=partitions))

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"), lines)
        except (OSError, LocalKafkaError):
            return "(no broker log)"

    # ---------------------------------------------------------------------------------------------- control

    def start(self) -> Self:
        """Start the broker (formatting fresh storage if there is none) and block until it serves.

        Does nothing when it already runs. Raises `LocalKafkaError` with the log's tail when it does not serve
        within `start_timeout` seconds.
        """
        with self._lock:
            if self.is_running():
                return self
            dist = fetch_kafka(self._requested_version, cache=self._cache)
            java = find_java()
            if self._run_dir is None:
                self._run_dir = Path(tempfile.mkdtemp(prefix="backflush-kafka-"))
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self._port is None or self._controller_port is None:
                self._port, self._controller_port = free_ports(2)
            broker_log4j = self.run_dir / "log4j2-broker.xml"
            tools_log4j = self.run_dir / "log4j2-tools.xml"
            broker_log4j.write_text(_BROKER_LOG4J, encoding="utf-8")
            tools_log4j.write_text(_TOOLS_LOG4J, encoding="utf-8")
            extra = dict(self._extra)
            if self._scram_users is not None:
                extra = {**self._secure_properties(), **extra}
            self.server_properties.write_text(
                _server_properties(self._port, self._controller_port, self.data_dir, extra), encoding="utf-8"
            )
            if not (self.data_dir / "meta.properties").is_file():
                self._format(java, dist, tools_log4j)

            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            command = [
                java,
                *JVM_FLAGS,
                "-Djava.awt.headless=true",
                # Kafka logs its shutdown from its own hook; log4j's hook would close the appender first.
                "-Dlog4j2.shutdownHookEnabled=false",
                f"-Dlog4j2.configurationFile={broker_log4j}",
                "-cp",
                dist.classpath,
                "kafka.Kafka",
                str(self.server_properties),
            ]
            # Appending keeps the log of the run before a restart(); readiness only looks past `offset`.
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    command,
                    cwd=self.run_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=self._detached,
                    close_fds=True,
                )
            if not self._detached:
                with _live_lock:
                    _live.add(self)
            try:
                self._wait_until_serving(offset, dist)
            except BaseException:
                # Keep run dir and log for reading; the JVM itself must not outlive the failure.
                _terminate(self._process.pid, self._process, 5)
                with _live_lock:
                    _live.discard(self)
                raise
            return self

    def stop(self, *, keep_data: bool | None = None) -> None:
        """SIGTERM the broker, wait up to 30 s (then SIGKILL), and remove its data unless asked to keep it."""
        with self._lock:
            keep = self._keep_data if keep_data is None else keep_data
            if self._process is not None:
                _terminate(self._process.pid, self._process, STOP_TIMEOUT_S)
                self._process = None
            with _live_lock:
                _live.discard(self)
            if keep or self._run_dir is None:
                return
            if self._owns_run_dir:
                shutil.rmtree(self._run_dir, ignore_errors=True)
                # A later start() gets a fresh temporary folder and fresh ports.
                self._run_dir = None
                self._port = self._controller_port = None
            else:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, *, hard: bool = False) -> None:
        """Stop the JVM and start it again on the same ports and the same data (what a crash test needs).

        `hard=True` kills it with SIGKILL instead of a clean SIGTERM shutdown, so the broker recovers its logs
        on the way up as after a real crash.
        """
        with self._lock:
            if self._port is None:
                raise LocalKafkaError("restart() needs a broker that has been started")
            if hard and self._process is not None:
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
                self._process.wait(timeout=STOP_TIMEOUT_S)
            self.stop(keep_data=True)
            self.start()

    async def astart(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def astop(self, *, keep_data: bool | None = None) -> None:
        await asyncio.to_thread(lambda: self.stop(keep_data=keep_data))

    async def arestart(self, *, hard: bool = False) -> None:
        await asyncio.to_thread(lambda: self.restart(hard=hard))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()

    def __repr__(self) -> str:
        where = f"127.0.0.1:{self._port}" if self._port else "not started"
        return f"LocalKafka(version={self.version!r}, {where}, pid={self.pid})"

    # ---------------------------------------------------------------------------------------------- internals

    def _tool(self, java: str, dist: KafkaDistribution, tools_log4j: Path, *args: str) -> str:
        command = [
            java,
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={tools_log4j}",
            "-cp",
            dist.classpath,
            "kafka.tools.StorageTool",
            *args,
        ]
        done = subprocess.run(command, cwd=self.run_dir, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise LocalKafkaError(redacted(
                f"`StorageTool {' '.join(args)}` failed (exit {done.returncode}):\n{_tail(done.stderr + done.stdout)}"
            ))
        return done.stdout

    def _format(self, java: str, dist: KafkaDistribution, tools_log4j: Path) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        cluster_id = self._tool(java, dist, tools_log4j, "random-uuid").strip().splitlines()[-1].strip()
        scram: list[str] = []
        for name, password in (self._scram_users or {}).items():
            scram += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        self._tool(java, dist, tools_log4j, "format", "-t", cluster_id, "-c", str(self.server_properties), *scram)

    def _secure_properties(self) -> dict[str, str]:
        """server.properties for a SASL_SSL client listener; the TLS files are made once per run dir."""
        from backflush_shared.local_tls import BrokerTls, make_broker_tls

        assert self._scram_users is not None and self._port is not None
        tls_dir = self.run_dir / "tls"
        keystore = tls_dir / "broker-keystore.pem"
        tls = (BrokerTls(self.ca_file, keystore) if keystore.is_file() and self.ca_file.is_file()
               else make_broker_tls(tls_dir))
        password = self._scram_users[self.BROKER_USER]
        return {
            "listeners": f"SASL_SSL://127.0.0.1:{self._port},CONTROLLER://127.0.0.1:{self._controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{self._port}",
            # The node talks to itself over the same listener, as the broker principal: no unauthenticated port.
            "inter.broker.listener.name": "SASL_SSL",
            # The controller listener wants the broker's own certificate (mutual TLS): KRaft's controller RPCs
            # cannot use SCRAM (the credentials live in the metadata the controller serves), and no other client
            # can get a certificate from the throwaway CA (its key is deleted). Its subject maps to BROKER_USER.
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "listener.name.controller.ssl.client.auth": "required",
            "listener.name.controller.ssl.principal.mapping.rules": f"RULE:^CN=127.0.0.1$/{self.BROKER_USER}/",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            # ACLs: what no ACL allows is denied; the broker's own principal is the one super user.
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{self.BROKER_USER}",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{self.BROKER_USER}" password="{password}";',
            **tls.server_properties(),
        }

    def _wait_until_serving(self, offset: int, dist: KafkaDistribution) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._start_timeout
        seen = ""
        while READY_LINE not in seen:
            if self._process.poll() is not None:
                raise LocalKafkaError(
                    f"the Kafka broker exited with status {self._process.returncode} before serving; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise LocalKafkaError(
                    f"the Kafka broker did not log {READY_LINE!r} within {self._start_timeout:.0f} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)
            with self.log_path.open("rb") as log:
                log.seek(offset)
                seen = log.read().decode(errors="replace")
        try:
            wait_for_metadata(self.bootstrap_servers, timeout=max(1.0, deadline - time.monotonic()),
                              security=self.security_for(self.BROKER_USER) if self.secure else None)
        except LocalKafkaError as exc:
            raise LocalKafkaError(f"{exc}; log {self.log_path}:\n{self.log_tail()}") from exc
        match = _LOG_VERSION_RE.search(seen)
        self._running_version = match.group(1) if match else _version_from_jar(dist)


def _version_from_jar(dist: KafkaDistribution) -> str:
    for jar in dist.libs_dir.glob(f"kafka_{SCALA_VERSION}-*.jar"):
        match = re.fullmatch(rf"kafka_{re.escape(SCALA_VERSION)}-(.+)\.jar", jar.name)
        if match and not match.group(1).endswith(("-test", "-sources")):
            return match.group(1)
    return dist.version


# --------------------------------------------------------------------------------------- detached broker (CLI)


@dataclass(frozen=True)
class RunState:
    """What `up` records about the detached broker in `<cache>/run/state.json`."""

    pid: int
    bootstrap_servers: str
    version: str
    run_dir: str
    data_dir: str
    log: str
    started_at: float

    @property
    def server_properties(self) -> Path:
        return Path(self.run_dir) / "server.properties"

    def is_alive(self) -> bool:
        return _pid_alive(self.pid) and _is_our_broker(self.pid, self.server_properties)


def run_home() -> Path:
    return cache_dir() / "run"


def state_path() -> Path:
    return run_home() / "state.json"


def read_state() -> RunState | None:
    """The detached broker recorded by `up`, or None (no state file, or an unreadable one)."""
    try:
        raw = json.loads(state_path().read_text(encoding="utf-8"))
        return RunState(**raw)
    except (OSError, ValueError, TypeError):
        return None


def _serving_line(version: str, bootstrap_servers: str) -> str:
    return f"Kafka {version} serving at {bootstrap_servers}"


#: The principals of `up --secure` and their roles (README "Security"): one per service, one for each outside
#: party's intake (the command line's `order`, `sign`, `complete`, `master-data load` commands connect as these),
#: and `cli` for the reading commands (`dlq list`, `audit`, order status).
SECURE_PRINCIPALS: dict[str, str] = {
    "manufacturer": "manufacturer", "distributor": "distributor", "warehouse": "warehouse",
    "holder": "order-holder", "shop-floor": "shop-floor", "planner": "planner", "cli": "reader",
}


def principals_dir(run_dir: Path) -> Path:
    return run_dir / "principals"


def up(*, secure: bool = False) -> RunState:
    """Start a detached broker unless the one recorded in the state file still runs; return its state.

    `secure`: a SASL_SSL listener with a SCRAM-SHA-512 principal per `SECURE_PRINCIPALS`, each with a random
    password and the ACLs of its role (the topics are created first, as the broker's super user); `<run dir>/principals/<name>.env` (readable by the owner only) holds the BACKFLUSH_* settings of a
    process that connects as that principal (`set -a; . <file>; set +a`).
    """
    with _file_lock(run_home() / ".lock"):
        state = read_state()
        if state is not None and state.is_alive():
            return state
        if state is not None:
            # The recorded broker is gone (machine restarted, killed): its data is of no use any more.
            shutil.rmtree(state.run_dir, ignore_errors=True)
            state_path().unlink(missing_ok=True)
        run_dir = run_home() / "broker"
        shutil.rmtree(run_dir, ignore_errors=True)
        users = {name: secrets.token_hex(16) for name in SECURE_PRINCIPALS} if secure else None
        broker = LocalKafka(run_dir=run_dir, detached=True, keep_data=True, scram_users=users)
        broker.start()
        if secure:
            from backflush_shared.messaging.acls import Role

            try:
                broker.grant({name: Role(role) for name, role in SECURE_PRINCIPALS.items()},
                             topic_prefix=os.environ.get("BACKFLUSH_TOPIC_PREFIX", ""))
            except BaseException:
                broker.stop()  # a broker without its ACLs is of no use, and no state file would name it
                raise
            folder = principals_dir(run_dir)
            folder.mkdir(mode=0o700, exist_ok=True)
            for name in SECURE_PRINCIPALS:
                env_file = folder / f"{name}.env"
                env_file.touch(mode=0o600)
                env_file.write_text("".join(f"{key}={value}\n" for key, value in broker.client_env(name).items()),
                                    encoding="utf-8")
        assert broker.pid is not None
        state = RunState(
            pid=broker.pid,
            bootstrap_servers=broker.bootstrap_servers,
            version=broker.version,
            run_dir=str(broker.run_dir),
            data_dir=str(broker.data_dir),
            log=str(broker.log_path),
            started_at=time.time(),
        )
        tmp = state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
        tmp.replace(state_path())
        return state


def down() -> RunState | None:
    """Stop the detached broker, delete its data and the state file; return what was stopped (None: nothing)."""
    with _file_lock(run_home() / ".lock"):
        state = read_state()
        if state is None:
            return None
        if state.is_alive():
            _terminate(state.pid, None, STOP_TIMEOUT_S)
        shutil.rmtree(state.data_dir, ignore_errors=True)
        state_path().unlink(missing_ok=True)
        return state


def main(argv: Sequence[str] | None = None) -> int:
    """`up | down | status` for a detached local broker (used by `make kafka-up` / `make kafka-down`)."""
    parser = argparse.ArgumentParser(
        prog="kafka_local.py", description="Run a local Apache Kafka broker (KRaft, one node) from Maven jars."
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--secure", action="store_true",
                        help="up: SASL_SSL with a SCRAM principal per service and one for the CLI (see principals/)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            before = read_state()
            state = up(secure=args.secure)
            if before is not None and before.pid == state.pid:
                print(f"Kafka is already running (pid {state.pid}, log {state.log})")
                if state.version != kafka_version():
                    print(f"note: {kafka_version()} was asked for; run `down` first to switch versions")
            print(_serving_line(state.version, state.bootstrap_servers))
            principals = principals_dir(Path(state.run_dir))
            if principals.is_dir():
                print(f"SASL_SSL with ACLs: each principal's settings in {principals}/<name>.env "
                      f"({', '.join(SECURE_PRINCIPALS)}); load one with: set -a; . <file>; set +a")
            elif args.secure:
                print("note: the running broker is plaintext; run `down` first to start a secure one")
            return 0
        if args.command == "down":
            stopped = down()
            print(
                f"Kafka stopped (was pid {stopped.pid} at {stopped.bootstrap_servers})"
                if stopped
                else "no local Kafka was running"
            )
            return 0
        recorded = read_state()
        if recorded is None:
            print("no local Kafka running")
            return 1
        if not recorded.is_alive():
            print(f"local Kafka recorded in {state_path()} is gone (pid {recorded.pid}); run `up` again")
            return 1
        print(_serving_line(recorded.version, recorded.bootstrap_servers))
        print(f"pid {recorded.pid}, data {recorded.data_dir}, log {recorded.log}")
        return 0
    except LocalKafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
