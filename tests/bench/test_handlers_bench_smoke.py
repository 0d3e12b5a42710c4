"""`make bench-handlers` in miniature, so that it cannot rot: the three services measured, on this tree and on a
commit's, every record of the feed applied or (another service's) ignored, none refused, every order at its end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_the_handler_benchmark_measures_the_services_before_and_after_without_a_refusal() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.handlers", "--orders", "20", "--before", "HEAD"],
                            check=False, cwd=REPO, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    lines = [line for line in result.stdout.splitlines() if "µs/record" in line]
    assert [line.split()[1] for line in lines] == ["manufacturer", "distributor", "warehouse"] * 2
    for line in lines:
        records, applied, ignored, refused = map(int, re.findall(r"(\d+) (?:records|applied|ignored|refused)", line))
        assert (applied + ignored, refused) == (records, 0), line
    assert all(int(re.search(r"(\d+) applied", line).group(1)) == 240 for line in lines if "distributor" in line)
    assert all("orders: {'allocated': 10, 'delivered': 10}" in line for line in lines if "manufacturer" in line)
