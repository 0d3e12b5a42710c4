"""Which Apache Kafka broker a test run gets, in order of preference.

1. `KAFKA_BOOTSTRAP_SERVERS` set: that broker, as is (CI services, `make kafka-up`, a broker you run yourself). Its
   version cannot be read over the protocol: it is taken from `BACKFLUSH_KAFKA_BROKER_VERSION`, else from the state
   file of `make kafka-up` when that is the broker, else reported as "unknown".
2. A Docker engine answers (the docker SDK honours `DOCKER_HOST`): the `apache/kafka` image through testcontainers
   (`BACKFLUSH_KAFKA_IMAGE`, default apache/kafka:4.1.1).
3. Otherwise: a local JVM broker from Maven Central jars (`backflush_shared.local_kafka`).

`BACKFLUSH_KAFKA_BROKER=local-jvm|testcontainers` forces one of the last two. There is no fourth option: when no
broker can be had the fixture raises, so broker tests error out loudly instead of being skipped.
"""

from __future__ import annotations

import os
import re
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from backflush_shared.local_kafka import LocalKafka, LocalKafkaError, free_ports, read_state, wait_for_metadata

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


@contextmanager
def _testcontainers() -> Iterator[Broker]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    image = os.environ.get("BACKFLUSH_KAFKA_IMAGE", "").strip() or DEFAULT_IMAGE
    # Same port number inside and outside, bound up front: the broker must advertise the address clients reach,
    # and that is only known before start when we choose the host port ourselves.
    (port,) = free_ports(1)
    container = DockerContainer(image)
    host = container.get_docker_client().host()
    # "localhost" may resolve to ::1 first while the port is published on IPv4 only (Podman).
    host = "127.0.0.1" if host == "localhost" else host
    container.with_bind_ports(port, port).with_envs(
        CLUSTER_ID=urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="),
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
    with container:
        bootstrap = f"{host}:{port}"
        wait_for_metadata(bootstrap, timeout=30)
        stdout, _ = container.get_logs()
        match = re.search(r"Kafka version: (\S+)", stdout.decode(errors="replace"))
        version = match.group(1) if match else image.rpartition(":")[2]
        yield Broker(bootstrap, "testcontainers", version)


@contextmanager
def _local_jvm() -> Iterator[Broker]:
    with LocalKafka() as broker:
        yield Broker(broker.bootstrap_servers, "local-jvm", broker.version)


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
