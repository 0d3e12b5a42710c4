"""CPU seconds and peak memory of a running process from /proc, and a description of this machine."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float  # user + system, this process only (its threads included, children not)
    peak_rss_mib: float  # VmHWM: the high-water mark of its resident memory
    rss_mib: float


def sample(pid: int) -> ProcSample | None:
    """None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing parenthesis
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    memory = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
    return ProcSample(
        cpu_seconds=(utime + stime) / _TICKS,
        peak_rss_mib=int(memory.get("VmHWM", 0)) / 1024,
        rss_mib=int(memory.get("VmRSS", 0)) / 1024,
    )


def self_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(kafka_version: str) -> dict[str, object]:
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "kafka": kafka_version,
        "aiokafka": _version("aiokafka"),
        "faststream": _version("faststream"),
        "sqlalchemy": _version("sqlalchemy"),
        "pydantic": _version("pydantic"),
    }
