"""`make bench`: N orders of both flows through the three services, and a raw-Kafka baseline, in one run.

    python -m bench.run [--orders 10000] [--post-share 0.5] [--profile] [--out bench/results/]

Starts its own local Apache Kafka broker (or uses `--bootstrap-servers`), runs our services as separate
processes on fresh databases and pushes the orders through (see `bench/ours.py`), then runs the baseline relay
chain with the same hops, message sizes and keys (`bench/baseline.py`), and reports ours as ratios of the
baseline's: a table on the terminal, `bench.json` and `latency.png` in `--out`, and `docs/benchmarks.md` with
the plot copied to `docs/benchmarks/latency.png` (unless `--no-docs`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python bench/run.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console

from bench import procstats, report
from bench.baseline import BaselineConfig, run_baseline
from bench.ours import BenchError, OursConfig, run_ours

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results"
DEFAULT_DOCS = REPO / "docs" / "benchmarks.md"

#: Message sizes for `--baseline-only` when no earlier run in --out says better (measured on our events).
FALLBACK_BYTES = {"pre": {"value": 158.0, "headers": 281.0}, "post": {"value": 140.0, "headers": 282.0}}

console = Console()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--orders", type=int, default=10_000, help="orders to push through our services")
    parser.add_argument("--post-share", type=float, default=0.5, help="fraction of post-product orders")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="orders (and baseline messages) per second; 0 pushes them all at once. A low rate "
                             "shows latency without queueing (PERFORMANCE.md: 10 orders per second matters too)")
    parser.add_argument("--baseline-messages", type=int, default=None,
                        help="messages through the baseline chain (default: as many as --orders)")
    run = parser.add_mutually_exclusive_group()
    run.add_argument("--baseline-only", action="store_true", help="run only the raw-Kafka baseline")
    run.add_argument("--skip-baseline", action="store_true", help="run only our services")
    parser.add_argument("--profile", action="store_true",
                        help="sample every service with py-spy and report the busiest one's top entries")
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--profile-waits", type=int, default=10, metavar="SECONDS",
                        help="with --profile: a wall-clock snapshot (idle and native frames) of every service "
                             "this long, once a quarter of the orders closed; it pauses them per sample")
    parser.add_argument("--bootstrap-servers", default=None,
                        help="use this broker instead of starting a local one")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                        help="the services' log level (INFO is what they run with when deployed)")
    parser.add_argument("--stall-timeout", type=float, default=180.0,
                        help="give up when nothing completes for this many seconds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON, plot and logs go")
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="the benchmarks page to update")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.orders < 1:
        parser.error("--orders must be at least 1")
    if not 0.0 <= args.post_share <= 1.0:
        parser.error("--post-share must be between 0 and 1")
    if args.baseline_messages is None:
        args.baseline_messages = args.orders
    return args


def _command(argv: list[str] | None) -> str:
    return "python -m bench.run " + shlex.join(sys.argv[1:] if argv is None else argv)


def _git_state() -> str:
    """The commit the services ran from, and whether the work tree differed from it."""
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "shared", "services"],
                               cwd=REPO, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} (shared/ or services/ changed since)" if dirty else commit


def _previous_bytes(out: Path) -> dict[str, dict[str, float]]:
    try:
        previous = json.loads((out / "bench.json").read_text())
        sizes = previous["ours"]["message_bytes"]
        return {flow: {"value": float(sizes[flow]["value"]), "headers": float(sizes[flow]["headers"])}
                for flow in ("pre", "post")}
    except (OSError, KeyError, TypeError, ValueError):
        return FALLBACK_BYTES


async def measure(args: argparse.Namespace, bootstrap_servers: str, extra_pids: dict[str, int],
                  results: dict[str, Any]) -> None:
    out: Path = args.out
    if not args.baseline_only:
        pace = f", {args.rate:g} per second" if args.rate > 0 else ", all at once"
        console.rule(f"ours: {args.orders} orders, post share {args.post_share}{pace}")
        config = OursConfig(orders=args.orders, post_share=args.post_share, log_level=args.log_level,
                            profile=args.profile, profile_rate=args.profile_rate, stall_timeout=args.stall_timeout,
                            snapshot_seconds=args.profile_waits, rate=args.rate)
        work = out / "work" / "ours"
        shutil.rmtree(work, ignore_errors=True)
        results["ours"] = await run_ours(config, bootstrap_servers, work, out, console, extra_pids)
    if not args.skip_baseline:
        sizes = results["ours"]["message_bytes"] if results.get("ours") else _previous_bytes(out)
        console.rule(f"baseline: {args.baseline_messages} messages through raw aiokafka relays")
        config_b = BaselineConfig(
            messages=args.baseline_messages, post_share=args.post_share,
            value_bytes={flow: sizes[flow]["value"] for flow in ("pre", "post")},
            header_bytes={flow: sizes[flow]["headers"] for flow in ("pre", "post")},
            stall_timeout=args.stall_timeout, rate=args.rate,
        )
        work = out / "work" / "baseline"
        shutil.rmtree(work, ignore_errors=True)
        results["baseline"] = await run_baseline(config_b, bootstrap_servers, work, console, extra_pids)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {"meta": {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": _command(argv),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        # other work on the machine skews every figure: the load average says whether there was any
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "commit": _git_state(),
    }}
    broker = None
    extra_pids: dict[str, int] = {}
    try:
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
        asyncio.run(measure(args, bootstrap_servers, extra_pids, results))
    except BenchError as error:
        console.print(f"[bold red]the benchmark failed:[/] {error}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping everything the benchmark started[/]")
        return 130
    finally:
        if broker is not None:
            broker.stop()

    results["ratios"] = report.ratios(results.get("ours"), results.get("baseline"))
    results["meta"]["total_seconds"] = round(time.monotonic() - started, 1)
    results["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    json_path = args.out / "bench.json"
    png_path = args.out / "latency.png"
    results["meta"]["json"] = os.path.relpath(json_path, REPO) if json_path.is_relative_to(REPO) else str(json_path)
    results["meta"]["plot"] = str(png_path)
    report.print_tables(console, results)
    report.plot(png_path, results)
    report.write_json(json_path, results)
    console.print(f"figures: {json_path}\nplot: {png_path}")
    if not args.no_docs:
        docs: Path = args.docs.resolve()
        report.write_docs(docs, docs.parent / "benchmarks" / "latency.png", png_path, results)
        console.print(f"docs: {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
