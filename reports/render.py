"""Build ``report.html``: one self-contained page (figures as base64 PNG, inline CSS, no
network) from a run in the store.

Everything that came from the chain, a scenario or a config goes through jinja2 with
autoescape on. A figure that fails to draw becomes a note in the page, not a crash; so does
a manifest ``pilot`` of another shape ("-" for what it lacks).

On the virtual clock computing costs no time: CPU and memory are not measured (their
columns say so, the resource figure is not drawn) and latencies are protocol latencies,
never speed-1 measurements.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from experiments.thresholds import metric_value, number, shown
from reports import figures
from reports.claims import Claim, check_claims
from reports.cost import (
    POLLING_COST_FILE,
    ModeCost,
    bench_results_dir,
    explorer_limit_per_hour,
    load_measured_polling,
    mode_costs,
)
from reports.criteria import Criteria
from reports.files import write_whole
from reports.load import NOT_MEASURED_VIRTUAL, VIRTUAL, Run, all_outcomes, run_clock
from reports.performance import (
    Performance,
    default_bench_dirs,
    load_budget,
    load_performance,
)
from reports.reliability import reliability_rows
from reports.rollout import RolloutPlan, plan_rollout
from reports.verdict import LATENCY_BOUND_CAVEAT, VerdictResult, evaluate
from reports.watch import RANGES_SHOWN, TABLE_ROWS, Watch, scenario_watches, shown_path

__all__ = ["Report", "build_report", "environment", "fmt_num", "render_report", "write_report"]

TEMPLATES = Path(__file__).with_name("templates")

SCENARIO_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # (header, metric, format)
    ("speed", "speed", "num"),  # above 1, the monitor's own processing time is inflated
    ("trades", "trades", "int"),
    ("detected", "detected", "int"),
    ("late", "late", "int"),
    ("missed", "missed", "int"),
    ("dupl.", "duplicates", "int"),
    ("phantoms", "phantoms", "int"),
    ("p50 s", "latency_p50_s", "num"),
    ("p95 s", "latency_p95_s", "num"),
    ("p99 s", "latency_p99_s", "num"),
    ("max s", "latency_max_s", "num"),
    ("calls/h", "api_calls_per_hour", "num"),
    ("calls/h/wallet", "api_calls_per_hour_per_wallet", "num"),
    ("explorer/h", "explorer_calls_per_hour", "num"),
    ("uptime", "uptime", "pct"),
    ("coverage", "coverage", "pct"),
    ("reconnects", "reconnects", "int"),
    ("fallback s", "fallback_s", "num"),
    ("CPU s/h", "cpu_s_per_hour", "num"),
    ("RSS MB", "rss_peak_mb", "num"),
)


def fmt_num(value: Any, kind: str = "num") -> str:
    """Numbers for people: 3 significant digits, thousands separated, '-' when absent."""
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "unlimited"
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "pct":  # never rounded to 100 % or 0 % (99.996 % was "100 %")
        return "100 %" if v >= 1 else f"{shown(100 * v, (0.0, 100.0), digits=4)} %"
    if kind == "usd":
        return f"${v:,.2f}"
    return shown(v)  # written out: 999.6 was "1e+03", 0.00004 "4e-05"


def _spread(value: Any) -> dict[str, dict[str, Any]]:
    """A pooled summary's ``spread`` (metric -> min, mean, max across the seeds), the
    entries of another shape left out: a metric's entry that was a text (a damaged
    summary.json) was a jinja2 UndefinedError traceback."""
    if not isinstance(value, dict):
        return {}
    return {str(m): sp for m, sp in value.items()
            if isinstance(sp, dict) and {"min", "mean", "max"} <= sp.keys()}


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    return env


@dataclass(frozen=True, slots=True)
class Report:
    run: Run
    criteria: Criteria
    verdict: VerdictResult
    claims: list[Claim]
    costs: list[ModeCost]
    rollout: RolloutPlan
    performance: Performance | None = None


def build_report(run: Run, criteria: Criteria, bench_dir: Path | None = None) -> Report:
    """``bench_dir``: where the benchmark results are read (default
    :func:`reports.cost.bench_results_dir`)."""
    bench = bench_dir or bench_results_dir()
    verdict = evaluate(run, criteria)
    return Report(
        run=run,
        criteria=criteria,
        verdict=verdict,
        claims=check_claims(run, criteria.claims, explorer_limit_per_hour(criteria.cost)),
        costs=mode_costs(run, criteria.cost, load_measured_polling(bench / POLLING_COST_FILE)),
        rollout=plan_rollout(run, verdict.verdict, criteria, verdict.checks),
        performance=_performance(run, bench_dir),
    )


def _performance(run: Run, bench_dir: Path | None) -> Performance:
    dirs = [bench_dir] if bench_dir else default_bench_dirs()
    return replace(load_performance(dirs), budget=load_budget(run, dirs))


def _figure(title: str, build: Callable[[], Any], alt: str) -> dict[str, str]:
    try:
        fig = build()
        return {"title": title, "uri": figures.to_data_uri(fig), "alt": alt, "error": "",
                "note": ""}
    except Exception as exc:  # a figure must never take the report down
        return {"title": title, "uri": "", "alt": alt, "note": "",
                "error": f"figure could not be drawn: {type(exc).__name__}: {exc}"}


def _not_drawn(title: str, why: str) -> dict[str, str]:
    return {"title": title, "uri": "", "alt": "", "error": "", "note": why}


def _worst_trades(run: Run, limit: int = 15) -> dict[str, Any]:
    """The missed trades, the slowest websocket deliveries and the trades the bot was told
    wrongly (phantoms, duplicates), ``limit`` of each, with how many there are in all and
    the scenarios whose outcomes could not be read: "No trade was missed" stood for a run
    whose broken scenarios had no outcomes to look in, and 15 rows for 300 misses."""
    unread = [sc.name for sc in run.scenarios if sc.outcomes is None]
    df = all_outcomes(run, categories=True)
    if df.empty:
        return {"missed": [], "latest": [], "wrong": [], "n_missed": 0, "n_wrong": 0,
                "unread": unread}

    def rows(sel: pd.DataFrame) -> list[dict[str, Any]]:
        out = []
        for r in sel.itertuples(index=False):
            fault = r.fault if isinstance(r.fault, str) and r.fault else None
            seed = getattr(r, "seed", None)
            out.append({
                "scenario": r.scenario, "mode": r.mode, "trade_id": str(r.trade_id),
                # pooled seeds: which run the trade (and its time) belongs to
                "seed": None if seed is None or pd.isna(seed) else
                str(int(seed)) if isinstance(seed, float) and seed.is_integer() else str(seed),
                "wallet": "-" if pd.isna(r.wallet) else str(r.wallet),
                "block": None if pd.isna(r.block_number) else r.block_number,
                "t_s": None if pd.isna(r.t_s) else float(r.t_s),
                "outcome": r.outcome,
                "latency_s": None if pd.isna(r.latency_s) else float(r.latency_s),
                "fault": fault or ("during a fault" if bool(r.in_fault) else "none"),
            })
        return out

    all_missed = df[df["outcome"] == "missed"]
    missed = all_missed.sort_values(["scenario", "t_s"]).head(limit)
    delivered = df[df["latency_s"].notna() & (df["mode"] != "polling")]
    latest = delivered.sort_values("latency_s", ascending=False).head(limit)
    all_wrong = df[df["outcome"].isin(["phantom", "duplicate"])]
    wrong = all_wrong.sort_values(["scenario", "t_s"]).head(limit)
    return {"missed": rows(missed), "latest": rows(latest), "wrong": rows(wrong),
            "n_missed": len(all_missed), "n_wrong": len(all_wrong), "unread": unread}


#: metrics a polling scenario has no value of (uptime is a real-time feed's, and polling
#: has none: the analysis writes 0, which read as "down the whole run")
NOT_POLLING = frozenset({"uptime", "reconnects", "fallback_s"})


def _scenario_rows(run: Run) -> list[dict[str, Any]]:
    virtual = run_clock(run) == VIRTUAL
    unmeasured = NOT_MEASURED_VIRTUAL if virtual else frozenset()
    out = []
    for sc in run.scenarios:
        none = unmeasured | (NOT_POLLING if sc.mode == "polling" else frozenset())
        cells = [("virtual" if virtual and m == "speed" else
                  fmt_num(metric_value(sc.summary, m), kind))
                 if sc.summary and m not in none else "-"
                 for _, m, kind in SCENARIO_COLUMNS]
        out.append({"name": sc.name, "mode": sc.mode, "status": sc.status,
                    "era": str(sc.summary.get("era") or "-"),
                    "wallets": sc.summary.get("wallets", "-"), "cells": cells})
    return out


def _manifest_rows(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    order = ["run_id", "command", "git_sha", "speed", "seeds", "scenarios", "versions",
             "host", "started", "finished"]
    keys = [k for k in order if k in manifest] + sorted(k for k in manifest if k not in order)
    rows = []
    for k in keys:
        v = manifest[k]
        text = v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)
        rows.append((k, text))
    return rows


def _text(value: Any) -> str:
    """A manifest value for the page: '-' when it is missing or empty."""
    if value is None or value == "" or isinstance(value, (dict, list)):
        return "-"
    return str(value)


def _dict(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _pilot(raw: Any) -> dict[str, Any] | None:
    """The manifest's ``pilot`` object in the shape the template reads
    (``experiments/reconcile.py`` writes it): whatever it lacks or holds in another shape
    becomes '-' (or nothing to list), never a template error."""
    if not isinstance(raw, dict):
        return None
    ends, uptime = _dict(raw.get("endpoints")), _dict(raw.get("uptime"))
    blocks, wallets = _list(raw.get("blocks")), _list(raw.get("wallets"))
    limits = _list(raw.get("limitations"))
    return {
        "endpoints": {k: _text(ends.get(k)) for k in ("websocket", "rpc", "explorer")},
        "truth_rpc": _text(raw.get("truth_rpc")),
        "started": _text(raw.get("started")),
        "last_beat": _text(raw.get("last_beat")),
        "sessions": _text(raw.get("sessions")),
        "blocks": [_text(blocks[i]) if i < len(blocks) else "-" for i in (0, 1)],
        "finality_depth": _text(raw.get("finality_depth")),
        "grace_s": number(raw.get("grace_s")),
        "wallets": [str(w) for w in wallets],
        "uptime": {str(k): number(v) for k, v in uptime.items()},
        "timestamp_offset_s": number(raw.get("timestamp_offset_s")),
        "limitations": [str(x) for x in limits],
    }


def _per_wallet_note(summary: dict[str, Any], watch: Watch) -> tuple[str, bool]:
    """How the scenario's API calls per wallet-hour were divided, and whether the summary
    divides by the wallets watched on average (False: by another number, a warning)."""
    calls, per = number(summary.get("api_calls_per_hour")), \
        number(summary.get("api_calls_per_hour_per_wallet"))
    if watch.seed is not None or calls is None or per is None or per <= 0:
        return "", True  # a pool's are means over its seeds
    divisor = calls / per
    if watch.mean is None:
        return (f"API calls per wallet-hour ({fmt_num(per)}) are the calls per hour "
                f"({fmt_num(calls)}) divided by {fmt_num(divisor)}: the wallets watched on "
                "average are not known (see above).", False)
    if math.isclose(divisor, watch.mean, rel_tol=1e-6):
        return (f"API calls per wallet-hour ({fmt_num(per)}) are the calls per hour "
                f"({fmt_num(calls)}) divided by the {fmt_num(watch.mean)} wallets watched on "
                "average, not by every wallet watched at some time.", True)
    return (f"API calls per wallet-hour ({fmt_num(per)}) are the calls per hour "
            f"({fmt_num(calls)}) divided by {fmt_num(divisor)}, not by the "
            f"{fmt_num(watch.mean)} wallets watched on average.", False)


def _watch_details(sc: Any) -> dict[str, Any] | None:
    """The scenario's changed wallet lists for the page (:mod:`reports.watch`), None when
    its runs changed none (the page then shows nothing of it)."""
    watches, more_seeds = scenario_watches(sc)
    if not watches:
        return None
    lists: list[dict[str, Any]] = []
    for w in watches:
        if not w.readable:  # a seed's run.json gone or damaged: the line that says so
            lists.append({"seed": w.seed, "file": shown_path(w), "problems": list(w.problems),
                          "readable": False})
            continue
        changed = w.changed
        note, agrees = _per_wallet_note(sc.summary, w)
        lists.append({
            "seed": w.seed, "file": shown_path(w), "problems": list(w.problems),
            "readable": True, "entries": w.entries, "read": len(w.wallets), "at_start": w.at_start,
            "at_end": w.at_end, "mean": w.mean, "mean_recorded": w.mean_recorded,
            "window_s": w.window_s,
            "restarts": list(w.restarts[:TABLE_ROWS]),
            "more_restarts": max(0, len(w.restarts) - TABLE_ROWS),
            "changed": [{"wallet": c.wallet, "from_s": c.from_s, "to_s": c.to_s,
                         "after_block": c.after_block, "until_block": c.until_block,
                         "ranges": [f"{a}-{b}" if b > a else f"{a}"
                                    for a, b in c.unjudged[:RANGES_SHOWN]],
                         "more_ranges": max(0, len(c.unjudged) - RANGES_SHOWN),
                         "unjudged": c.unjudged_blocks}
                        for c in changed[:TABLE_ROWS]],
            "n_changed": len(changed), "more_changed": max(0, len(changed) - TABLE_ROWS),
            "unjudged_ranges": w.unjudged_ranges, "unjudged_blocks": w.unjudged_blocks,
            "unjudged_wallets": sum(1 for c in w.wallets if c.unjudged),
            "per_wallet": note, "per_wallet_agrees": agrees,
        })
    return {"lists": lists, "more_seeds": more_seeds}


def render_report(report: Report) -> str:
    run = report.run
    ok = [s for s in run.scenarios if s.ok]
    clock = run_clock(run)
    virtual = clock == VIRTUAL
    latency_title = "Detection latency, polling vs websocket"
    if virtual:
        latency_title += (" (virtual time: protocol and fault latency, not a speed-1 "
                          "measurement)")
    figs = [
        _figure(latency_title, lambda: figures.latency_ecdf(run),
                "ECDF of detection latency per mode, log scale"),
        _figure("Outcomes per scenario", lambda: figures.outcomes(run),
                "stacked bars of detected, late, missed, duplicate and phantom trades"),
        _figure("API calls and the explorer's limits", lambda: figures.api_calls(
                    run, rate_limit_per_hour=report.criteria.cost.explorer.rate_per_s * 3600,
                    daily_limit_per_hour=report.criteria.cost.explorer.calls_per_day / 24),
                "API calls per hour per mode and explorer calls against wallets"),
        _not_drawn("Resource use", figures.VIRTUAL_RESOURCES)
        if virtual else _figure("Resource use", lambda: figures.resources(run),
                                "CPU seconds per hour and peak memory per scenario"),
    ]
    details = []
    for sc in run.scenarios:
        timeline = None
        if sc.ok and sc.outcomes is not None:
            timeline = _figure(f"{sc.name}: latency over time",
                               functools.partial(figures.latency_timeline, sc),
                               f"latency of each trade over time in {sc.name}, faults shaded")
        raw_faults = sc.summary.get("faults")
        faults: list[Any] = raw_faults if isinstance(raw_faults, list) else []
        details.append({
            "name": sc.name, "mode": sc.mode, "status": sc.status,
            "description": str(sc.summary.get("description") or ""),
            "era": str(sc.summary.get("era") or ""),
            "error": str(sc.summary.get("error") or ""),
            "faults": [f for f in faults if isinstance(f, dict)],
            "problems": list(sc.problems),
            "checks": [c for c in report.verdict.checks if c.scenario == sc.name],
            "seeds": sc.summary.get("seeds") if isinstance(sc.summary.get("seeds"), list)
            else None,
            "spread": _spread(sc.summary.get("spread")),
            "sim_hours": (number(sc.summary.get("sim_duration_s")) or 0.0) / 3600.0,
            "clock": clock,
            "timeline": timeline,
            "watch": _watch_details(sc),
        })
    problems = list(run.problems) + [f"{s.name}: {p}" for s in run.scenarios for p in s.problems]
    env = environment()
    return env.get_template("report.html.j2").render(
        run_id=run.run_id,
        verdict=report.verdict,
        latency_caveat=LATENCY_BOUND_CAVEAT,
        claims=report.claims,
        costs=report.costs,
        cost_settings=report.criteria.cost,
        explorer_limit_h=explorer_limit_per_hour(report.criteria.cost),
        rollout=report.rollout,
        performance=report.performance,
        columns=[c[0] for c in SCENARIO_COLUMNS],
        scenario_rows=_scenario_rows(run),
        figures=figs,
        details=details,
        worst=_worst_trades(run),
        reliability=reliability_rows(run),
        manifest=_manifest_rows(run.manifest),
        pilot=_pilot(run.manifest.get("pilot")),
        virtual=virtual,
        problems=problems,
        criteria_source=report.criteria.source,
        n_ok=len(ok),
        show_index=len(run.scenarios) > 1,
    )


def write_report(run: Run, criteria: Criteria, out: Path | None = None,
                 bench_dir: Path | None = None) -> tuple[Report, Path]:
    """Build and write the report; returns it and the path written."""
    report = build_report(run, criteria, bench_dir)
    path = out or run.path / "report.html"
    write_whole(path, render_report(report))
    return report, path

