"""Builder of a small synthetic run store that follows docs/contracts.md "Run store" exactly.

Scenarios (default run => GO under reports/criteria.toml):
- ``polling_baseline``  polling, 1 wallet, latencies 15-30 s (all late), 1 missed
- ``polling_10w``       polling, 10 wallets
- ``ws_healthy``        websocket, 1 wallet, latencies 0.1-0.6 s
- ``ws_drop``           websocket, 1 wallet, a ws_drop fault 200-260 s during which one
                        trade is missed and one is late (8 s); fallback polling 215-262 s
- ``ws_10w``            websocket, 10 wallets

``make_run(tmp_path, overrides={"ws_drop": {"missed": 9}}, remove=["ws_drop/summary.json"])``
builds variants.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.checker import TRADE_OUTCOMES, outcome_counts
from experiments.thresholds import evaluate_all

T0_NS = 5_000_000_000_000
DURATION_S = 600.0
WALLET = "0x" + "ab" * 20
SCENARIO_THRESHOLDS = ["latency_p99_s < 10"]


def _trade_id(i: int, scenario: str) -> str:
    h = sum(map(ord, scenario))
    return f"0x{h:08x}{i:056x}:{i % 7}"


def _outcomes(name: str, mode: str, n: int, wallets: int, seed: int,
              special: dict[int, tuple[str, float | None]],
              faults: list[dict[str, Any]]) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        t_s = DURATION_S * (i + 0.5) / n
        visible = T0_NS + int(t_s * 1e9)
        if i in special:
            outcome, lat = special[i]
        elif mode == "polling":
            lat = rng.uniform(15.0, 30.0)
            outcome = "late"
        else:
            lat = rng.uniform(0.1, 0.6)
            outcome = "detected"
        fault = next((f["name"] for f in faults if f["start_s"] <= t_s <= f["stop_s"]), None)
        rows.append({
            "trade_id": _trade_id(i, name),
            "wallet": WALLET if wallets == 1 else f"0x{(i % wallets) + 1:040x}",
            "block_number": 60_000_000 + i * 3,
            "visible_t_ns": visible,
            "delivered_t_ns": None if lat is None else visible + int(lat * 1e9),
            "latency_s": lat,
            "outcome": outcome,
            "deliveries": 0 if lat is None else (2 if outcome == "duplicate" else 1),
            "source": None if lat is None else ("poll" if mode == "polling" else "ws"),
            "in_fault": fault is not None,
            "fault": fault,
        })
    df = pd.DataFrame(rows)
    df["delivered_t_ns"] = df["delivered_t_ns"].astype("Int64")
    df["latency_s"] = df["latency_s"].astype("float64")
    return df


def _summary(name: str, mode: str, wallets: int, df: pd.DataFrame, faults: list[dict[str, Any]],
             description: str) -> dict[str, Any]:
    hours = DURATION_S / 3600
    lat = df["latency_s"].dropna()
    trades = int((df["outcome"] != "phantom").sum())
    counts = df["outcome"].value_counts()
    in_f = df[df["in_fault"]]["latency_s"].dropna()
    out_f = df[~df["in_fault"]]["latency_s"].dropna()
    if mode == "polling":
        calls = {"explorer": int(240 * wallets * hours), "rpc_http": 0, "rpc_ws": 0}
        cpu, rss = 3.0 * hours * wallets, 80_000_000
    else:
        fb = 47 if faults else 0
        calls = {"explorer": 1 + fb // 15, "rpc_http": 4 + (3 if faults else 0),
                 "rpc_ws": 3 + (3 if faults else 0)}
        cpu, rss = 1.0 * hours, 70_000_000
    return {
        "scenario": name, "description": description, "mode": mode, "speed": 1.0, "seed": 7,
        "wallets": wallets, "sim_duration_s": DURATION_S, "status": "ok", "error": None,
        "trades": trades, "detected": int(counts.get("detected", 0)),
        "late": int(counts.get("late", 0)), "missed": int(counts.get("missed", 0)),
        "duplicates": int(counts.get("duplicate", 0)), "phantoms": int(counts.get("phantom", 0)),
        "retracted": int(counts.get("retracted", 0)),
        "missed_pct": 100.0 * int(counts.get("missed", 0)) / trades,
        "latency_p50_s": float(lat.quantile(0.5)), "latency_p95_s": float(lat.quantile(0.95)),
        "latency_p99_s": float(lat.quantile(0.99)), "latency_max_s": float(lat.max()),
        "latency_p95_in_fault_s": float(in_f.quantile(0.95)) if len(in_f) else None,
        "latency_p95_outside_fault_s": float(out_f.quantile(0.95)),
        "api_calls": calls,
        "api_calls_per_hour": sum(calls.values()) / hours,
        "explorer_calls_per_hour": calls["explorer"] / hours,
        "api_calls_per_hour_per_wallet": sum(calls.values()) / hours / wallets,
        "uptime": 1.0 if mode == "polling" else (0.9 if faults else 1.0),
        "coverage": 1.0,
        "reconnects": 1 if faults else 0,
        "fallback_s": 47.0 if faults else 0.0,
        "cpu_s": cpu, "cpu_s_per_hour": cpu / hours, "rss_peak_bytes": rss,
        "bytes_received": 123_456,
        "faults": faults,
        "thresholds": [],  # evaluated in build_run, after the overrides
        "actionable_window_s": 5.0,
    }


def _monitor_history(mode: str, wallets: int, df: pd.DataFrame,
                     faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def t(s: float) -> int:
        return T0_NS + int(s * 1e9)

    rows: list[dict[str, Any]] = [{"t_ns": t(0), "event": "start", "mode": mode,
                                   "wallets": wallets, "speed": 1.0,
                                   "settings": {"explorer_api_key": "abcd…"}}]
    if mode == "websocket":
        rows.append({"t_ns": t(0.1), "event": "state", "conn": 1, "from": "DISCONNECTED",
                     "to": "CONNECTING", "cause": "start"})
        rows.append({"t_ns": t(0.5), "event": "state", "conn": 1, "from": "CONNECTING",
                     "to": "CONNECTED", "cause": "opened"})
        for f in faults:
            rows += [
                {"t_ns": t(f["start_s"]), "event": "state", "conn": 1, "from": "CONNECTED",
                 "to": "RECONNECTING", "cause": "lost"},
                {"t_ns": t(f["start_s"] + 15), "event": "fallback", "active": True,
                 "cause": "feed unhealthy 15 s"},
                {"t_ns": t(f["stop_s"] + 2), "event": "state", "conn": 2,
                 "from": "RECONNECTING", "to": "CONNECTED", "cause": "opened"},
                {"t_ns": t(f["stop_s"] + 2), "event": "fallback", "active": False,
                 "cause": "feed healthy"},
            ]
    for _, r in df.iterrows():
        if pd.notna(r["delivered_t_ns"]):
            rows.append({"t_ns": int(r["delivered_t_ns"]), "event": "delivered",
                         "trade_id": r["trade_id"], "source": r["source"],
                         "block_number": int(r["block_number"]), "block_hash": "0x" + "1" * 64})
            rows.append({"t_ns": int(r["delivered_t_ns"]) - 1000, "event": "api_call",
                         "kind": "explorer" if mode == "polling" else "rpc_ws",
                         "method": "logs.getLogs" if mode == "polling" else "eth_subscribe",
                         "ok": True})
    rows.append({"t_ns": t(DURATION_S), "event": "stop", "metrics": {}, "cpu_s": 1.0,
                 "rss_peak_bytes": 70_000_000})
    return sorted(rows, key=lambda r: r["t_ns"])


def _sim_history(df: pd.DataFrame, faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"t_ns": T0_NS - 1000, "event": "start", "speed": 1.0,
                                   "t0_ns": T0_NS, "first_block": 60_000_000, "ts0": 1_700_000_000,
                                   "chain_id": 137, "recording": {}, "urls": {}}]
    for _, r in df.iterrows():
        rows.append({"t_ns": int(r["visible_t_ns"]), "event": "block_published",
                     "number": int(r["block_number"]), "hash": "0x" + "1" * 64,
                     "parent_hash": "0x" + "0" * 64, "timestamp": 1_700_000_000,
                     "order_filled": [[r["trade_id"], r["wallet"]]]})
    for i, f in enumerate(faults):
        rows.append({"t_ns": T0_NS + int(f["start_s"] * 1e9), "event": "fault_start",
                     "fault_id": i, "name": f["name"], "target": "ws", "params": {}})
        rows.append({"t_ns": T0_NS + int(f["stop_s"] * 1e9), "event": "fault_stop",
                     "fault_id": i, "name": f["name"], "target": "ws", "params": {}})
    rows.append({"t_ns": T0_NS + int(DURATION_S * 1e9), "event": "stop", "head": 60_000_600})
    return sorted(rows, key=lambda r: r["t_ns"])


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


SCENARIOS: list[dict[str, Any]] = [
    {"name": "polling_baseline", "mode": "polling", "wallets": 1, "n": 40, "faults": [],
     "special": {5: ("missed", None)}},
    {"name": "polling_10w", "mode": "polling", "wallets": 10, "n": 60, "faults": [],
     "special": {}},
    # websocket scenarios hold enough trades for the miss-rate bound to decide < 1%
    {"name": "ws_healthy", "mode": "websocket", "wallets": 1, "n": 400, "faults": [],
     "special": {}},
    {"name": "ws_drop", "mode": "websocket", "wallets": 1, "n": 600,
     "faults": [{"name": "ws_drop", "start_s": 200.0, "stop_s": 260.0}],
     # trade 211 at t=211.5 s (in the fault): missed; trade 241 at 241.5 s: late, 8 s
     "special": {211: ("missed", None), 241: ("late", 8.0)}},
    {"name": "ws_10w", "mode": "websocket", "wallets": 10, "n": 400, "faults": [],
     "special": {}},
]


_COUNT_KEYS = {"detected": "detected", "late": "late", "missed": "missed",
               "duplicates": "duplicate", "phantoms": "phantom", "retracted": "retracted"}


def _follow_counts(df: pd.DataFrame, summary: dict[str, Any], mode: str) -> pd.DataFrame:
    """The outcomes table of a summary whose counts an override changed: as a real run's,
    its rows count what the summary says (the report refuses a summary that its
    outcomes.parquet contradicts). Rows are added (for a summary pooled over ``seeds``,
    one copy of the table per seed) or dropped, and outcomes moved, keeping every row that
    already has an outcome still wanted. A summary whose counts do not add up is left with
    its table: the report says so."""
    want = {o: summary.get(k) for k, o in _COUNT_KEYS.items()}
    trades = summary.get("trades")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
               for v in (*want.values(), trades)):
        return df
    if trades != sum(want[o] for o in ("detected", "late", "missed", "duplicate")):
        return df
    n = int(trades) + int(want["phantom"]) + int(want["retracted"])  # type: ignore[operator]
    seeds = summary.get("seeds")
    if n > len(df) and isinstance(seeds, list) and len(seeds) > 1:
        df = pd.concat([df.assign(seed=s) for s in seeds], ignore_index=True)
    while len(df) < n:
        more = df.iloc[:n - len(df)].copy()
        more["trade_id"] = [f"{t}-{len(df) + i}" for i, t in enumerate(more["trade_id"])]
        df = pd.concat([df, more], ignore_index=True)
    df = df.iloc[:n].copy()
    left = dict(want)
    kept = []
    for outcome in df["outcome"]:
        keep = left.get(outcome, 0) > 0 and outcome != "detected"
        if keep:
            left[outcome] -= 1
        kept.append(keep)
    # what the rows not kept become: the rarer outcomes at the end of the run
    todo = [o for o in ("detected", "late", "missed", "duplicate", "phantom", "retracted")
            for _ in range(left[o])]
    for i in range(len(df) - 1, -1, -1):
        if kept[i]:
            continue
        outcome = todo.pop()
        lat = None if outcome == "missed" else 8.0 if outcome == "late" and mode != "polling" \
            else 20.0 if mode == "polling" else 0.3
        if outcome == df.at[df.index[i], "outcome"]:
            continue
        idx = df.index[i]
        df.at[idx, "outcome"] = outcome
        df.at[idx, "latency_s"] = float("nan") if lat is None else lat
        df.at[idx, "delivered_t_ns"] = (pd.NA if lat is None else
                                        int(df.at[idx, "visible_t_ns"]) + int(lat * 1e9))
        df.at[idx, "deliveries"] = 0 if lat is None else (2 if outcome == "duplicate" else 1)
        df.at[idx, "source"] = None if lat is None else ("poll" if mode == "polling" else "ws")
    return df


#: a summary's point latencies: of which trades (all, in a fault, outside) and which quantile
_POINTS = {"latency_p50_s": ("all", 0.5), "latency_p95_s": ("all", 0.95),
           "latency_p99_s": ("all", 0.99), "latency_max_s": ("all", 1.0),
           "latency_p95_in_fault_s": ("in", 0.95),
           "latency_p95_outside_fault_s": ("out", 0.95)}


def point_latencies(table: pd.DataFrame) -> dict[str, Any]:
    """The point latencies the analysis writes of ``table`` (of a pool: every seed's
    trades), for a test that stores another table than the one built."""
    counts = outcome_counts(table.drop(columns="seed", errors="ignore"))
    return {key: counts[key] for key in _POINTS}


def _follow_latencies(df: pd.DataFrame, summary: dict[str, Any],
                      override: dict[str, Any]) -> pd.DataFrame:
    """The table's latencies moved so that its quantiles are the point latencies an
    override sets (the report refuses a summary whose outcomes.parquet gives others); the
    point latencies not set are those of the final table, as the analysis writes them."""
    wanted = {k: float(v) for k, v in override.items() if k in _POINTS and isinstance(
        v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0}
    df = df.copy()
    trades = df["outcome"].isin(TRADE_OUTCOMES) & df["latency_s"].notna()
    in_fault = df["in_fault"].fillna(False).astype(bool)
    for group in ("in", "out", "all"):
        targets = sorted((q, wanted[k]) for k, (g, q) in _POINTS.items()
                         if g == group and k in wanted)
        if not targets:
            continue
        sel = trades & (in_fault if group == "in" else ~in_fault if group == "out" else True)
        order = df.loc[sel, "latency_s"].sort_values(kind="stable").index
        x = df.loc[order, "latency_s"].to_numpy(dtype="float64", copy=True)
        if not len(x):
            continue
        for q, v in targets:  # pandas' linear quantile: x[lo] + (h - lo) * (x[hi] - x[lo])
            h = (len(x) - 1) * q
            lo, hi = math.floor(h), math.ceil(h)
            x[lo] = x[hi] = v
            x[:lo] = np.minimum(x[:lo], v)
            x[hi + 1:] = np.maximum(x[hi + 1:], v)
        df.loc[order, "latency_s"] = x
        df.loc[order, "delivered_t_ns"] = [int(t) + int(lat * 1e9) for t, lat in
                                           zip(df.loc[order, "visible_t_ns"], x, strict=True)]
    for key, value in point_latencies(df).items():
        if key not in override:
            summary[key] = value
    return df


def build_run(root: Path, *, run_id: str = "20261124-120000-synthetic",
              overrides: dict[str, dict[str, Any]] | None = None,
              remove: list[str] | None = None,
              description: str = "Synthetic scenario",
              scenarios: list[dict[str, Any]] | None = None) -> Path:
    """Write a run store under ``root/run_id`` and return its path."""
    run = root / run_id
    run.mkdir(parents=True)
    summaries = []
    for spec in scenarios or SCENARIOS:
        name, mode = spec["name"], spec["mode"]
        sdir = run / name
        sdir.mkdir()
        df = _outcomes(name, mode, spec["n"], spec["wallets"], 7, spec["special"],
                       spec["faults"])
        summary = _summary(name, mode, spec["wallets"], df, spec["faults"],
                           f"{description} ({name})")
        override = (overrides or {}).get(name, {})
        summary.update(override)
        if "detected" not in override and "trades" not in override and \
                {"late", "missed", "duplicates"} & set(override):
            # an override of one outcome moves trades between outcomes, as a real run
            # would: the report refuses a summary whose outcomes do not add up
            summary["detected"] = summary["trades"] - sum(
                int(summary[k]) for k in ("late", "missed", "duplicates"))
        if set(override) & {"trades", *_COUNT_KEYS}:
            df = _follow_counts(df, summary, mode)
        df = _follow_latencies(df, summary, override)
        if "thresholds" not in override:  # as the analysis writes them: on the final summary
            summary["thresholds"] = evaluate_all(SCENARIO_THRESHOLDS, summary)
        (sdir / "scenario.toml").write_text(
            f'name = "{name}"\nmode = "{mode}"\nwallets = {spec["wallets"]}\n', encoding="utf-8")
        df.to_parquet(sdir / "outcomes.parquet", index=False)
        truth = df[df["outcome"] != "phantom"][["trade_id", "wallet", "block_number",
                                                 "visible_t_ns"]]
        truth.to_parquet(sdir / "truth.parquet", index=False)
        det = df[df["delivered_t_ns"].notna()][["trade_id", "delivered_t_ns", "source"]]
        det = det.rename(columns={"delivered_t_ns": "t_ns"}).assign(kind="trade")
        det.to_parquet(sdir / "detections.parquet", index=False)
        _jsonl(sdir / "detections.jsonl",
               [{"t_ns": int(r.t_ns), "kind": "trade", "source": r.source,
                 "trade": {"trade_id": r.trade_id}} for r in det.itertuples()])
        _jsonl(sdir / "monitor_history.jsonl",
               _monitor_history(mode, spec["wallets"], df, spec["faults"]))
        _jsonl(sdir / "sim_history.jsonl", _sim_history(df, spec["faults"]))
        (sdir / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
        summaries.append(summary)
    (run / "summary.json").write_text(json.dumps({"run_id": run_id, "scenarios": summaries}),
                                      encoding="utf-8")
    manifest = {
        "run_id": run_id,
        "command": "python -m experiments run --quick --out results",
        "scenarios": [s["name"] for s in scenarios or SCENARIOS],
        "seeds": {"default": 7}, "speed": 1.0, "git_sha": "0123456789abcdef0123",
        "versions": {"python": "3.11.2", "websockets": "17.0", "pandas": "3.0.0"},
        "host": {"hostname": "ci", "cpus": 2},
        "started": "2026-11-24T12:00:00+00:00", "finished": "2026-11-24T12:10:00+00:00",
    }
    (run / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for rel in remove or []:
        (run / rel).unlink()
    return run


