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

from bench.procstats import DATABASE_SERVER

#: Message sizes for the baselines when our run failed (measured on our events).
FALLBACK_BYTES = {"pre": {"value": 158.0, "headers": 281.0}, "post": {"value": 140.0, "headers": 282.0}}

# Issue 18's goals: the thresholds every `make bench` marks met or missed.
GOAL_THROUGHPUT_RATIO = 0.25  # sqlite: at least a quarter of the raw chain's throughput
GOAL_CPU_PER_ORDER_S = 0.002  # sqlite: at most 2 ms of the services' CPU per order
GOAL_P99_RATIO = 5.0  # sqlite: p99 within 5 times the raw chain's
GOAL_PG1_CPU_VS_SQLITE = 2.0  # pg1: CPU per order within twice sqlite's
GOAL_PG2_CPU_VS_PG1 = 1.0  # pg2: CPU per order no higher than pg1's
GOAL_RATE_P99_RATIO = 3.0  # rate 10: p99 within 3 times the raw chain's
GOAL_RATE_CORES = 0.2  # rate 10: the services together under 0.2 cores
GOAL_RSS_MIB = 150.0  # every service process's peak RSS

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
    """CPU seconds of the services (or relay processes) per order (or message); broker, database server and bench
    left out."""
    if not run or not run.get(count_key):
        return None
    cpu = sum(figures["cpu_seconds"] for name, figures in run["processes"].items()
              if name not in ("kafka broker", "bench process", DATABASE_SERVER))
    return round(cpu / run[count_key], 6)


def database_cpu_per_item(run: dict[str, Any] | None, count_key: str) -> float | None:
    """The PostgreSQL server's CPU (its backends included) per order or message; None on SQLite."""
    figures = _get(run, "processes", DATABASE_SERVER)
    if not run or not run.get(count_key) or not figures:
        return None
    return round(figures["cpu_seconds"] / run[count_key], 6)


def cpu_with_database(run: dict[str, Any] | None, count_key: str) -> float | None:
    """Services and database server together, for the PostgreSQL goals; None when the server was not measured
    (a remote --postgres-url), so a goal reads "no figure" rather than one that leaves the server out."""
    services = cpu_per_item(run, count_key)
    server = database_cpu_per_item(run, count_key)
    if services is None or server is None:
        return None
    return round(services + server, 6)


