"""CPU seconds and peak memory of a running process from /proc, and a description of this machine."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    cpu_seconds: float  # user + system, this process only (its threads included, children not)
    peak_rss_mib: float  # VmHWM: the high-water mark of its resident memory
    rss_mib: float


def stat_fields(pid: int | str) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name (field 2) may hold spaces and parentheses: split after its closing parenthesis
    return stat[stat.rindex(")") + 2 :].split()


def command(pid: int | str) -> str:
    """The process's command name (proc(5)'s comm: what PostgreSQL's backends keep whatever title they show)."""
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _children_ticks(pid: int) -> int:
    """CPU ticks of the children of `pid`: the reaped ones (cutime, cstime) and the live ones (a server's backends)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = stat_fields(entry.name)
        except (OSError, ValueError):
            continue
        if fields[1] == str(pid):  # field 4 of proc(5): the parent
            ticks += int(fields[11]) + int(fields[12])
    return ticks


def _process_cpu_clock_seconds(pid: int) -> float | None:
    """The process's CPU clock (every thread, exited ones included), in nanoseconds' resolution.

    /proc's utime and stime count whole clock ticks (10 ms here): a relay that handled a few dozen records in a
    one-second run reads as 0 and its ratio cannot be formed. Linux names another process's CPU clock
    MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED); None where the kernel does not offer it.
    """
    try:
        return time.clock_gettime((~pid << 3) | 2)
    except OSError:
        return None


def sample(pid: int, children: bool = False) -> ProcSample | None:
    """None once the process is gone. With `children`, their CPU counts too (PostgreSQL's backends)."""
    try:
        fields = stat_fields(pid)
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    if children:
        utime += int(fields[13]) + int(fields[14]) + _children_ticks(pid)  # cutime, cstime: reaped children
    cpu_seconds = (utime + stime) / _TICKS
    if not children:
        cpu_seconds = _process_cpu_clock_seconds(pid) or cpu_seconds
    memory = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
    return ProcSample(
        cpu_seconds=cpu_seconds,
        peak_rss_mib=int(memory.get("VmHWM", 0)) / 1024,
        rss_mib=int(memory.get("VmRSS", 0)) / 1024,
    )


#: The name the bench gives the PostgreSQL server (its postmaster): sampled with its backends, its CPU reported
#: apart from the services' (like the broker's) and beside it.
DATABASE_SERVER = "postgresql server"


def sample_named(name: str, pid: int) -> ProcSample | None:
    return sample(pid, children=name == DATABASE_SERVER)


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
