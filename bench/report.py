"""Figures into words and pictures: percentiles, the terminal tables, the JSON file, the plot, docs/benchmarks.md."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

GOAL_THROUGHPUT_RATIO = 0.5  # issue 6: at least half the baseline's throughput
GOAL_P99_RATIO = 3.0  # and a p99 latency within three times the baseline's

ANALYSIS_BEGIN = "<!-- analysis:begin (kept by bench/run.py: edit freely) -->"
ANALYSIS_END = "<!-- analysis:end -->"


def distribution(values: Sequence[float]) -> dict[str, Any]:
    """Count, mean and percentiles in seconds (None where there is nothing to measure)."""
    import numpy as np

    if not values:
        return {"n": 0, "mean": None, "min": None, "p50": None, "p95": None, "p99": None, "max": None}
    array = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(array, [50, 95, 99])
    return {"n": int(array.size), "mean": round(float(array.mean()), 4), "min": round(float(array.min()), 4),
            "p50": round(float(p50), 4), "p95": round(float(p95), 4), "p99": round(float(p99), 4),
            "max": round(float(array.max()), 4)}


def cpu_per_item(run: dict[str, Any] | None, count_key: str) -> float | None:
    """CPU seconds of the services (or relay processes) per order (or message), broker and bench left out."""
    if not run or not run.get(count_key):
        return None
    cpu = sum(figures["cpu_seconds"] for name, figures in run["processes"].items()
              if name not in ("kafka broker", "bench process"))
    return round(cpu / run[count_key], 6)


def ratios(ours: dict[str, Any] | None, baseline: dict[str, Any] | None) -> dict[str, Any] | None:
    if not ours or not baseline:
        return None

    def divide(a: float | None, b: float | None) -> float | None:
        return round(a / b, 4) if a is not None and b else None

    throughput = divide(ours["throughput_per_s"], baseline["throughput_per_s"])
    latency = {p: divide(ours["latency_s"]["all"][p], baseline["latency_s"]["all"][p]) for p in ("p50", "p95", "p99")}
    return {
        "throughput": throughput,
        "cpu_per_order_s": {"ours": cpu_per_item(ours, "orders"), "baseline": cpu_per_item(baseline, "messages"),
                            "ratio": divide(cpu_per_item(ours, "orders"), cpu_per_item(baseline, "messages"))},
        "latency": latency,
        "latency_pre": {p: divide(ours["latency_s"]["pre"][p], baseline["latency_s"]["pre"][p])
                        for p in ("p50", "p95", "p99")},
        "latency_post": {p: divide(ours["latency_s"]["post"][p], baseline["latency_s"]["post"][p])
                         for p in ("p50", "p95", "p99")},
        "goal": {
            "throughput_ratio_at_least": GOAL_THROUGHPUT_RATIO,
            "p99_ratio_at_most": GOAL_P99_RATIO,
            "throughput_met": throughput is not None and throughput >= GOAL_THROUGHPUT_RATIO,
            "p99_met": latency["p99"] is not None and latency["p99"] <= GOAL_P99_RATIO,
        },
    }


# ------------------------------------------------------------------------------------------------ terminal


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _r(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_tables(console: Console, results: dict[str, Any]) -> None:
    ours, baseline, ratio = results.get("ours"), results.get("baseline"), results.get("ratios")
    summary = Table(title="ours vs. the raw-Kafka baseline")
    for column in ("figure", "ours", "baseline", "ours / baseline", "goal"):
        summary.add_column(column, justify="left" if column == "figure" else "right")

    def value(part: dict[str, Any] | None, *path: str) -> Any:
        for key in path:
            if part is None:
                return None
            part = part.get(key)
        return part

    goal = (ratio or {}).get("goal", {})
    summary.add_row("completed per second", _r(value(ours, "throughput_per_s")),
                    _r(value(baseline, "throughput_per_s")), _r(value(ratio, "throughput")),
                    (">= 0.5 " + ("[green]met[/]" if goal.get("throughput_met") else "[red]missed[/]")) if ratio else "")
    for p in ("p50", "p95", "p99"):
        summary.add_row(f"end-to-end latency {p}", _s(value(ours, "latency_s", "all", p)),
                        _s(value(baseline, "latency_s", "all", p)), _r(value(ratio, "latency", p)),
                        ("<= 3 " + ("[green]met[/]" if goal.get("p99_met") else "[red]missed[/]"))
                        if ratio and p == "p99" else "")
    for flow in ("pre", "post"):
        summary.add_row(f"  {flow}-product p50 / p99",
                        f"{_s(value(ours, 'latency_s', flow, 'p50'))} / {_s(value(ours, 'latency_s', flow, 'p99'))}",
                        f"{_s(value(baseline, 'latency_s', flow, 'p50'))} / "
                        f"{_s(value(baseline, 'latency_s', flow, 'p99'))}",
                        _r(value(ratio, f"latency_{flow}", "p99")), "")
    summary.add_row("CPU per order (services / relays)", _s(cpu_per_item(ours, "orders")),
                    _s(cpu_per_item(baseline, "messages")), _r(value(ratio, "cpu_per_order_s", "ratio")), "")
    summary.add_row("orders / messages", str(value(ours, "orders") or "-"), str(value(baseline, "messages") or "-"),
                    "", "")
    summary.add_row("wall time, first publish to last close", _s(value(ours, "wall_seconds")),
                    _s(value(baseline, "wall_seconds")), "", "")
    console.print(summary)

    if ours:
        hops = Table(title="latency per hop (ours): effect's occurred_at minus cause's")
        for column in ("flow", "service", "hop", "p50", "p95", "p99"):
            hops.add_column(column, justify="right" if column.startswith("p") else "left")
        for flow in ("pre", "post"):
            for row in ours["hops"][flow]:
                hops.add_row(flow, row["service"], row["hop"], _s(row["p50"]), _s(row["p95"]), _s(row["p99"]))
        console.print(hops)

    processes = Table(title="processes: CPU seconds during the measured run, peak memory")
    for column in ("run", "process", "CPU s", "peak RSS MiB"):
        processes.add_column(column, justify="left" if column in ("run", "process") else "right")
    for run_name, run in (("ours", ours), ("baseline", baseline)):
        for name, figures in ((run or {}).get("processes") or {}).items():
            rss = figures.get("peak_rss_mib")
            processes.add_row(run_name, name, f"{figures['cpu_seconds']:.1f}", "-" if rss is None else f"{rss:.0f}")
    console.print(processes)

    profile = (ours or {}).get("profile")
    busiest = (ours or {}).get("busiest_service")
    if profile and busiest in profile.get("services", {}):
        entries = profile["services"][busiest]
        top = Table(title=f"where the {busiest} spends its time (py-spy, {entries['samples']} working samples, "
                          f"own time; {entries['waiting_share'] * 100:.0f} % more samples waited in epoll/wait)")
        top.add_column("#", justify="right")
        top.add_column("function (file)")
        top.add_column("share", justify="right")
        for number, row in enumerate(entries["top_own"], start=1):
            top.add_row(str(number), row["entry"], f"{row['share'] * 100:.1f} %")
        console.print(top)
    elif profile:
        console.print(f"[yellow]profile: no samples ({profile.get('errors')})[/]")
    snapshots = (profile or {}).get("wait_snapshots") or {}
    if snapshots:
        waits = Table(title="wall-clock snapshot per service (py-spy --native --idle, steady state)")
        for column in ("service", "seconds", "event loop idle", "SQLite connections",
                       "busy-handler sleep (thread-s per s)", "in SQLite (thread-s per s)"):
            waits.add_column(column, justify="left" if column == "service" else "right")
        for name, snap in snapshots.items():
            if "error" in snap:
                waits.add_row(name, "-", snap["error"][:40], "", "", "")
                continue
            idle = snap["event_loop_idle_share"]
            waits.add_row(name, str(snap["seconds"]), "-" if idle is None else f"{idle * 100:.0f} %",
                          str(snap["sqlite_connection_threads"]), f"{snap['sqlite_busy_handler_sleep_per_s']:.2f}",
                          f"{snap['sqlite_working_per_s']:.2f}")
        console.print(waits)


# ------------------------------------------------------------------------------------------------ files


def public(results: dict[str, Any]) -> dict[str, Any]:
    """The results without the raw latency lists (those go to the plot)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.startswith("_")}
        return value
    return strip(results)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(public(results), indent=2, sort_keys=False) + "\n", encoding="utf-8")