def _divide(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def _get(part: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(part, dict):
            return None
        part = part.get(key)
    return part


def ratios(ours: dict[str, Any] | None, raw: dict[str, Any] | None,
           guaranteed: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Ours against each baseline of the same configuration: throughput, CPU per order, p50 and p99."""
    if not ours:
        return None
    result: dict[str, Any] = {}
    for name, baseline in (("raw", raw), ("guaranteed", guaranteed)):
        if not baseline:
            result[name] = None
            continue
        result[name] = {
            "throughput": _divide(ours["throughput_per_s"], baseline["throughput_per_s"]),
            "cpu_per_order": _divide(cpu_per_item(ours, "orders"), cpu_per_item(baseline, "messages")),
            **{p: _divide(ours["latency_s"]["all"][p], baseline["latency_s"]["all"][p]) for p in ("p50", "p95", "p99")},
        }
    return result


def _max_rss(results: dict[str, Any], key: str) -> tuple[float | None, str | None]:
    """The highest peak RSS of any service process over every configuration's `key` run, and whose it was."""
    best: tuple[float | None, str | None] = (None, None)
    for name, config in results.get("configs", {}).items():
        for service, figures in (_get(config, key, "services") or {}).items():
            rss = figures.get("peak_rss_mib")
            if rss is not None and (best[0] is None or rss > best[0]):
                best = (rss, f"{service} ({name})")
    return best


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 18's goals, each with its figure for `after` (and `before`) and whether it was met."""
    configs = results.get("configs", {})

    def figure(key: str, config: str, *path: str) -> Any:
        return _get(configs.get(config), key, *path)

    def cpu(key: str, config: str) -> float | None:
        return cpu_per_item(_get(configs.get(config), key), "orders")

    def cpu_db(key: str, config: str) -> float | None:
        return cpu_with_database(_get(configs.get(config), key), "orders")

    def p99_vs_raw(key: str, config: str) -> float | None:
        return _get(configs.get(config), "ratios", key, "raw", "p99")

    rows = [
        ("sqlite", "throughput / raw chain's", ">=", GOAL_THROUGHPUT_RATIO,
         lambda k: _get(configs.get("sqlite"), "ratios", k, "raw", "throughput")),
        ("sqlite", "CPU per order, services together (s)", "<=", GOAL_CPU_PER_ORDER_S, lambda k: cpu(k, "sqlite")),
        ("sqlite", "p99 / raw chain's", "<=", GOAL_P99_RATIO, lambda k: p99_vs_raw(k, "sqlite")),
        ("pg1", "CPU per order incl. PostgreSQL server / sqlite's", "<=", GOAL_PG1_CPU_VS_SQLITE,
         lambda k: _divide(cpu_db(k, "pg1"), cpu(k, "sqlite"))),
        ("pg2", "CPU per order incl. PostgreSQL server / pg1's", "<=", GOAL_PG2_CPU_VS_PG1,
         lambda k: _divide(cpu_db(k, "pg2"), cpu_db(k, "pg1"))),
        ("rate", "p99 / raw chain's", "<=", GOAL_RATE_P99_RATIO, lambda k: p99_vs_raw(k, "rate")),
        ("rate", "cores used by the services together", "<", GOAL_RATE_CORES,
         lambda k: figure(k, "rate", "cores_used_by_services")),
        ("all", "peak RSS of any service process (MiB)", "<", GOAL_RSS_MIB, lambda k: _max_rss(results, k)[0]),
    ]
    out = []
    for config, what, op, threshold, value in rows:
        entry: dict[str, Any] = {"config": config, "figure": what, "goal": f"{op} {threshold:g}"}
        for key in ("after", "before"):
            v = value(key)
            entry[key] = v
            if v is None:
                entry[f"{key}_met"] = None
            else:
                entry[f"{key}_met"] = {">=": v >= threshold, "<=": v <= threshold, "<": v < threshold}[op]
        if config == "all":
            entry["whose"] = _max_rss(results, "after")[1]
        out.append(entry)
    return out


# ------------------------------------------------------------------------------------------------ terminal


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0.01:
        return f"{value * 1000:.2f} ms"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _r(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _verdict(met: bool | None) -> str:
    return "no figure" if met is None else ("met" if met else "missed")


def _goal_value(value: float | None, figure: str) -> str:
    if value is None:
        return "-"
    return _s(value) if figure.endswith("(s)") else f"{value:.3f}" if value < 10 else f"{value:.0f}"


def figure_rows(config: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, raw chain, guarantee-equal, ours before, ours after, after / before) for one configuration."""
    raw, geq, before, after = (config.get(k) for k in ("raw", "guaranteed", "before", "after"))
    ratio = config.get("ratios") or {}
    rows: list[tuple[str, str, str, str, str, str]] = []

    def add(name: str, getter: Any, fmt: Any, baselines: bool = True) -> None:
        b, a = getter(before, "before"), getter(after, "after")
        rows.append((name, fmt(getter(raw, "raw")) if baselines else "", fmt(getter(geq, "guaranteed")) if baselines
                     else "", fmt(b), fmt(a), _r(_divide(a, b))))

    add("completed per second", lambda run, _k: _get(run, "throughput_per_s"), _r)
    add("  / raw chain's", lambda _run, k: _get(ratio, k, "raw", "throughput"), _r, False)
    add("  / guarantee-equal chain's", lambda _run, k: _get(ratio, k, "guaranteed", "throughput"), _r, False)
    def count(key: str) -> str:
        return "messages" if key in ("raw", "guaranteed") else "orders"

    add("CPU per order (services; relay processes)", lambda run, k: cpu_per_item(run, count(k)), _s)
    for service in ("manufacturer", "distributor", "warehouse"):
        add(f"  {service}", lambda run, _k, s=service: None if _get(run, "services", s, "cpu_ms_per_order") is None
            else _get(run, "services", s, "cpu_ms_per_order") / 1000, _s, False)
    add("CPU per order of the PostgreSQL server (backends included)",
        lambda run, k: database_cpu_per_item(run, count(k)), _s)
    for p in ("p50", "p99"):
        add(f"end-to-end latency {p}", lambda run, _k, p=p: _get(run, "latency_s", "all", p), _s)
        add(f"  {p} / raw chain's", lambda _run, k, p=p: _get(ratio, k, "raw", p), _r, False)
        add(f"  {p} / guarantee-equal chain's", lambda _run, k, p=p: _get(ratio, k, "guaranteed", p), _r, False)
    add("cores used by the services (CPU s / wall s)", lambda run, _k: _get(run, "cores_used_by_services"), _r, False)
    for service in ("manufacturer", "distributor", "warehouse"):
        add(f"peak RSS MiB, {service} (highest process)", lambda run, _k, s=service: _get(run, "services", s,
                                                                                           "peak_rss_mib"),
            lambda v: "-" if v is None else f"{v:.0f}", False)
    add("wall time, first publish to last close", lambda run, _k: _get(run, "wall_seconds"), _s)
    return rows


def print_tables(console: Console, results: dict[str, Any]) -> None:
    for name, config in results.get("configs", {}).items():
        table = Table(title=f"{name}: {config['label']}")
        for column in ("figure", "raw chain", "guarantee-equal", "ours before", "ours after", "after / before"):
            table.add_column(column, justify="left" if column == "figure" else "right")
        for row in figure_rows(config):
            table.add_row(*row)
        console.print(table)
        for key, error in config.get("errors", {}).items():
            console.print(f"[red]{name}/{key} failed:[/] {error[:300]}")
    goals_table = Table(title="issue 18's goals")
    for column in ("configuration", "figure", "goal", "before", "after", "after: met?"):
        goals_table.add_column(column, justify="left" if column in ("configuration", "figure") else "right")
    for goal in results.get("goals", []):
        goals_table.add_row(goal["config"], goal["figure"], goal["goal"], _goal_value(goal["before"], goal["figure"]),
                            _goal_value(goal["after"], goal["figure"]), _verdict(goal["after_met"]))
    console.print(goals_table)
    profiled, ours = _profiled(results.get("configs", {}))
    profile = (ours or {}).get("profile")
    busiest = (ours or {}).get("busiest_service")
    if profile and busiest in profile.get("services", {}):
        entries = profile["services"][busiest]
        top = Table(title=f"where the {busiest} spends its time ({profiled}, py-spy, {entries['samples']} working "
                          "samples)")
        top.add_column("#", justify="right")
        top.add_column("function (file)")
        top.add_column("share", justify="right")
        for number, row in enumerate(entries["top_own"], start=1):
            top.add_row(str(number), row["entry"], f"{row['share'] * 100:.1f} %")
        console.print(top)


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
    configs = results.get("configs", {})
    shown = "sqlite" if "sqlite" in configs else next(iter(configs), None)
    config = configs.get(shown) or {}
    ours, raw, geq, before = (config.get(k) for k in ("after", "raw", "guaranteed", "before"))
    if ours:
        series.append(("ours (after), pre-product", ours["_latencies"]["pre"], "tab:blue"))
        series.append(("ours (after), post-product", ours["_latencies"]["post"], "tab:purple"))
    if before:
        series.append(("ours (before), both flows", before["_latencies"]["pre"] + before["_latencies"]["post"],
                       "tab:gray"))
    if raw:
        series.append(("raw relay chain, both flows", raw["_latencies"]["pre"] + raw["_latencies"]["post"],
                       "tab:orange"))
    if geq:
        series.append(("guarantee-equal chain, both flows", geq["_latencies"]["pre"] + geq["_latencies"]["post"],
                       "tab:green"))
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
    figure.suptitle(f"backflush bench, {shown}: {config.get('label')}, "
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
    analysis = kept if kept is not None else "\n_Not written yet: read the figures and the profile, say why._\n"
    path.write_text(render_docs(results, image.relative_to(path.parent).as_posix(), analysis), encoding="utf-8")


def render_docs(results: dict[str, Any], image: str, analysis: str) -> str:
    meta = results.get("meta", {})
    machine = meta.get("machine", {})
    sizes = meta.get("sizes", {})
    configs = results.get("configs", {})
    lines = [
        "# Benchmarks: our three services against the raw chain and the guarantee-equal chain",
        "",
        "Written by `make bench` (`bench/run.py`, issues 6 and 18): the figures below are the last run's, the",
        "analysis section is written by hand and kept from run to run. Every figure is also in",
        "[`benchmarks/bench.json`](benchmarks/bench.json).",
        "",
        "## The machine, the command and the sizes",
        "",
        f"- machine: {machine.get('nproc')} cores ({machine.get('cpu')}), {machine.get('memory_gib')} GiB memory, "
        f"{machine.get('os')}",
        f"- Python {machine.get('python')}, Apache Kafka {machine.get('kafka')} ({meta.get('broker')}), aiokafka "
        f"{machine.get('aiokafka')}, FastStream {machine.get('faststream')}, SQLAlchemy {machine.get('sqlalchemy')}, "
        f"pydantic {machine.get('pydantic')}; PostgreSQL: {meta.get('postgres', 'not used')}",
        f"- run at {meta.get('started_at')}, took {meta.get('total_seconds')} s in all; load average (1, 5, 15 min)"
        f" {meta.get('load_average_at_start')} at the start, {meta.get('load_average_at_end')} at the end",
        f"- command: `{meta.get('command')}`; after = commit {meta.get('commit', 'unknown')}, before = "
        f"{meta.get('before_commit') or 'not run (no --before)'}",
        f"- sizes of this run: {sizes.get('orders')} orders at once on SQLite, {sizes.get('pg_orders')} at once on "
        f"PostgreSQL (1 and 2 processes per service), {sizes.get('rate_orders')} at {sizes.get('rate')} per second "
        f"on SQLite; post-product share {sizes.get('post_share')}. `make bench`'s defaults are 10,000 / 2,000 / 300 "
        "at 10 per second (about 30 minutes with `BEFORE=REF` at today's speed, half without).",
        "",
        "## What runs",
        "",
        "**Ours**: the manufacturer, distributor and warehouse as separate processes (`LocalStack`, fresh databases,",
        "topics of 3 partitions, log level INFO), the sample chair catalogue with one lot of 10^9 of every",
        "component, racks and consignment storage with room for every order. The bench places the orders (at once,",
        "in pipelined batches of 500, or at the rate), plays the shop floor (`CompletionReported` once a",
        "post-product order's release flush is out) and the order holder (`DeliverySigned` once `GoodsShipped`), so",
        "every order ends closed. Latency per order: the `OrderPlaced` envelope time to the `OrderClosed` record's",
        "timestamp; throughput: closed orders over first publish to last close. CPU: the service processes'",
        "CPU clocks over the measured run (the broker and the bench left out; the PostgreSQL server's processes,",
        "backends included, on a row of their own and in the PostgreSQL goals). With `--before REF` the same",
        "services also run from REF's sources (a temporary worktree), so each",
        "before/after pair is measured in one run on the same broker.",
        "",
        "**Raw relay chain**: raw aiokafka relays in PERFORMANCE.md's fast shape (`getmany(max_records=500)`,",
        "every `send` without awaiting it, one gather, one offset commit per batch, idempotent producer), no",
        "database, no decoding, with our flows' hops on the same hosts (pre-product 6, post-product 9; the two",
        "bench hops in the bench process), the same number of messages and flow mix, keyed by order id, with our",
        "events' mean value and header sizes. **Guarantee-equal chain**: the same chains, but every service hop",
        "keeps our guarantees the cheapest way (`../shared/tools/dbrelay.py`'s shape): per batch of up to 500,",
        "pydantic decode, inbox claim (one `IN` query, one `executemany`), per-order state upsert and an outbox row",
        "per outgoing event in ONE transaction, pipelined idempotent sends, mark published, commit offsets; on the",
        "configuration's database (stdlib sqlite3 file per host; asyncpg on a database per host, its processes",
        "sharing it and splitting the partitions).",
        "",
        "## Goals (issue 18)",
        "",
        "| configuration | figure | goal | before | after | after: met? |",
        "|---|---|---|---:|---:|---|",
    ]
    for goal in results.get("goals", []):
        whose = f" ({goal['whose']})" if goal.get("whose") else ""
        lines.append(f"| {goal['config']} | {goal['figure']} | {goal['goal']} | "
                     f"{_goal_value(goal['before'], goal['figure'])} | {_goal_value(goal['after'], goal['figure'])}"
                     f"{whose} | {_verdict(goal['after_met'])} |")
    lines.append("")
    cpu2 = cpu_per_item(_get(configs, "pg2", "after"), "orders")
    if cpu2:
        cores = machine.get("nproc") or 2
        lines += [f"On paper, three machines of {cores} cores each running one process of every service",
                  f"(PostgreSQL and Kafka on machines of their own): CPU-bound at about {3 * cores / cpu2:,.0f} "
                  f"orders/s from pg2's {cpu2 * 1000:.1f} ms",
                  "of service CPU per order, if CPU per order stays flat as processes are added (the pg1 -> pg2 goal",
                  "above says whether it does), and if the database server keeps up.", ""]

    for name, config in configs.items():
        lines += [f"## {name}: {config['label']}", "",
                  "| figure | raw chain | guarantee-equal | ours before | ours after | after / before |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += ["| " + " | ".join(row) + " |" for row in figure_rows(config)]
        for key, error in config.get("errors", {}).items():
            lines += ["", f"**{key} failed**: `{error[:400]}`"]
        lines.append("")

    lines += [f"![latency distributions, ours and the baselines]({image})", ""]
    ours = _get(configs, "sqlite", "after")
    if ours:
        lines += ["### Latency per hop (ours, after, sqlite)", "",
                  "A hop: from the cause event's `occurred_at` to the effect's, so it holds the cause's commit and",
                  "outbox relay, the broker, the consumer's fetch and batch, and the handler until it emits.", "",
                  "| flow | service | hop | p50 | p95 | p99 |", "|---|---|---|---:|---:|---:|"]
        for flow in ("pre", "post"):
            for row in ours["hops"][flow]:
                lines.append(f"| {flow} | {row['service']} | {row['hop']} | {_md_s(row['p50'])} | "
                             f"{_md_s(row['p95'])} | {_md_s(row['p99'])} |")
        lines.append("")
    lines += ["### Processes", "", "CPU seconds during each measured run; peak resident memory (VmHWM) over the",
              "process's life.", "", "| configuration | run | process | CPU s | peak RSS MiB |",
              "|---|---|---|---:|---:|"]
    for name, config in configs.items():
        for key in ("after", "before", "raw", "guaranteed"):
            for process, figures in (_get(config, key, "processes") or {}).items():
                rss = figures.get("peak_rss_mib")
                lines.append(f"| {name} | {key} | {process} | {figures['cpu_seconds']:.1f} | "
                             f"{'-' if rss is None else f'{rss:.0f}'} |")
    lines.append("")
    lines += _profile_lines(*_profiled(configs))
    lines += ["## Analysis: the goals, where the time goes, what is left", "", ANALYSIS_BEGIN]
    lines += [analysis.strip("\n"), ANALYSIS_END, ""]
    return "\n".join(lines)


def _profiled(configs: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The configuration whose `after` run was sampled (`--profile-config`), and that run."""
    for name, config in configs.items():
        if _get(config, "after", "profile"):
            return name, config["after"]
    return "sqlite", None


def _profile_lines(profiled: str, ours: dict[str, Any] | None) -> list[str]:
    profile = _get(ours, "profile")
    busiest = _get(ours, "busiest_service")
    if not profile or busiest not in profile.get("services", {}):
        return []
    entries = profile["services"][busiest]
    lines = [f"### Where the time goes: the {busiest} (the busiest service, {profiled}, after), py-spy", "",
             f"{entries['samples']} working samples at {profile['rate_hz']} Hz over the measured run "
             "(`py-spy record --nonblocking`, all threads; a further "
             f"{entries['waiting_share'] * 100:.0f} % of the samples waited in epoll or on a condition). Own time:",
             "", "| # | function (file) | share |", "|---:|---|---:|"]
    for number, row in enumerate(entries["top_own"], start=1):
        lines.append(f"| {number} | `{row['entry']}` | {row['share'] * 100:.1f} % |")
    lines += ["", "Own time per package:", "", "| package | share |", "|---|---:|"]
    lines += [f"| {row['entry']} | {row['share'] * 100:.1f} % |" for row in entries["by_package"]]
    lines += ["", "Inclusive time of our own functions:", "", "| # | function (file) | share |", "|---:|---|---:|"]
    for number, row in enumerate(entries["top_inclusive_ours"], start=1):
        lines.append(f"| {number} | `{row['entry']}` | {row['share'] * 100:.1f} % |")
    others = [name for name in profile["services"] if name != busiest]
    if others:
        lines += ["", "The other services' top five (own time):", ""]
        for name in others:
            top = ", ".join(f"`{r['entry']}` {r['share'] * 100:.1f} %"
                            for r in profile["services"][name]["top_own"][:5])
            lines.append(f"- {name}: {top}")
    lines.append("")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite docs/benchmarks.md from a run's JSON (after editing its analysis section, or this renderer)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.report", description=main.__doc__)
    parser.add_argument("--json", type=Path, default=Path("docs/benchmarks/bench.json"))
    parser.add_argument("--docs", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args(argv)
    results = json.loads(args.json.read_text())
    match = re.search(re.escape(ANALYSIS_BEGIN) + r"(.*?)" + re.escape(ANALYSIS_END), args.docs.read_text(), re.DOTALL)
    image = (args.docs.parent / "benchmarks" / "latency.png").relative_to(args.docs.parent).as_posix()
    args.docs.write_text(render_docs(results, image, match.group(1) if match else ""), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
