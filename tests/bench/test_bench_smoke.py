"""`make bench` in miniature, so that it cannot rot: every configuration's machinery at a tiny size, on the
session's broker, and a JSON that holds every figure the goals need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.broker import Broker

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("manufacturer", "distributor", "warehouse")


@pytest.mark.timeout(420)
def test_a_tiny_benchmark_measures_ours_against_both_chains_on_sqlite_and_postgresql(kafka: Broker,
                                                                                      tmp_path: Path) -> None:
    docs = tmp_path / "docs" / "benchmarks.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--orders", "20", "--pg-orders", "10", "--rate-orders", "10",
         "--rate", "10", "--configs", "sqlite,pg1,rate", "--before", "HEAD", "--profile", "--profile-waits", "0",
         "--bootstrap-servers", kafka.bootstrap_servers, "--out", str(tmp_path / "out"), "--docs", str(docs),
         "--stall-timeout", "90"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=400,
        env={**os.environ, "COLUMNS": "150"},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-4000:]

    figures = json.loads((docs.parent / "benchmarks" / "bench.json").read_text())
    assert figures == json.loads((tmp_path / "out" / "bench.json").read_text())
    assert set(figures["configs"]) == {"sqlite", "pg1", "rate"}
    for name, config in figures["configs"].items():
        assert config["errors"] == {}, name
        orders = config["orders"]
        for key in ("after", "before"):
            ours = config[key]
            assert ours["closed"] == orders and ours["end_states"] == {"closed": orders}, (name, key)
            assert ours["throughput_per_s"] > 0 and ours["latency_s"]["all"]["p99"] > 0
            assert ours["cores_used_by_services"] > 0
            for service in SERVICES:
                assert ours["services"][service]["cpu_ms_per_order"] > 0
                assert ours["services"][service]["peak_rss_mib"] > 10
            for baseline in ("raw", "guaranteed"):
                ratio = config["ratios"][key][baseline]
                assert ratio["throughput"] > 0 and ratio["p50"] > 0 and ratio["p99"] > 0 and ratio["cpu_per_order"] > 0
        for baseline in ("raw", "guaranteed"):
            assert config[baseline]["arrived"] == config[baseline]["messages"] == orders, (name, baseline)
        assert config["guaranteed"]["shape"] == "guaranteed" and config["raw"]["shape"] == "raw"
    assert figures["configs"]["pg1"]["after"]["database"] == figures["configs"]["pg1"]["guaranteed"]["database"] \
        == "PostgreSQL"
    for key in ("after", "before", "guaranteed"):  # the server's CPU, backends included, counts in pg1's goals
        assert figures["configs"]["pg1"][key]["processes"]["postgresql server"]["cpu_seconds"] > 0, key
    for key in ("after", "before"):
        assert "postgresql server" not in figures["configs"]["sqlite"][key]["processes"], key
    assert figures["configs"]["rate"]["after"]["rate_per_s"] == 10
    assert figures["meta"]["before_commit"] is not None

    goals = {(goal["config"], goal["figure"]): goal for goal in figures["goals"]}
    assert len(goals) == 8
    for (config, _figure), goal in goals.items():
        if config != "pg2":  # not run at this size: its goal says "no figure"
            assert goal["after"] is not None and goal["after_met"] in (True, False), goal
            assert goal["before"] is not None
    assert figures["configs"]["sqlite"]["after"]["profile"]["busiest"] in SERVICES

    page = docs.read_text()
    assert "## Goals (issue 18)" in page and "| ours before | ours after | after / before |" in page
    assert (docs.parent / "benchmarks" / "latency.png").stat().st_size > 10_000
