"""Which Apache Kafka broker a test run gets, in order of preference.

1. `KAFKA_BOOTSTRAP_SERVERS` set: that broker, as is (CI services, `make kafka-up`, a broker you run yourself). Its
   version cannot be read over the protocol: it is taken from `BACKFLUSH_KAFKA_BROKER_VERSION`, else from the state
   file of `make kafka-up` when that is the broker, else reported as "unknown".
2. A Docker engine answers (the docker SDK honours `DOCKER_HOST`): the `apache/kafka` image through testcontainers
   (`BACKFLUSH_KAFKA_IMAGE`, default apache/kafka:4.1.1, or the local stand-in localhost/backflush-kafka:4.1.1 of
   scripts/local_images.py when only that one is in the engine), as a generic container with a log wait strategy.
   Against Podman's Docker API (scripts/container_engine.sh) Ryuk is disabled and the connection mode is
   docker_host unless the environment says otherwise.
3. Otherwise: a local JVM broker from Maven Central jars (`backflush_shared.local_kafka`).

`BACKFLUSH_KAFKA_BROKER=local-jvm|testcontainers` forces one of the last two. There is no fourth option: when no
broker can be had the fixture raises, so broker tests error out loudly instead of being skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from backflush_shared.local_kafka import LocalKafka, LocalKafkaError, free_ports, read_state, wait_for_metadata
from backflush_shared.contracts.topics import Writer
from backflush_shared.messaging.acls import Role

BrokerKind = Literal["external", "testcontainers", "local-jvm"]

DEFAULT_IMAGE = "apache/kafka:4.1.1"
_KIND_LABELS: dict[BrokerKind, str] = {
    "external": "external",
    "testcontainers": "testcontainers",
    "local-jvm": "local JVM",
}


@dataclass(frozen=True)
class Broker:
    """What a test needs to know about the broker of this run."""

    bootstrap_servers: str
    kind: BrokerKind
    version: str

    def describe(self) -> str:
        return f"broker: {_KIND_LABELS[self.kind]} Apache Kafka {self.version} at {self.bootstrap_servers}"


def docker_engine_answers(timeout: float = 2.0) -> bool:
    """True when a Docker(-compatible) engine answers a ping within `timeout` seconds."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
    except Exception:  # noqa: BLE001 - no SDK, no socket, no engine: all mean "no Docker here"
        return False
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001
        return False
    finally:
        client.close()


@contextmanager
def _external(bootstrap_servers: str) -> Iterator[Broker]:
    try:
        wait_for_metadata(bootstrap_servers, timeout=30)
    except LocalKafkaError as exc:
        raise RuntimeError(f"KAFKA_BOOTSTRAP_SERVERS={bootstrap_servers} does not answer: {exc}") from exc
    version = os.environ.get("BACKFLUSH_KAFKA_BROKER_VERSION", "").strip()
    if not version:
        # `make kafka-up` recorded what it runs; any other broker's version is not visible over the protocol.
        state = read_state()
        if state is not None and state.bootstrap_servers == bootstrap_servers and state.is_alive():
            version = state.version
        else:
            version = "unknown"
    yield Broker(bootstrap_servers, "external", version)


# The Kafka image built by scripts/local_images.py where Docker Hub is out of reach (our machines).
LOCAL_STAND_IN_IMAGE = "localhost/backflush-kafka:{version}"
# Engine errors that a second attempt at starting the container usually gets past (Podman under load).
_TRANSIENT_ENGINE_ERRORS = ("database is locked", "connection reset", "connection aborted", "timed out", "eof")


def _configure_testcontainers() -> None:
    """Settings testcontainers needs against Podman's Docker API; an explicit environment setting wins.

    - no Ryuk: its image cannot be pulled where Docker Hub is out of reach; the `with` block removes our container;
    - connection mode docker_host: some machines have /.dockerenv, and testcontainers then believes it runs in a
      container and looks for a bridge network (KeyError: 'HostConfig' on Podman).
    """
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    # The configuration object may have been built before (another fixture imported testcontainers first).
    if testcontainers_config.connection_mode_override is None:
        testcontainers_config.connection_mode_override = ConnectionMode(os.environ["TESTCONTAINERS_CONNECTION_MODE"])
    if os.environ["TESTCONTAINERS_RYUK_DISABLED"].lower() in ("1", "true", "yes"):
        testcontainers_config.ryuk_disabled = True


def _image_present(client: object, image: str) -> bool:
    try:
        client.images.get(image)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound, or an engine that does not know the name
        return False
    return True


def _kafka_image(client: object) -> str:
    """`BACKFLUSH_KAFKA_IMAGE`; else the official image if the engine has it, else the local stand-in if built."""
    configured = os.environ.get("BACKFLUSH_KAFKA_IMAGE", "").strip()
    if configured:
        return configured
    stand_in = LOCAL_STAND_IN_IMAGE.format(version=DEFAULT_IMAGE.rpartition(":")[2])
    if not _image_present(client, DEFAULT_IMAGE) and _image_present(client, stand_in):
        return stand_in
    return DEFAULT_IMAGE


