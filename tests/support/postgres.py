"""A PostgreSQL server for tests, in order of preference.

1. `BACKFLUSH_TEST_POSTGRES_URL` set: that database, as is (a CI service, a server you run yourself). It must be an
   SQLAlchemy URL, e.g. `postgresql+asyncpg://postgres@127.0.0.1:5432/backflush`.
2. Otherwise a throw-away server of the machine's own PostgreSQL binaries (`/usr/lib/postgresql/<n>/bin`, Debian's
   layout), installed first with apt-get when they are missing and we are root: `initdb` in a fresh temporary
   directory, started on a free 127.0.0.1 port with trust authentication, one database created, and everything
   stopped and deleted when the context ends.

No Docker here on purpose: our machines have no Docker engine, while Debian's packages are always reachable.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

URL_ENV = "BACKFLUSH_TEST_POSTGRES_URL"
DEFAULT_DATABASE = "backflush"
SERVER_GLOB = "/usr/lib/postgresql/*/bin/initdb"
# The OS account that runs the server when we are root: PostgreSQL refuses to run as root, and Debian's package
# creates this account.
SERVER_USER = "postgres"
# Settings for a server whose data is thrown away: durability costs time and buys nothing here.
_TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "log_min_messages": "warning",
}
_START_ATTEMPTS = 3  # a free port can be taken by someone else between our probe and the server's bind


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be provided; the message says what was tried and what failed."""


def _say(message: str) -> None:
    # Visible with `pytest -s` and in the captured output of a failing test: installs and server starts take
    # seconds, and whoever waits should see why.
    print(f"[provide_postgres] {message}", file=sys.stderr, flush=True)


