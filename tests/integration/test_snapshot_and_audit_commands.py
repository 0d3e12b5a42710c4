"""What `demo --compose` and the compose test run inside a container: `backflush snapshot` and `audit --only`,
refusing what they cannot read with one line instead of reading an empty database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def backflush(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backflush_shared", *args], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})


def test_a_snapshot_of_a_database_that_is_not_there_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "distributor.db"
    done = backflush("snapshot", "distributor", "--database", f"sqlite+aiosqlite:///{missing}")
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: the distributor has no database yet: no file {missing}"
    assert not missing.exists()


def test_a_snapshot_of_an_unknown_service_names_the_known_ones(tmp_path: Path) -> None:
    done = backflush("snapshot", "shipper", "--database", f"sqlite+aiosqlite:///{tmp_path}/x.db")
    assert done.returncode == 2
    assert done.stderr.strip() == "error: unknown service 'shipper': one of manufacturer, distributor, warehouse"


def test_audit_only_refuses_an_unknown_service() -> None:
    done = backflush("audit", "--only", "shipper")
    assert done.returncode == 2
    assert "unknown service 'shipper': one of manufacturer, distributor, warehouse" in done.stderr


def test_audit_only_one_service_reads_only_that_database(tmp_path: Path) -> None:
    missing = tmp_path / "warehouse.db"
    done = backflush("audit", "--only", "warehouse", "--warehouse-database", f"sqlite+aiosqlite:///{missing}",
                     "--json")
    assert done.returncode == 1, done.stderr
    assert "warehouse: database" in done.stdout and f"no database at {missing}" in done.stdout
    assert "manufacturer" not in done.stdout and "distributor" not in done.stdout
