"""A service as a process: health pings the broker, SIGTERM stops it gracefully, bad settings stop it in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from backflush_shared.local_stack import LocalStack
from support.broker import Broker
from support.stack import new_prefix

pytestmark = [pytest.mark.kafka]


def test_health_answers_204_while_the_broker_answers_and_sigterm_stops_gracefully(kafka: Broker, tmp_path: Path) -> None:
    stack = LocalStack(bootstrap_servers=kafka.bootstrap_servers, workdir=tmp_path, topic_prefix=new_prefix(),
                       services=("distributor",))
    stack.start()
    service = stack.processes["distributor"]
    with urllib.request.urlopen(f"http://127.0.0.1:{service.health_port}/health", timeout=5) as response:
        assert response.status == 204
    assert service.process is not None
    service.process.send_signal(signal.SIGTERM)
    service.process.wait(timeout=30)
    log = service.log_path.read_text()
    assert "FastStream app shut down gracefully." in log
    assert "Traceback" not in log
    assert all(line.startswith("{") for line in log.splitlines() if line.strip()), "every log line is JSON"


def serve(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backflush_shared", "serve", "distributor"],
        env={**os.environ, "BACKFLUSH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/d.db", **env},
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unreachable_broker_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    line = one_line_error(serve({"BACKFLUSH_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                                 "BACKFLUSH_STARTUP_TIMEOUT_SECONDS": "2"}, tmp_path))
    assert "cannot reach Kafka at 127.0.0.1:1" in line


def test_a_bad_database_url_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    line = one_line_error(serve({"BACKFLUSH_DATABASE_URL": "not a url"}, tmp_path))
    assert "database URL 'not a url'" in line


def test_a_bad_setting_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    line = one_line_error(serve({"BACKFLUSH_HEALTH_PORT": "eighty"}, tmp_path))
    assert "BACKFLUSH_HEALTH_PORT" in line


def test_a_failing_database_url_is_shown_without_its_password(tmp_path: Path) -> None:
    line = one_line_error(serve({"BACKFLUSH_DATABASE_URL": "mysql+aiomysql://backflush:s3cret-pw@db.example/x"},
                                tmp_path))
    assert "database URL 'mysql+aiomysql://backflush:****@db.example/x'" in line
    assert "s3cret-pw" not in line
