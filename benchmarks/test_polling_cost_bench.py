"""Polling cost, measured: explorer calls per hour against wallets, up to and past the
point where polling can no longer keep its interval under the explorer's free-tier limit
of 3 calls/s, and what latency and late trades do past that point.

Each point is ``experiments/scenarios/polling_15s.toml`` with ``wallets.count`` set, run in
virtual time (the simulator and the real monitor on one looptime loop: protocol latency,
CPU costs no time), so a point costs seconds. Polling makes one ``getLogs`` call per wallet
per round plus one ``eth_blockNumber``; the monitor's own limiter spaces calls at 3/s, so
at 15 s a round of more than ~44 wallets no longer fits and the round stretches.

Measured per point: explorer calls per hour, the poll round (median gap between two
``eth_blockNumber`` calls), latency p50/p95/p99, late trades (after the 5-s actionable
window), trades delivered more than 30 s after their block, missed.

Written to ``benchmarks/results/polling_cost.json``; the report's cost section reads it.
Run: ``.venv/bin/python -m pytest benchmarks/test_polling_cost_bench.py -s``.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path
from typing import Any

import pytest
from bench_results import figure, write_results

WALLETS = (1, 5, 10, 20, 40, 60, 80, 120)
SCENARIO = Path(__file__).resolve().parents[1] / "experiments" / "scenarios" / "polling_15s.toml"
RATE_PER_S = 3.0
NS = 1_000_000_000


def _round_s(sdir: Path, window: tuple[int, int]) -> float | None:
    """Median gap between the monitor's ``eth_blockNumber`` calls (one per round) inside
    the measured window."""
    import json

    ts = []
    with (sdir / "monitor_history.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if "eth_blockNumber" not in line:
                continue
            row = json.loads(line)
            if row.get("event") == "api_call" and window[0] <= row["t_ns"] <= window[1]:
                ts.append(row["t_ns"])
    gaps = [(b - a) / NS for a, b in itertools.pairwise(ts)]
    return statistics.median(gaps) if gaps else None


def _point(wallets: int, base: Any, root: Path, cache: Path) -> dict[str, Any]:
    import json

    import pandas as pd

    from experiments.runner import RunnerOptions
    from experiments.virtual import run_scenario_virtual

    # grace: long enough for the last stretched round to cover the last blocks
    grace = max(base.grace_s, 3 * (wallets + 1) / RATE_PER_S)
    sc = base.model_copy(update={
        "name": f"polling_15s_w{wallets}", "grace_s": grace,
        "wallets": base.wallets.model_copy(update={"count": wallets})})
    sdir = root / sc.name
    s = run_scenario_virtual(sc, sdir, RunnerOptions(cache_dir=cache))
    assert s["status"] == "ok", s.get("error")
    run = json.loads((sdir / "run.json").read_text())
    window = (int(run["window_start_ns"]), int(run["window_end_ns"]))
    outcomes = pd.read_parquet(sdir / "outcomes.parquet")
    lat = outcomes["latency_s"].dropna()
    trades = int(s["trades"] or 0)
    return {
        "wallets": wallets,
        "explorer_calls_per_hour": s["explorer_calls_per_hour"],
        "calls_per_s": (s["explorer_calls_per_hour"] or 0.0) / 3600.0,
        "round_s": _round_s(sdir, window),
        "round_s_expected": max(base.monitor.polling_interval or 15.0,
                                (wallets + 1) / RATE_PER_S),
        "trades": trades,
        "detected": s["detected"], "late": s["late"], "missed": s["missed"],
        "late_pct": 100.0 * (s["late"] or 0) / trades if trades else None,
        "over_30s_pct": 100.0 * float((lat > 30.0).sum()) / trades if trades else None,
        "latency_p50_s": s["latency_p50_s"], "latency_p95_s": s["latency_p95_s"],
        "latency_p99_s": s["latency_p99_s"], "latency_max_s": s["latency_max_s"],
    }


@pytest.mark.slow
def test_polling_cost_against_wallets(tmp_path: Path) -> None:
    from experiments.scenario import load_scenario

    base = load_scenario(SCENARIO)
    interval = float(base.monitor.polling_interval or 15.0)
    cache = tmp_path / "cache"
    points = [_point(w, base, tmp_path, cache) for w in WALLETS]

    limit_h = RATE_PER_S * 3600.0
    figures = []
    for p in points:
        w = p["wallets"]
        figures += [
            figure(f"{w} wallets: explorer calls/h", p["explorer_calls_per_hour"], "/h",
                   f"<= {limit_h:,.0f}/h (3/s)",
                   p["explorer_calls_per_hour"] <= limit_h * 1.01),
            figure(f"{w} wallets: poll round", p["round_s"], "s", f"<= {interval:g} s",
                   p["round_s"] is not None and p["round_s"] <= interval * 1.05),
            figure(f"{w} wallets: latency p50", p["latency_p50_s"], "s"),
            figure(f"{w} wallets: latency p99", p["latency_p99_s"], "s"),
            figure(f"{w} wallets: late (> 5 s) / > 30 s / missed",
                   f"{p['late_pct']:.0f}% / {p['over_30s_pct']:.1f}% / {p['missed']}"),
        ]
    keeps = [p["wallets"] for p in points
             if p["round_s"] is not None and p["round_s"] <= interval * 1.05]
    breaks = [p["wallets"] for p in points if p["wallets"] not in keeps]
    last_ok = max(keeps) if keeps else None
    first_bad = min(breaks) if breaks else None
    figures.append(figure(
        "polling keeps its interval up to (wallets)", last_ok, "",
        f"theory: {int(interval * RATE_PER_S) - 1} (3/s x {interval:g} s - head)", None))
    write_results(
        "polling_cost", "Polling cost against wallets (virtual time, polling_15s)",
        ".venv/bin/python -m pytest benchmarks/test_polling_cost_bench.py -s", figures,
        clock="virtual", scenario="experiments/scenarios/polling_15s.toml",
        interval_s=interval, explorer_rate_per_s=RATE_PER_S,
        keeps_interval_up_to=last_ok, stretches_from=first_bad, points=points)

    # behaviour: calls grow with wallets until the limiter caps them at 3/s, then the round
    # stretches instead; nothing is lost either way
    by_w = {p["wallets"]: p for p in points}
    assert by_w[10]["explorer_calls_per_hour"] > 5 * by_w[1]["explorer_calls_per_hour"]
    assert all(p["calls_per_s"] <= RATE_PER_S * 1.01 for p in points)
    assert by_w[120]["round_s"] > interval
    assert all(p["missed"] == 0 for p in points)
