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
    cpu_seconds: float  # user + system: its threads included, its children only when sampled with them
    peak_rss_mib: float  # VmHWM: the high-water mark of its resident memory
    rss_mib: float


def stat_fields(pid: int | str) -> list[str]:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name (field 2) may hold spaces and parentheses: split after its closing parenthesis
    return stat[stat.rindex(")") + 2 :].split()


def command(pid: int | str) -> str:
    """The process's command name (proc(5)'s comm: what PostgreSQL's backends keep whatever title they show)."""
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _live_children_seconds(pid: int) -> float:
    """CPU seconds of the live children of `pid` (a server's backends), each from its own CPU clock."""
    seconds = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = stat_fields(entry.name)
        except (OSError, ValueError):
            continue
        if fields[1] == str(pid):  # field 4 of proc(5): the parent
            seconds += _own_seconds(int(entry.name), fields)
    return seconds


def _children_seconds(pid: int, fields: list[str]) -> float:
    """CPU seconds of every child of `pid`, reaped or live; `fields` is the stat it was sampled with.

    The reaped ones are only in the parent's cutime and cstime, whole ticks of their summed CPU (so off by under
    two ticks in all, however many); the live ones each read from their CPU clock. A child reaped between reading
    the parent and the children would count in neither (or twice if read the other way round): read again then.
    """
    for _ in range(5):
        reaped = int(fields[13]) + int(fields[14])  # cutime, cstime: fields 16 and 17 of proc(5)
        live = _live_children_seconds(pid)
        try:
            again = stat_fields(pid)
        except OSError:
            break
        if int(again[13]) + int(again[14]) == reaped:
            break
        fields = again
    return reaped / _TICKS + live


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


def _own_seconds(pid: int, fields: list[str]) -> float:
    """The process's own CPU (its threads, not its children): its CPU clock, else utime + stime in ticks."""
    clock = _process_cpu_clock_seconds(pid)
    return clock if clock is not None else (int(fields[11]) + int(fields[12])) / _TICKS


def sample(pid: int, children: bool = False) -> ProcSample | None:
    """None once the process is gone. With `children`, their CPU counts too (PostgreSQL's backends)."""
    try:
        fields = stat_fields(pid)
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    cpu_seconds = _own_seconds(pid, fields)
    if children:
        cpu_seconds += _children_seconds(pid, fields)
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
