"""`make bench`: our three services against two baselines, on SQLite and on PostgreSQL, in one run.

    python -m bench.run [--orders 10000] [--pg-orders 2000] [--rate-orders 300] [--rate 10]
                        [--configs sqlite,pg1,pg2,rate] [--before REF] [--profile] [--out bench/results/]

Configurations (each runs our services and both baselines with the same orders, hops, sizes and keys):

- `sqlite`: `--orders` orders placed at once, one process per service on fresh SQLite files;
- `pg1` / `pg2`: `--pg-orders` orders at once on PostgreSQL (a database per service, started by the project's own
  `tests/support/postgres.py`), one / two processes per service (the baselines with as many processes per host);
- `rate`: `--rate-orders` orders at `--rate` per second on SQLite: latency without queueing, and the cores the
  services use for that load.

The baselines (`bench/baseline.py`): the raw relay chain, and the guarantee-equal chain (the dbrelay shape:
inbox, per-order state and outbox in one transaction per batch, on the configuration's database). With
`--before REF`, our services also run from REF's sources (a temporary `git worktree`, same venv) in every
configuration, so each before/after pair is measured in one run. Reports a table on the terminal, the JSON and
the latency plot in `--out`, docs/benchmarks.md (with `docs/benchmarks/bench.json` and `latency.png`) unless
`--no-docs`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console

from bench import procstats, report
from bench.baseline import HOSTS, BaselineConfig, asyncpg_dsn, run_baseline
from bench.ours import SERVICES, OursConfig, run_ours

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results"
DEFAULT_DOCS = REPO / "docs" / "benchmarks.md"
CONFIGS = ("sqlite", "pg1", "pg2", "rate")

console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000, help="orders at once in the sqlite configuration")
    parser.add_argument("--pg-orders", type=int, default=2_000, help="orders at once in pg1 and pg2")
    parser.add_argument("--rate-orders", type=int, default=300, help="orders in the rate configuration")
    parser.add_argument("--rate", type=float, default=10.0, help="orders (and baseline messages) per second in the "
                                                                 "rate configuration")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="which configurations, comma-separated, of " + ", ".join(CONFIGS))
    parser.add_argument("--before", metavar="REF", default=None,
                        help="also run our services from this git commit (a temporary worktree), for before/after")
    parser.add_argument("--post-share", type=float, default=0.5, help="fraction of post-product orders")
    parser.add_argument("--profile", action="store_true",
                        help="sample the services with py-spy in one configuration (ours, after)")
    parser.add_argument("--profile-config", default="sqlite", choices=CONFIGS,
                        help="with --profile: which configuration is sampled")
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--profile-waits", type=int, default=10, metavar="SECONDS",
                        help="with --profile: a wall-clock snapshot of every service this long")
    parser.add_argument("--bootstrap-servers", default=None, help="use this broker instead of starting a local one")
    parser.add_argument("--postgres-url", default=None,
                        help="a PostgreSQL server to create the databases on (postgresql+asyncpg://...); default: "
                             "tests/support/postgres.py starts one of the machine's own")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="the services' log level (INFO is what they run with when deployed)")
    parser.add_argument("--stall-timeout", type=float, default=180.0,
                        help="give up a run when nothing completes for this many seconds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON, plot and logs go")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS,
                        help="the benchmarks page to write (its folder's benchmarks/ gets bench.json and the plot)")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    args.configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = set(args.configs) - set(CONFIGS)
    if unknown or not args.configs:
        parser.error(f"--configs: choose from {', '.join(CONFIGS)} (got {args.configs})")
    if min(args.orders, args.pg_orders, args.rate_orders) < 1:
        parser.error("every size must be at least 1")
    if not 0.0 <= args.post_share <= 1.0:
        parser.error("--post-share must be between 0 and 1")
    if args.rate <= 0:
        parser.error("--rate must be above 0")
    return args


def _command(argv: list[str] | None) -> str:
    return "python -m bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)


def _git(*command: str) -> str:
    return subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()


def _git_state() -> str:
    """The commit the services ran from, and whether the work tree differed from it."""
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "shared", "services")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} (shared/ or services/ changed since)" if dirty else commit


@contextlib.contextmanager
def before_tree(ref: str) -> Iterator[tuple[str, str]]:
    """REF checked out in a temporary worktree; yields (its short commit, a PYTHONPATH of its source dirs)."""
    commit = _git("rev-parse", "--short", f"{ref}^{{commit}}")
    path = Path(tempfile.mkdtemp(prefix="backflush-bench-before-")) / "tree"
    _git("worktree", "add", "--detach", str(path), commit)
    try:
        sources = [path / "shared" / "src", *(path / "services" / name / "src" for name in SERVICES)]
        missing = [str(s) for s in sources if not s.is_dir()]
        if missing:
            raise SystemExit(f"--before {ref}: no {', '.join(missing)} in that commit")
        yield commit, os.pathsep.join(str(s) for s in sources)
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            _git("worktree", "remove", "--force", str(path))
        shutil.rmtree(path.parent, ignore_errors=True)


@contextlib.contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    sys.path.insert(0, str(REPO / "tests"))
    from support.postgres import provide_postgres  # the project's own way to a server (Debian's binaries)

    with provide_postgres("bench") as server_url:
        yield server_url


async def create_databases(server_url: str, names: list[str]) -> dict[str, str]:
    """Fresh databases on the server; returns name -> SQLAlchemy URL."""
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        for name in names:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = server_url.rsplit("/", 1)[0]
    return {name: f"{base}/{name}" for name in names}


def _sizes_for_baselines(ours: dict[str, Any] | None) -> tuple[dict[str, float], dict[str, float]]:
    sizes = (ours or {}).get("message_bytes") or report.FALLBACK_BYTES
    return ({flow: sizes[flow]["value"] for flow in ("pre", "post")},
            {flow: sizes[flow]["headers"] for flow in ("pre", "post")})


async def run_config(name: str, args: argparse.Namespace, bootstrap_servers: str, extra_pids: dict[str, int],
                     server_url: str | None, before: tuple[str, str] | None) -> dict[str, Any]:
    """One configuration: ours (after, and before), the raw chain and the guarantee-equal chain."""
    postgres = name.startswith("pg")
    instances = 2 if name == "pg2" else 1
    orders = {"sqlite": args.orders, "rate": args.rate_orders}.get(name, args.pg_orders)
    rate = args.rate if name == "rate" else 0.0
    label = (f"{'PostgreSQL' if postgres else 'SQLite'}, {instances} process{'es' if instances > 1 else ''} per "
             f"service, {orders} orders " + (f"at {rate:g} per second" if rate else "at once"))
    result: dict[str, Any] = {"label": label, "database": "PostgreSQL" if postgres else "SQLite",
                              "instances": instances, "orders": orders, "rate_per_s": rate or None, "errors": {}}
    work = args.out / "work" / name
    shutil.rmtree(work, ignore_errors=True)

    async def guarded(key: str, run: Any) -> None:
        try:
            result[key] = await run
        except KeyboardInterrupt:
            raise
        except Exception as error:  # one failed run must not cost the others: say what failed and go on
            console.print(f"[bold red]{name}/{key} failed:[/] {error}")
            result[key] = None
            result["errors"][key] = f"{type(error).__name__}: {str(error)[-1500:]}"

    async def ours(key: str, pythonpath: str | None) -> dict[str, Any]:
        urls: dict[str, str] = {}
        if postgres:
            assert server_url is not None
            made = await create_databases(server_url, [f"bench_{name}_{key}_{s}" for s in SERVICES])
            urls = {s: made[f"bench_{name}_{key}_{s}"] for s in SERVICES}
        config = OursConfig(orders=orders, post_share=args.post_share, log_level=args.log_level,
                            profile=args.profile and name == args.profile_config and key == "after",
                            profile_rate=args.profile_rate, stall_timeout=args.stall_timeout,
                            snapshot_seconds=args.profile_waits, rate=rate, instances=instances,
                            database_urls=urls, pythonpath=pythonpath)
        console.rule(f"{name}: ours ({key}), {label}")
        return await run_ours(config, bootstrap_servers, work / f"ours-{key}", args.out / name, console, extra_pids)

    async def baseline(key: str, shape: str) -> dict[str, Any]:
        urls: dict[str, str] = {}
        if postgres and shape == "guaranteed":
            assert server_url is not None
            made = await create_databases(server_url, [f"bench_{name}_{key}_{h}" for h in HOSTS])
            urls = {h: made[f"bench_{name}_{key}_{h}"] for h in HOSTS}
        values, headers = _sizes_for_baselines(result.get("after") or result.get("before"))
        config = BaselineConfig(messages=orders, post_share=args.post_share, value_bytes=values,
                                header_bytes=headers, stall_timeout=args.stall_timeout, rate=rate, shape=shape,
                                database_urls=urls, instances=instances if shape == "guaranteed" else 1)
        console.rule(f"{name}: {'raw relay chain' if shape == 'raw' else 'guarantee-equal chain'}, {label}")
        folder = work / key
        shutil.rmtree(folder, ignore_errors=True)
        return await run_baseline(config, bootstrap_servers, folder, console, extra_pids)

    await guarded("after", ours("after", None))
    if before is not None:
        await guarded("before", ours("before", before[1]))
    await guarded("raw", baseline("raw", "raw"))
    await guarded("guaranteed", baseline("guaranteed", "guaranteed"))
    result["ratios"] = {key: report.ratios(result.get(key), result.get("raw"), result.get("guaranteed"))
                        for key in ("after", "before") if result.get(key)}
    return result


async def postmaster_pid(server_url: str) -> int | None:
    """The PostgreSQL server's main process when it runs on this machine (a backend's parent), else None."""
    import asyncpg

    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        backend = int(await connection.fetchval("SELECT pg_backend_pid()"))
        # read while the connection is open: once it closes, the backend exits and the postmaster reaps it, and
        # /proc no longer says whose child it was (a whole run once went without the server's CPU that way)
        return _postgres_parent(backend)
    finally:
        await connection.close()


def _postgres_parent(backend: int) -> int | None:
    """The parent of `backend` when both are PostgreSQL processes here; None for a server elsewhere (another host,
    another PID namespace), whose backend's number may be an unrelated process of ours."""
    try:
        fields = procstats.stat_fields(backend)
        parent = int(fields[1])  # field 4 of proc(5)
        if procstats.command(backend) != "postgres" or procstats.command(parent) != "postgres":
            return None
    except (OSError, ValueError, IndexError):
        return None
    return parent


