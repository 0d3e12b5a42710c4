"""`make bench` in miniature, so that it cannot rot: a few orders and a short baseline on the session's broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.broker import Broker

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(420)
def test_a_tiny_benchmark_writes_every_figure_and_the_plot(kafka: Broker, tmp_path: Path) -> None:
    docs = tmp_path / "docs" / "benchmarks.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--orders", "6", "--baseline-messages", "200", "--profile",
         "--bootstrap-servers", kafka.bootstrap_servers, "--out", str(tmp_path / "out"), "--docs", str(docs),
         "--stall-timeout", "90", "--profile-waits", "2"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=400,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    figures = json.loads((tmp_path / "out" / "bench.json").read_text())
    ours, baseline, ratios = figures["ours"], figures["baseline"], figures["ratios"]
    assert ours["orders"] == ours["closed"] == 6
    assert ours["end_states"] == {"closed": 6}
    assert ours["pre_orders"] == ours["post_orders"] == 3
    assert ours["throughput_per_s"] > 0
    for flow in ("all", "pre", "post"):
        for p in ("p50", "p95", "p99"):
            assert ours["latency_s"][flow][p] > 0
            assert baseline["latency_s"][flow][p] > 0
    assert [len(ours["hops"][flow]) for flow in ("pre", "post")] == [6 + 1, 9 + 1]  # + the final relay leg
    assert all(hop["n"] == 3 and hop["p50"] is not None for flow in ("pre", "post") for hop in ours["hops"][flow])
    assert ours["hop_counts"] == baseline["hop_counts"] == {"pre": 6, "post": 9}
    for name in ("manufacturer", "distributor", "warehouse"):
        assert ours["processes"][name]["cpu_seconds"] >= 0
        assert ours["processes"][name]["peak_rss_mib"] > 10
    assert ours["message_bytes"]["pre"]["value"] > 50
    assert ours["profile"]["busiest"] in ("manufacturer", "distributor", "warehouse")

    assert baseline["messages"] == baseline["arrived"] == 200
    assert baseline["throughput_per_s"] > 0
    assert ratios["throughput"] > 0 and ratios["latency"]["p99"] > 0
    assert set(ratios["goal"]) >= {"throughput_met", "p99_met"}
    assert figures["meta"]["machine"]["nproc"] >= 1

    assert (tmp_path / "out" / "latency.png").stat().st_size > 10_000
    assert (docs.parent / "benchmarks" / "latency.png").is_file()
    page = docs.read_text()
    assert "benchmarks/latency.png" in page and "| completed per second |" in page