def plot(path: Path, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    series: list[tuple[str, list[float], str]] = []
    ours, baseline = results.get("ours"), results.get("baseline")
    if ours:
        series.append(("ours, pre-product", ours["_latencies"]["pre"], "tab:blue"))
        series.append(("ours, post-product", ours["_latencies"]["post"], "tab:purple"))
    if baseline:
        series.append(("baseline, pre chain (6 hops)", baseline["_latencies"]["pre"], "tab:orange"))
        series.append(("baseline, post chain (9 hops)", baseline["_latencies"]["post"], "tab:red"))
    series = [(label, [max(v, 1e-4) for v in values], colour) for label, values, colour in series if values]

    figure, (cdf, hist) = plt.subplots(1, 2, figsize=(12, 4.6))
    low = min((min(v) for _l, v, _c in series), default=1e-3)
    high = max((max(v) for _l, v, _c in series), default=1.0)
    bins = np.logspace(np.log10(low * 0.9), np.log10(high * 1.1), 60)
    for label, values, colour in series:
        ordered = np.sort(values)
        cdf.step(np.concatenate([[ordered[0]], ordered]), np.arange(0, ordered.size + 1) / ordered.size,
                 where="post", label=label, color=colour)
        hist.hist(values, bins=bins, histtype="step", label=label, color=colour, linewidth=1.4)
    for axis in (cdf, hist):
        axis.set_xscale("log")
        axis.set_xlabel("end-to-end latency per order / message (s, log scale)")
        axis.grid(True, which="both", alpha=0.3)
    cdf.set_ylabel("share completed within")
    cdf.set_title("cumulative distribution")
    hist.set_ylabel("orders / messages")
    hist.set_title("histogram")
    cdf.legend(loc="lower right", fontsize=8)
    meta = results.get("meta", {})
    n = (ours or {}).get("orders") or (baseline or {}).get("messages")
    figure.suptitle(f"backflush bench: {n} orders, post share {meta.get('args', {}).get('post_share')}, "
                    f"{meta.get('machine', {}).get('nproc')} cores, {meta.get('started_at', '')}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ------------------------------------------------------------------------------------------------ docs


def _md_s(value: float | None) -> str:
    return _s(value)


def write_docs(path: Path, image: Path, png: Path, results: dict[str, Any]) -> None:
    """docs/benchmarks.md with the last run's figures; the analysis section between its markers is kept."""
    image.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, image)
    kept = None
    if path.is_file():
        match = re.search(re.escape(ANALYSIS_BEGIN) + r"(.*?)" + re.escape(ANALYSIS_END), path.read_text(), re.DOTALL)
        kept = match.group(1) if match else None
    analysis = kept if kept is not None else "\n_Not written yet: read the profile below and say where the time goes._\n"
    path.write_text(render_docs(results, image.relative_to(path.parent).as_posix(), analysis), encoding="utf-8")


def render_docs(results: dict[str, Any], image: str, analysis: str) -> str:
    meta, ours, baseline, ratio = (results.get("meta", {}), results.get("ours"), results.get("baseline"),
                                   results.get("ratios"))
    machine = meta.get("machine", {})
    lines = [
        "# Benchmarks: end to end through the three services, against a raw-Kafka baseline",
        "",
        "Written by `make bench` (`bench/run.py`, issue 6): the figures below are the last run's, the analysis",
        "section is written by hand and kept from run to run. Every figure is also in the run's JSON file",
        f"(`{meta.get('json', 'bench/results/bench.json')}`).",
        "",
        "## The machine and the command",
        "",
        f"- machine: {machine.get('nproc')} cores ({machine.get('cpu')}), {machine.get('memory_gib')} GiB memory, "
        f"{machine.get('os')}",
        f"- Python {machine.get('python')}, Apache Kafka {machine.get('kafka')} ({meta.get('broker')}), aiokafka "
        f"{machine.get('aiokafka')}, FastStream {machine.get('faststream')}, SQLAlchemy {machine.get('sqlalchemy')}, "
        f"pydantic {machine.get('pydantic')}",
        f"- run at {meta.get('started_at')}, took {meta.get('total_seconds')} s in all; load average (1, 5, 15 min)"
        f" {meta.get('load_average_at_start')} at the start, {meta.get('load_average_at_end')} at the end",
        f"- command: `{meta.get('command')}`, on commit {meta.get('commit', 'unknown')}",
        "",
        "## What runs",
        "",
        "**Ours**: the manufacturer, distributor and warehouse as separate processes (`LocalStack`, fresh SQLite",
        "databases, topics of 3 partitions, log level " + str((ours or {}).get("log_level", "INFO")) + "), the",
        "sample chair catalogue with one lot of 10^9 of every component, racks and consignment storage with room",
        "for every order. The bench places "
        + (f"the orders at {(ours or {}).get('rate_per_s')} per second (and the baseline sends at that rate), then"
           if (ours or {}).get("rate_per_s") else
           "every order up front (pipelined `EventPublisher` batches of 500), then"),
        "plays the shop floor (a post-product order's `CompletionReported` of the whole quantity once its release",
        "flush is on `completions`) and the order holder (`DeliverySigned` once `GoodsShipped`), so every order",
        "ends closed. End-to-end latency per order: the `OrderPlaced` envelope time to the `OrderClosed` record's",
        "timestamp on `completions`; throughput: closed orders over the time from the first publish to the last",
        "close. Per hop: the effect event's `occurred_at` minus the cause's, from the distributor's `order_events`.",
        "",
        "**Baseline**: raw aiokafka relays in PERFORMANCE.md's fast shape (`getmany(max_records=500)`, every",
        "`send` without awaiting it, one gather, one offset commit per batch, idempotent producer), no database,",
        "no decoding. The same hop counts on the same hosts: a pre-product chain of 6 relays (distributor,",
        "manufacturer, distributor, warehouse, manufacturer, distributor) and a post-product chain of 9",
        "(distributor, manufacturer, bench, manufacturer, warehouse, distributor, warehouse, bench, warehouse).",
        "The relays of one service share one process and one producer, as a service's consumers share its outbox",
        "relay: three relay processes, and the two bench hops in the bench process, as its driver is in our run.",
        "The same number of messages and flow mix, keyed by order id, with our events' mean value size on each",
        "flow's critical path and headers of our CloudEvents headers' size. Latency: first send to the record",
        "timestamp on the chain's last topic.",
        "",
        "Our pipeline also publishes events off the critical path (quality results, flushes, production and",
        f"inventory-check events, ...): {(ours or {}).get('events_per_order', '-')} events per order in all, where the",
        "baseline moves one message per hop.",
        "",
        "## Figures",
        "",
        "| figure | ours | baseline | ours / baseline | goal |",
        "|---|---:|---:|---:|---|",
    ]

    def get(part: dict[str, Any] | None, *path: str) -> Any:
        for key in path:
            if part is None:
                return None
            part = part.get(key)
        return part

    goal = (ratio or {}).get("goal", {})
    lines.append(f"| completed per second | {_r(get(ours, 'throughput_per_s'))} orders/s | "
                 f"{_r(get(baseline, 'throughput_per_s'))} msg/s | {_r(get(ratio, 'throughput'))} | >= 0.5: "
                 f"{'met' if goal.get('throughput_met') else 'missed'} |")
    for p in ("p50", "p95", "p99"):
        verdict = f"<= 3: {'met' if goal.get('p99_met') else 'missed'}" if p == "p99" else ""
        lines.append(f"| end-to-end latency {p} | {_md_s(get(ours, 'latency_s', 'all', p))} | "
                     f"{_md_s(get(baseline, 'latency_s', 'all', p))} | {_r(get(ratio, 'latency', p))} | {verdict} |")
    for flow in ("pre", "post"):
        lines.append(f"| {flow}-product p50 / p95 / p99 | "
                     + " / ".join(_md_s(get(ours, 'latency_s', flow, p)) for p in ('p50', 'p95', 'p99')) + " | "
                     + " / ".join(_md_s(get(baseline, 'latency_s', flow, p)) for p in ('p50', 'p95', 'p99'))
                     + f" | p99 {_r(get(ratio, f'latency_{flow}', 'p99'))} | |")
    lines.append(f"| CPU per order (services / relays; broker and bench left out) | "
                 f"{_md_s(cpu_per_item(ours, 'orders'))} | {_md_s(cpu_per_item(baseline, 'messages'))} | "
                 f"{_r(get(ratio, 'cpu_per_order_s', 'ratio'))} | |")
    lines.append(f"| orders / messages | {get(ours, 'orders') or '-'} ({get(ours, 'pre_orders')} pre, "
                 f"{get(ours, 'post_orders')} post) | {get(baseline, 'messages') or '-'} | | |")
    lines.append(f"| wall time, first publish to last close | {_md_s(get(ours, 'wall_seconds'))} | "
                 f"{_md_s(get(baseline, 'wall_seconds'))} | | |")
    lines += ["", f"![latency distributions, ours and the baseline]({image})", ""]

    if ours:
        lines += ["### Latency per hop (ours)", "",
                  "A hop: from the cause event's `occurred_at` to the effect's, so it holds the cause's commit and",
                  "outbox relay, the broker, the consumer's fetch and batch, and the handler until it emits.", "",
                  "| flow | service | hop | p50 | p95 | p99 |", "|---|---|---|---:|---:|---:|"]
        for flow in ("pre", "post"):
            for row in ours["hops"][flow]:
                lines.append(f"| {flow} | {row['service']} | {row['hop']} | {_md_s(row['p50'])} | "
                             f"{_md_s(row['p95'])} | {_md_s(row['p99'])} |")
        lines.append("")

    lines += ["### Processes", "", "CPU seconds during the measured run (from the first order to the last close);",
              "peak resident memory (VmHWM) over the process's life.", "",
              "| run | process | CPU s | peak RSS MiB |", "|---|---|---:|---:|"]
    for run_name, run in (("ours", ours), ("baseline", baseline)):
        for name, figures in ((run or {}).get("processes") or {}).items():
            rss = figures.get("peak_rss_mib")
            lines.append(f"| {run_name} | {name} | {figures['cpu_seconds']:.1f} | "
                         f"{'-' if rss is None else f'{rss:.0f}'} |")
    lines.append("")

    profile = get(ours, "profile")
    busiest = get(ours, "busiest_service")
    if profile and busiest in profile.get("services", {}):
        entries = profile["services"][busiest]
        lines += [f"### Where the time goes: the {busiest} (the busiest service), py-spy", "",
                  f"{entries['samples']} working samples at {profile['rate_hz']} Hz over the measured run "
                  "(`py-spy record --nonblocking`, all threads; a further "
                  f"{entries['waiting_share'] * 100:.0f} % of the samples had the event loop waiting in epoll or a",
                  "thread waiting on a condition, and are left out). Own time per function (the frame on top of",
                  "the stack; for aiosqlite's worker thread that is the time inside SQLite's C code):", "",
                  "| # | function (file) | share |", "|---:|---|---:|"]
        for number, row in enumerate(entries["top_own"], start=1):
            lines.append(f"| {number} | `{row['entry']}` | {row['share'] * 100:.1f} % |")
        if entries.get("by_thread"):
            lines += ["", "Working samples per thread:", "", "| thread | share |", "|---|---:|"]
            lines += [f"| {row['entry']} | {row['share'] * 100:.1f} % |" for row in entries["by_thread"]]
        lines += ["", "Own time per package:", "", "| package | share |", "|---|---:|"]
        for row in entries["by_package"]:
            lines.append(f"| {row['entry']} | {row['share'] * 100:.1f} % |")
        lines += ["", "Inclusive time of our own functions (everything below them on the stack):", "",
                  "| # | function (file) | share |", "|---:|---|---:|"]
        for number, row in enumerate(entries["top_inclusive_ours"], start=1):
            lines.append(f"| {number} | `{row['entry']}` | {row['share'] * 100:.1f} % |")
        snapshots = profile.get("wait_snapshots") or {}
        if snapshots:
            lines += ["", "Wall-clock snapshot of every service once a quarter of the orders had closed (`py-spy record",
                      "--native --idle --threads` for a few seconds; it pauses the service at each sample). Busy-handler",
                      "sleep: thread-seconds per second that the service's SQLite connections spent in SQLite's busy",
                      "handler (`sqlite3InvokeBusyHandler` -> `usleep`), waiting for the write lock another connection",
                      "of the same process held; 1.0 means one connection asleep all the time.", "",
                      "| service | seconds | event loop idle | SQLite connections | busy-handler sleep /s | "
                      "in SQLite /s |", "|---|---:|---:|---:|---:|---:|"]
            for name, snap in snapshots.items():
                if "error" in snap:
                    lines.append(f"| {name} | - | {snap['error']} | | | |")
                    continue
                idle = snap["event_loop_idle_share"]
                lines.append(f"| {name} | {snap['seconds']} | {'-' if idle is None else f'{idle * 100:.0f} %'} | "
                             f"{snap['sqlite_connection_threads']} | {snap['sqlite_busy_handler_sleep_per_s']:.2f} | "
                             f"{snap['sqlite_working_per_s']:.2f} |")
        others = [name for name in profile["services"] if name != busiest]
        if others:
            lines += ["", "The other services' top five (own time):", ""]
            for name in others:
                top = ", ".join(f"`{r['entry']}` {r['share'] * 100:.1f} %" for r in profile["services"][name]["top_own"][:5])
                lines.append(f"- {name}: {top}")
        lines.append("")

    lines += ["## Analysis: the goal, where the time goes, what would close the gap", "", ANALYSIS_BEGIN]
    body = analysis.strip("\n")
    lines += [body, ANALYSIS_END, ""]
    return "\n".join(lines)
