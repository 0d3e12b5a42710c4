"""py-spy attached to the running services, and its samples summed into the lists the report shows.

py-spy samples a process from outside (no code change, `--nonblocking`: it never pauses the service). Its raw
output is one line per distinct stack, `frame;frame;...;leaf COUNT`, each frame `function (file:line)`.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.is_file() else shutil.which("py-spy")


@dataclass
class Recorder:
    """One `py-spy record` per service; `stop()` makes each write its file."""

    out_dir: Path
    rate: int = 50
    processes: dict[str, tuple[subprocess.Popen[bytes], Path]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def start(self, pids: dict[str, int]) -> None:
        binary = py_spy()
        if binary is None:
            self.errors = {name: "py-spy is not installed" for name in pids}
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            raw = self.out_dir / f"{name}.pyspy.txt"
            log = (self.out_dir / f"{name}.pyspy.log").open("wb")
            process = subprocess.Popen(
                [binary, "record", "--pid", str(pid), "--rate", str(self.rate), "--nonblocking", "--threads",
                 "--format", "raw", "--output", str(raw)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            log.close()
            self.processes[name] = (process, raw)

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, (process, _raw) in self.processes.items()}

    def stop(self) -> dict[str, Path]:
        """SIGINT makes py-spy write what it sampled; returns the files written."""
        for process, _raw in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        written: dict[str, Path] = {}
        for name, (process, raw) in self.processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if raw.is_file() and raw.stat().st_size > 0:
                written[name] = raw
            else:
                log = self.out_dir / f"{name}.pyspy.log"
                tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
                self.errors[name] = "py-spy wrote no samples: " + (" | ".join(tail) or "no output")
        return written


def _parse_frame(frame: str) -> tuple[str, str, int | None]:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), "", None
    line = match.group("line")
    return match.group("function"), match.group("file"), int(line) if line else None


def _short_file(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "/lib/python3" and "/" in tail else tail
    return path


def _package(path: str) -> str:
    short = _short_file(path)
    if short.startswith("<") or not short:
        return "other"
    head = short.split("/", 1)[0]
    return head.removesuffix(".py")


#: Frames every stack of the main thread passes through: their inclusive time says nothing.
ENTRY_FILES = ("backflush_shared/__main__.py", "backflush_shared/cli.py")


def _thread_kind(frame: str) -> str:
    """`thread (0x7f..): Thread-3 (_connection_worker_thread)` -> `SQLite connection (aiosqlite)`."""
    name = frame.split(":", 1)[1].strip() if ":" in frame else frame
    if "_connection_worker_thread" in name:
        return "SQLite connections (aiosqlite worker threads)"
    if name == "MainThread":
        return "main thread (event loop)"
    return "other threads"


def _waiting(function: str, file: str) -> bool:
    """A leaf that is a thread waiting, which py-spy's `--nonblocking` sampling may still count as active."""
    short = _short_file(file)
    return (short == "selectors.py" and function.endswith(".select")) or (
        short == "threading.py" and function.endswith(".wait"))


def summarise(raw: Path, *, top: int = 10) -> dict[str, object]:
    """Own time (leaf frames) per function and per package, and inclusive time of our own functions.

    Samples whose leaf is the event loop waiting in epoll or a thread waiting on a condition are counted apart
    (`waiting_share`) and left out of the lists, whose shares are of the remaining (working) samples.
    """
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    own_line: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    ours_inclusive: Counter[str] = Counter()
    total = 0
    waiting = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        names = stack.split(";")
        thread = "all threads"
        if names[0].startswith("thread ("):  # recorded with --threads: "thread (TID): NAME"
            thread = _thread_kind(names.pop(0))
        frames = [_parse_frame(f) for f in names]
        if not frames:  # a thread with no Python frame (py-spy --threads)
            continue
        function, file, number = frames[-1]
        if _waiting(function, file):
            waiting += count
            continue
        total += count
        threads[thread] += count
        own[f"{function} ({_short_file(file)})"] += count
        own_line[f"{function} ({_short_file(file)}:{number})"] += count
        packages[_package(file)] += count
        seen: set[str] = set()
        for function, file, _number in frames:
            if "backflush" in file and _short_file(file) not in ENTRY_FILES:
                name = f"{function} ({_short_file(file)})"
                if name not in seen:
                    seen.add(name)
                    ours_inclusive[name] += count

    def rows(counter: Counter[str], n: int) -> list[dict[str, object]]:
        return [{"entry": name, "samples": samples, "share": round(samples / total, 4) if total else 0.0}
                for name, samples in counter.most_common(n)]

    return {
        "samples": total,
        "waiting_samples": waiting,
        "waiting_share": round(waiting / (total + waiting), 4) if total + waiting else 0.0,
        "top_own": rows(own, top),
        "top_own_lines": rows(own_line, top),
        "by_package": rows(packages, top),
        "by_thread": rows(threads, top),
        "top_inclusive_ours": rows(ours_inclusive, top),
    }


def wait_snapshot(pid: int, out: Path, *, seconds: int = 10, rate: int = 50) -> dict[str, object]:
    """Where a service's threads spend wall time for a few seconds, idle time included (native frames).

    `py-spy record --native --idle --threads` pauses the process for each sample (blocking mode), so this runs
    only once, for `seconds`, in the steady state of the run. It answers what the own-time profile cannot: how
    much of the time the event loop has nothing to do, and how long SQLite connections sleep in SQLite's busy
    handler, waiting for the database's write lock held by another connection of the same process.
    """
    binary = py_spy()
    if binary is None:
        return {"error": "py-spy is not installed"}
    command = [binary, "record", "--pid", str(pid), "--native", "--idle", "--threads", "--duration", str(seconds),
               "--rate", str(rate), "--format", "raw", "--output", str(out)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "py-spy did not finish"}
    if not out.is_file():
        return {"error": (done.stderr or done.stdout).strip()[-300:] or "py-spy wrote nothing"}
    threads: Counter[str] = Counter()
    busy: Counter[str] = Counter()
    sqlite: Counter[str] = Counter()
    epoll: Counter[str] = Counter()
    for line in out.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread = stack.split(";", 1)[0]
        threads[thread] += count
        if "sqlite3InvokeBusyHandler" in stack:
            busy[thread] += count
        elif "libsqlite3" in stack or "_sqlite3" in stack:
            sqlite[thread] += count
        elif "epoll_wait" in stack or "EpollSelector.select" in stack:
            epoll[thread] += count
    main = next((t for t in threads if "MainThread" in t), None)
    per_thread = max(threads.values(), default=0)  # samples of one thread over the window
    connections = [t for t in threads if "_connection_worker_thread" in t]
    if not per_thread:
        return {"error": "no samples"}
    return {
        "seconds": seconds,
        "samples_per_thread": per_thread,
        "event_loop_idle_share": round(epoll[main] / threads[main], 3) if main else None,
        "sqlite_connection_threads": len(connections),
        # thread-seconds per second of wall time: 1.0 = one connection sleeping all the time
        "sqlite_busy_handler_sleep_per_s": round(sum(busy[t] for t in connections) / per_thread, 3),
        "sqlite_working_per_s": round(sum(sqlite[t] for t in connections) / per_thread, 3),
        "raw": str(out),
    }
