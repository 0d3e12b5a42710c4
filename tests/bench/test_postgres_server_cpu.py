"""The bench finds the PostgreSQL server that tests/support/postgres.py provides, and measures its CPU with its
backends', the exited ones included: the PostgreSQL configurations' goals count the database's work too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bench import procstats
from bench.baseline import asyncpg_dsn
from bench.run import postmaster_pid
from support.postgres import provide_postgres

pytestmark = [pytest.mark.postgres]

# A few hundred milliseconds of one backend's CPU: well above /proc's 10 ms ticks in which children are counted.
_CPU_HEAVY_QUERY = "SELECT count(*) FROM generate_series(1, 3000000)"


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with provide_postgres("bench_server_cpu") as url:
        yield url


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


async def test_the_server_is_found_on_every_look_not_only_when_the_asking_backend_outlives_its_connection(
        server_url: str) -> None:
    # The backend that answers pg_backend_pid() exits as soon as its connection closes: the bench found the server
    # only when /proc still showed that backend afterwards (about five looks in six here), and a whole run went without it.
    found = [await postmaster_pid(server_url) for _ in range(100)]

    assert None not in found
    assert len(set(found)) == 1
    pid = found[0]
    assert pid is not None and _command(pid) == "postgres"
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"/postgres")  # the postmaster


async def test_the_servers_sample_grows_by_the_cpu_of_a_backend_that_has_exited(server_url: str) -> None:
    pid = await postmaster_pid(server_url)
    assert pid is not None
    before = procstats.sample_named(procstats.DATABASE_SERVER, pid)

    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.fetchval(_CPU_HEAVY_QUERY)
    finally:
        await connection.close()
    await asyncio.sleep(0.5)  # the postmaster reaps the backend: its CPU moves to the postmaster's children's

    after = procstats.sample_named(procstats.DATABASE_SERVER, pid)
    assert before is not None and after is not None
    assert after.cpu_seconds - before.cpu_seconds >= 0.05
