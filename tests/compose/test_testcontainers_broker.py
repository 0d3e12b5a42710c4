"""The broker fixture's testcontainers branch, for real: broker, contract and flow tests run once on a testcontainers Kafka.

A pytest in a subprocess, with `BACKFLUSH_KAFKA_BROKER=testcontainers` and the engine's `DOCKER_HOST`, runs the
tests listed in `TESTCONTAINERS_TESTS` (the session `kafka` fixture then starts the Kafka image as a generic
testcontainers container), and the fixture's own line must say which broker it got.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable

import pytest
from compose_support import ROOT, Timeline, tail

pytestmark = [pytest.mark.compose, pytest.mark.kafka, pytest.mark.timeout(900)]

#: Broker tests that must also pass on a testcontainers broker: the broker itself, the contracts on the wire (the
#: CloudEvents headers of a round trip, and every kind of bad record dead-lettered with its reason), and both flows
#: end to end with the three services as processes.
TESTCONTAINERS_TESTS: tuple[str, ...] = (
    "tests/integration/test_local_kafka.py::test_round_trip_through_the_session_broker",
    "tests/integration/test_local_kafka.py::test_session_broker_is_kafka_4",
    "tests/e2e/test_first_order_round_trip.py",
    "tests/e2e/test_bad_input_catalogue.py",
    "tests/e2e/test_pre_product_flow.py::test_a_pre_product_order_is_flushed_racked_allocated_and_closed",
    "tests/e2e/test_post_product_flow.py::test_partial_completions_flush_exactly_what_one_completion_would_and_end_signed_for",
)
SUBPROCESS_TIMEOUT_S = 600


def test_broker_tests_pass_on_a_testcontainers_broker(
    container_engine: str, local_images: dict[str, str], terminal_write: Callable[[str], None]
) -> None:
    timeline = Timeline(terminal_write, prefix="[testcontainers]")
    env = {name: value for name, value in os.environ.items() if name != "KAFKA_BOOTSTRAP_SERVERS"}
    env.update(
        BACKFLUSH_KAFKA_BROKER="testcontainers",
        BACKFLUSH_KAFKA_IMAGE=local_images["KAFKA_IMAGE"],
        DOCKER_HOST=container_engine,
        TESTCONTAINERS_RYUK_DISABLED="true",
        TESTCONTAINERS_CONNECTION_MODE="docker_host",
    )
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", *TESTCONTAINERS_TESTS]
    with timeline.step(f"broker, contract and flow tests in a subprocess on {local_images['KAFKA_IMAGE']}"):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
                                  check=False, cwd=ROOT, env=env)
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
            pytest.fail(f"the subprocess pytest did not finish within {SUBPROCESS_TIMEOUT_S} s:\n{tail(output or '')}")
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"broker tests failed on testcontainers (exit {done.returncode}):\n{tail(output, 80)}"
    # `-rA` lists every outcome: each id (a module counts its tests) must have passed, nothing skipped.
    passed = re.findall(r"^PASSED (\S+)", output, re.MULTILINE)
    for test_id in TESTCONTAINERS_TESTS:
        assert any(name == test_id or name.startswith(f"{test_id}::") for name in passed), (test_id, tail(output))
    assert not re.search(r"^(SKIPPED|XFAIL|XPASS)", output, re.MULTILINE), tail(output)
    timeline.note(f"{len(passed)} tests passed on the testcontainers broker")
    lines = re.findall(r"^broker: .*$", output, re.MULTILINE)
    assert lines, f"the kafka fixture printed no `broker:` line:\n{tail(output)}"
    assert all(line.startswith("broker: testcontainers Apache Kafka 4.") for line in lines), lines
    timeline.note(lines[0])