def _run(command: Sequence[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    """Runs a command; returns its output, or raises with the output in the message when it fails."""
    try:
        completed = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PostgresUnavailable(f"{' '.join(command)}: {error}") from error
    if completed.returncode != 0:
        raise PostgresUnavailable(
            f"{' '.join(command)} exited {completed.returncode}:\n{completed.stdout}{completed.stderr}"
        )
    return completed.stdout


def _version_key(initdb: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin/initdb -> (15,); the newest major version wins when several are installed.
    return tuple(int(part) for part in re.findall(r"\d+", initdb.parent.parent.name)) or (0,)


def find_server_binaries() -> Path | None:
    """The bin directory of the newest installed PostgreSQL server, or None."""
    candidates = sorted((Path(p) for p in glob.glob(SERVER_GLOB)), key=_version_key)
    for initdb in reversed(candidates):
        bindir = initdb.parent
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def install_server_binaries() -> Path:
    """Installs Debian's `postgresql` package (server, client, the `postgres` account); returns its bin dir."""
    if os.geteuid() != 0:
        raise PostgresUnavailable(
            "PostgreSQL server binaries not found under /usr/lib/postgresql and not root, so cannot install them: "
            f"run `sudo apt-get install postgresql`, or set {URL_ENV} to a database URL"
        )
    if shutil.which("apt-get") is None:
        raise PostgresUnavailable(f"PostgreSQL server binaries not found and no apt-get: set {URL_ENV}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Another apt run (another test session, an unattended upgrade) may hold the lock: wait for it, not fail.
    lock_wait = ["-o", "DPkg::Lock::Timeout=300"]
    started = time.monotonic()
    _say("PostgreSQL server binaries not found; running `apt-get update`")
    _run(["apt-get", *lock_wait, "update"], timeout=600, env=env)
    _say("running `apt-get install -y --no-install-recommends postgresql`")
    _run(["apt-get", *lock_wait, "install", "-y", "--no-install-recommends", "postgresql"], timeout=900, env=env)
    bindir = find_server_binaries()
    if bindir is None:
        raise PostgresUnavailable(f"installed the postgresql package but still no {SERVER_GLOB}")
    _say(f"installed PostgreSQL in {time.monotonic() - started:.1f} s: {bindir}")
    return bindir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Cluster:
    """One throw-away server: a data directory, its log and socket, all inside one temporary directory."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = 0
        # Root cannot run PostgreSQL; anyone else runs it as themselves.
        self.account = pwd.getpwnam(SERVER_USER) if os.geteuid() == 0 else None

    def _as_server_user(self, command: Sequence[str]) -> list[str]:
        if self.account is None:
            return list(command)
        return ["runuser", "-u", SERVER_USER, "--", *command]

    def prepare(self) -> None:
        if self.account is not None:
            # The server account must own the tree it writes; mkdtemp made it root's with mode 0700.
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        _run(
            self._as_server_user(
                [
                    str(self.bindir / "initdb"),
                    "--pgdata",
                    str(self.data),
                    "--username",
                    "postgres",
                    "--auth",
                    "trust",  # only 127.0.0.1 and our own socket directory reach it
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",  # the same collation on every machine, whatever its locales
                    "--no-sync",
                    "--no-instructions",
                ]
            ),
            timeout=120,
        )

    def start(self) -> None:
        failures: list[str] = []
        for _ in range(_START_ATTEMPTS):
            self.port = _free_port()
            self._write_settings()
            try:
                _run(
                    self._as_server_user(
                        [
                            str(self.bindir / "pg_ctl"),
                            "--pgdata",
                            str(self.data),
                            "--log",
                            str(self.log),
                            "--wait",
                            "--timeout",
                            "60",
                            "start",
                        ]
                    ),
                    timeout=90,
                )
                return
            except PostgresUnavailable as error:
                failures.append(f"{error}\nserver log:\n{self._log_tail()}")
        raise PostgresUnavailable(f"the server did not start in {_START_ATTEMPTS} attempts:\n" + failures[-1])

    def _write_settings(self) -> None:
        # postgresql.auto.conf is read last, so these win over postgresql.conf; rewritten on each attempt because
        # the port changes. Written by root or the owner, it must stay readable to the server account.
        settings = {
            **_TEST_SETTINGS,
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
        }
        path = self.data / "postgresql.auto.conf"
        header = "# Written by tests/support/postgres.py for a throw-away test server.\n"
        path.write_text(header + "".join(f"{name} = {value}\n" for name, value in settings.items()))
        if self.account is not None:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def create_database(self, name: str) -> None:
        _run(
            [
                str(self.bindir / "createdb"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--username",
                "postgres",
                name,
            ],
            timeout=60,
        )

    def stop(self) -> None:
        # Immediate mode: the data is about to be deleted, so there is nothing to flush.
        try:
            _run(
                self._as_server_user(
                    [str(self.bindir / "pg_ctl"), "--pgdata", str(self.data), "--mode", "immediate", "--wait", "stop"]
                ),
                timeout=60,
            )
        except PostgresUnavailable as error:
            _say(f"pg_ctl stop failed, killing the postmaster: {error}")
            self._kill_postmaster()

    def _kill_postmaster(self) -> None:
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 9)
        except (OSError, ValueError, IndexError):
            pass

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


@contextmanager
def provide_postgres(database: str = DEFAULT_DATABASE) -> Iterator[str]:
    """Yields an SQLAlchemy URL (`postgresql+asyncpg://...`) of a PostgreSQL database that exists and is empty.

    From `BACKFLUSH_TEST_POSTGRES_URL` when set (then `database` is ignored and nothing is started or cleaned up);
    otherwise a server of its own, stopped and deleted on exit.
    """
    external = os.environ.get(URL_ENV)
    if external:
        _say(f"using {URL_ENV}")
        yield external
        return

    bindir = find_server_binaries() or install_server_binaries()
    root = Path(tempfile.mkdtemp(prefix="backflush-pg-"))
    cluster = _Cluster(bindir, root)
    running = False
    try:
        started_at = time.monotonic()
        cluster.prepare()
        initialized_at = time.monotonic()
        cluster.start()
        running = True
        cluster.create_database(database)
        ready_at = time.monotonic()
        _say(
            f"PostgreSQL {bindir.parent.name} up on 127.0.0.1:{cluster.port}: initdb "
            f"{initialized_at - started_at:.1f} s, start + createdb {ready_at - initialized_at:.1f} s; data in {root}"
        )
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/{database}"
    finally:
        # A start that timed out may still have left a postmaster behind: its pid file says so.
        if running or (cluster.data / "postmaster.pid").exists():
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
