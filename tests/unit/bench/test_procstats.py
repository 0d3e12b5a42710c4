"""The bench reads another process's CPU finely enough that a short, light run still measures above zero."""

from __future__ import annotations

import subprocess
import sys
from bench import procstats

_BURN_IN_A_THREAD_THEN_WAIT = """
import sys, threading, time
def burn():
    end = time.thread_time() + 0.003  # 3 ms of CPU: under one 10 ms clock tick
    while time.thread_time() < end:
        pass
print("ready", flush=True)
sys.stdin.readline()
worker = threading.Thread(target=burn)
worker.start()
worker.join()
print("burnt", flush=True)
sys.stdin.read()
"""


def test_a_few_milliseconds_of_cpu_in_a_thread_that_has_exited_are_counted() -> None:
    child = subprocess.Popen([sys.executable, "-c", _BURN_IN_A_THREAD_THEN_WAIT],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdin is not None and child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        before = procstats.sample(child.pid)
        assert before is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "burnt\n"
        after = procstats.sample(child.pid)
        assert after is not None
        # whole ticks would read 0 or 0.01 here; the burn and a thread's start and end are all that ran between
        assert 0.0025 <= after.cpu_seconds - before.cpu_seconds <= 0.008
    finally:
        child.communicate("")


def test_a_process_that_is_gone_samples_as_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert procstats.sample(child.pid) is None


_PARENT_OF_A_CHILD_THAT_BURNS = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
print(child.stdout.readline(), end="", flush=True)
sys.stdin.readline()
child.stdin.write("go\\n")
child.stdin.flush()
print(child.stdout.readline(), end="", flush=True)
sys.stdin.read()
child.communicate("")
"""


def test_a_few_milliseconds_of_a_live_childs_cpu_are_counted_with_its_parent() -> None:
    # the PostgreSQL server's backends are its children: a short run's few statements must not read as 0
    parent = subprocess.Popen([sys.executable, "-c", _PARENT_OF_A_CHILD_THAT_BURNS, _BURN_IN_A_THREAD_THEN_WAIT],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdin is not None and parent.stdout is not None
        assert parent.stdout.readline() == "ready\n"
        before = procstats.sample(parent.pid, children=True)
        assert before is not None
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "burnt\n"
        after = procstats.sample(parent.pid, children=True)
        assert after is not None
        assert 0.0025 <= after.cpu_seconds - before.cpu_seconds <= 0.008
    finally:
        parent.communicate("")