def _cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64, never starting with "-" (which a command line would
    take for an option; Kafka's own Uuid.randomUuid() avoids it for the same reason)."""
    while True:
        cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _docker_host_address(container: object) -> str:
    """The address at which the container's published ports are reached from this process."""
    docker_host = os.environ.get("DOCKER_HOST", "").strip()
    if not docker_host or docker_host.startswith("unix://"):
        # A local engine publishes on this machine. Not testcontainers' host(): with /.dockerenv present it answers
        # the default gateway's address for a unix socket. And not "localhost": it may resolve to ::1 first while
        # Podman publishes on IPv4 only.
        return "127.0.0.1"
    host = container.get_docker_client().host()  # type: ignore[attr-defined]
    return "127.0.0.1" if host == "localhost" else host


@contextmanager
def _testcontainers() -> Iterator[Broker]:
    _configure_testcontainers()
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    # Same port number inside and outside, bound up front: the broker must advertise the address clients reach,
    # and that is only known before start when we choose the host port ourselves.
    (port,) = free_ports(1)
    import docker

    client = docker.from_env(timeout=30)
    try:
        image = _kafka_image(client)
    finally:
        client.close()
    container = DockerContainer(image)
    host = _docker_host_address(container)
    container.with_bind_ports(port, port).with_envs(
        CLUSTER_ID=_cluster_id(),
        KAFKA_NODE_ID="1",
        KAFKA_PROCESS_ROLES="broker,controller",
        KAFKA_LISTENERS=f"PLAINTEXT://0.0.0.0:{port},CONTROLLER://localhost:9093",
        KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://{host}:{port}",
        KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
        KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
        KAFKA_INTER_BROKER_LISTENER_NAME="PLAINTEXT",
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
        KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="3",
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
        KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS="3",
        KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
        KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        KAFKA_NUM_PARTITIONS="3",
        KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
    ).waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
    # Not KafkaContainer: it drives Confluent Platform images and fails on the plain Apache Kafka image.
    for attempt in (1, 2):
        try:
            container.start()
            break
        except Exception as exc:
            logs = ""
            with contextlib.suppress(Exception):
                stdout, stderr = container.get_logs()
                logs = "\n".join((stdout + stderr).decode(errors="replace").splitlines()[-30:])
            with contextlib.suppress(Exception):
                container.stop()
            transient = any(marker in str(exc).lower() for marker in _TRANSIENT_ENGINE_ERRORS)
            if attempt == 2 or not transient:
                raise RuntimeError(
                    f"testcontainers could not start {image} (DOCKER_HOST={os.environ.get('DOCKER_HOST', '')!r}; "
                    "where Docker Hub is out of reach build the local image with scripts/local_images.py and set "
                    f"BACKFLUSH_KAFKA_IMAGE): {type(exc).__name__}: {exc}"
                    + (f"\n--- the container's log:\n{logs}" if logs else "")
                ) from exc
    try:
        bootstrap = f"{host}:{port}"
        wait_for_metadata(bootstrap, timeout=30)
        stdout, _ = container.get_logs()
        match = re.search(r"Kafka version: (\S+)", stdout.decode(errors="replace"))
        version = match.group(1) if match else image.rpartition(":")[2]
        yield Broker(bootstrap, "testcontainers", version)
    finally:
        container.stop()


@contextmanager
def _local_jvm() -> Iterator[Broker]:
    with LocalKafka() as broker:
        yield Broker(broker.bootstrap_servers, "local-jvm", broker.version)


#: The principals of the secure test broker and their roles: one per service, one per outside party's intake,
#: and `tests`, which only reads (as the command line's reading commands and the audit do).
SECURE_USERS: dict[str, Role] = {
    "manufacturer": Role.MANUFACTURER, "distributor": Role.DISTRIBUTOR, "warehouse": Role.WAREHOUSE,
    "holder": Role.ORDER_HOLDER, "shop-floor": Role.SHOP_FLOOR, "planner": Role.PLANNER, "tests": Role.READER,
}

#: Who speaks for each kind of writer in the tests (Flows publishes each event as its topic's writer).
SPEAKER_OF: dict[Writer, str] = {Writer(role.value): name for name, role in SECURE_USERS.items()
                                 if role is not Role.READER}


@contextmanager
def secure_local_broker() -> Iterator[LocalKafka]:
    """A broker of its own with a SASL_SSL listener and SCRAM-SHA-512 credentials for `SECURE_USERS` (random
    passwords), its CA in `broker.ca_file`; `broker.security_for(user)` gives a client's settings. ACLs are on:
    `await broker.agrant(SECURE_USERS, topic_prefix=...)` creates a deployment's topics and rights. Always a local
    JVM: neither an external broker nor the container image is set up for it."""
    import secrets

    with LocalKafka(scram_users={user: secrets.token_hex(12) for user in SECURE_USERS}) as broker:
        yield broker


@contextmanager
def provide_broker() -> Iterator[Broker]:
    """A running broker for the whole test session (see the module docstring for the order of preference)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    forced = os.environ.get("BACKFLUSH_KAFKA_BROKER", "").strip()
    if forced not in ("", "local-jvm", "testcontainers"):
        raise RuntimeError(f"BACKFLUSH_KAFKA_BROKER={forced!r}: expected local-jvm or testcontainers")
    if external:
        chosen = _external(external)
    elif forced == "testcontainers" or (forced == "" and docker_engine_answers()):
        chosen = _testcontainers()
    else:
        chosen = _local_jvm()
    with chosen as broker:
        yield broker