async def measure(args: argparse.Namespace, bootstrap_servers: str, extra_pids: dict[str, int],
                  results: dict[str, Any], server_url: str | None, before: tuple[str, str] | None) -> None:
    server_pid = await postmaster_pid(server_url) if server_url else None
    if server_url:
        console.print(f"PostgreSQL server process: {server_pid or 'not on this machine (its CPU is not counted)'}")
    for name in args.configs:
        step = time.monotonic()
        pids = {**extra_pids, procstats.DATABASE_SERVER: server_pid} if name.startswith("pg") and server_pid \
            else extra_pids
        results["configs"][name] = await run_config(name, args, bootstrap_servers, pids, server_url, before)
        results["configs"][name]["seconds"] = round(time.monotonic() - step, 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {"meta": {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": _command(argv),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "postgres_url"},
        # other work on the machine skews every figure: the load average says whether there was any
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": _git_state(),
        "before_commit": None,
        "sizes": {"orders": args.orders, "pg_orders": args.pg_orders, "rate_orders": args.rate_orders,
                  "rate": args.rate, "post_share": args.post_share},
    }, "configs": {}}
    broker = None
    extra_pids: dict[str, int] = {}
    try:
        with contextlib.ExitStack() as stack:
            before = stack.enter_context(before_tree(args.before)) if args.before else None
            if before is not None:
                results["meta"]["before_commit"] = f"{before[0]} ({args.before})"
            server_url = None
            if any(name.startswith("pg") for name in args.configs):
                console.print("starting PostgreSQL (tests/support/postgres.py) ...")
                server_url = stack.enter_context(postgres_server(args.postgres_url))
                results["meta"]["postgres"] = ("given by --postgres-url" if args.postgres_url else
                                               "a throw-away server of the machine's PostgreSQL (fsync off)")
            if args.bootstrap_servers:
                bootstrap_servers = args.bootstrap_servers
                version = os.environ.get("BACKFLUSH_KAFKA_BROKER_VERSION", "unknown")
                results["meta"]["broker"] = f"external broker at {bootstrap_servers}"
            else:
                from backflush_shared.local_kafka import LocalKafka

                console.print("starting a local Apache Kafka broker (fetched from Maven Central on first use) ...")
                step = time.monotonic()
                broker = LocalKafka().start()
                bootstrap_servers, version = broker.bootstrap_servers, broker.version
                results["meta"]["broker"] = "one local KRaft node on the JVM, started by the bench"
                results["meta"]["broker_start_seconds"] = round(time.monotonic() - step, 2)
                if broker.pid is not None:
                    extra_pids["kafka broker"] = broker.pid
                console.print(f"Kafka {version} serving at {bootstrap_servers}")
            results["meta"]["machine"] = procstats.machine(version)
            asyncio.run(measure(args, bootstrap_servers, extra_pids, results, server_url, before))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping everything the benchmark started[/]")
        return 130
    finally:
        if broker is not None:
            broker.stop()

    results["goals"] = report.goals(results)
    results["meta"]["total_seconds"] = round(time.monotonic() - started, 1)
    results["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    json_path = args.out / "bench.json"
    png_path = args.out / "latency.png"
    report.print_tables(console, results)
    report.plot(png_path, results)
    report.write_json(json_path, results)
    console.print(f"figures: {json_path}\nplot: {png_path}")
    if not args.no_docs:
        docs: Path = args.docs.resolve()
        folder = docs.parent / "benchmarks"
        folder.mkdir(parents=True, exist_ok=True)
        report.write_json(folder / "bench.json", results)
        report.write_docs(docs, folder / "latency.png", png_path, results)
        console.print(f"docs: {docs}, {folder / 'bench.json'}")
    failed = [f"{name}/{key}" for name, config in results["configs"].items() for key in config["errors"]]
    if failed:
        console.print(f"[bold red]runs that failed:[/] {', '.join(failed)} (their errors are in the JSON)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
