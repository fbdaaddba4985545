"""Many seeds of one scenario: reseeding, and pooling the runs into one summary.

:func:`reseed` derives a scenario for seed ``s``: the recording seed (where the scenario
synthesises one), every fault's seed (jitter, shares, reorg shapes), the explorer's index
lag seed, and the fault schedule's phase (each fault's first start moves by a seeded
offset of up to a fifth of its period) all change with ``s``; nothing else does.

:func:`pool` writes the pooled summary of a scenario run under several seeds into the
scenario's directory: counts summed (trades, missed, late, ...), latency quantiles over
the pooled trades, rates per hour over the pooled simulated time, each key metric's
spread across seeds (``spread``: min, max, mean, sd), and every seed's faults by kind
(``fault_kinds``; ``faults`` lists the first seed's), and every seed's reliability counts
(``reliability.json``: malformed items injected and inputs rejected by kind, restarts,
task crashes summed; the tasks dead at the end of any seed; the analysis noted them in
each seed's folder: :func:`pooled_reliability`). The histories copied up into the
scenario's folder are the first seed's: nothing pooled is read from them. The per-seed
runs stay in
``<scenario>/seeds/<seed>/`` as complete scenario directories. The scenario's thresholds
are evaluated once, on the pooled summary, with the confidence bounds of
:mod:`experiments.thresholds` - which is what makes many seeds worth running. The bounds
count each distinct replay once (``bound_basis``): seeds that replayed the same trades
under the same faults are one set of trials, not several; so do the latency quantiles'
bounds (``latency_bounds``, from the pooled latencies, each distinct replay's trades once
by the slowest seed: :func:`basis_outcomes`), while the quantiles themselves are those of
every seed's latencies pooled (never an average of the seeds' quantiles).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.analysis import (
    RELIABILITY_FILE,
    empty_summary,
    reliability_counts,
    write_reliability,
)
from experiments.checker import latency_bounds, outcome_counts
from experiments.scenario import Scenario
from experiments.store import written_together
from experiments.thresholds import evaluate_all

__all__ = ["SPREAD_METRICS", "basis_outcomes", "bound_basis", "derive_seed", "pool",
           "pooled_reliability", "reseed"]

SPREAD_METRICS = ("trades", "missed", "late", "duplicates", "phantoms", "latency_p50_s",
                  "latency_p95_s", "latency_p95_in_fault_s", "explorer_calls_per_hour",
                  "uptime", "coverage", "reconnects")
_SUMMED = ("reconnects", "fallback_s", "bytes_received", "cpu_s")
_MEANS = ("uptime", "coverage")
_MAX_SEED = 2**63 - 1


def derive_seed(base: int | None, seed: int, what: str = "") -> int:
    """A seed for ``what`` under run seed ``seed``, stable across Python versions."""
    digest = hashlib.sha256(f"{base}:{seed}:{what}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & _MAX_SEED


def reseed(scenario: Scenario, seed: int) -> Scenario:
    """``scenario`` under run seed ``seed`` (see the module docstring)."""
    rng = random.Random(derive_seed(scenario.seed, seed, "phase"))
    faults = []
    for i, f in enumerate(scenario.faults):
        update: dict[str, Any] = {"seed": derive_seed(f.seed, seed, f"fault{i}")}
        if f.at is not None:
            period = f.every or f.duration or 60.0
            shift = rng.uniform(0.0, period / 5.0)
            room = max(0.0, scenario.sim_duration_s - (f.duration or 0.0) - f.at)
            update["at"] = round(f.at + min(shift, room), 3)
        faults.append(f.model_copy(update=update))
    chain = dict(scenario.chain)
    chain["seed"] = derive_seed(chain.get("seed"), seed, "lag")
    return scenario.model_copy(update={"seed": seed, "faults": tuple(faults), "chain": chain})


def _spread(values: list[float]) -> dict[str, float] | None:
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"min": min(xs), "max": max(xs), "mean": mean, "sd": sd, "n": len(xs)}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def pool(scenario: Scenario, sdir: Path, seeds: list[int],
         summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool the per-seed runs in ``sdir/seeds/<seed>/`` into ``sdir`` and return the pooled
    summary. A seed that did not run cleanly makes the pooled scenario a harness error
    that names it: a partial pool would read like a result."""
    base = {"scenario": scenario.name, "description": scenario.description, "era": scenario.era,
            "mode": scenario.mode, "speed": summaries[0].get("speed") if summaries else None,
            "seed": seeds[0] if seeds else None, "sim_duration_s": None,
            "actionable_window_s": scenario.actionable_window_s,
            "wallets": [], "thresholds": list(scenario.thresholds)}
    bad = [(s, x) for s, x in zip(seeds, summaries, strict=True) if x.get("status") != "ok"]
    if bad or not summaries:
        detail = "; ".join(f"seed {s}: {x.get('status')} ({str(x.get('error'))[:120]})"
                           for s, x in bad) or "no seed ran"
        out = empty_summary({**base, "status": "harness_error",
                             "error": f"{len(bad)} of {len(seeds)} seeds failed: {detail}"})
        out["seeds"] = seeds
        write_reliability(sdir, None)
        _write_summary(sdir, out)
        return out
    frames = []
    for s in seeds:
        frame = pd.read_parquet(sdir / "seeds" / str(s) / "outcomes.parquet")
        frame.insert(0, "seed", s)
        frames.append(frame)
    outcomes = pd.concat(frames, ignore_index=True)
    out = dict(summaries[0])
    # each seed draws its own wallet changes: their means are the seeds' own summaries'
    # (the first seed's is no pool's), and no average of them is what the pooled
    # api_calls_per_hour_per_wallet divides by
    out.pop("wallets_watched_mean", None)
    out.update(outcome_counts(outcomes))
    durations = [(_num(x.get("sim_duration_s")) or 0.0) for x in summaries]
    total_s = sum(durations)
    out["sim_duration_s"] = total_s  # pooled simulated time: per-hour rates use it
    for key in _SUMMED:
        vals = [_num(x.get(key)) for x in summaries]
        out[key] = None if any(v is None for v in vals) else sum(v for v in vals if v)
    for key in _MEANS:
        vals = [_num(x.get(key)) for x in summaries]
        out[key] = None if any(v is None for v in vals) else (
            sum((v or 0.0) * d for v, d in zip(vals, durations, strict=True)) / total_s
            if total_s else None)
    for key in ("api_calls_per_hour", "explorer_calls_per_hour",
                "api_calls_per_hour_per_wallet", "cpu_s_per_hour"):
        vals = [_num(x.get(key)) for x in summaries]
        out[key] = None if any(v is None for v in vals) or not total_s else sum(
            (v or 0.0) * d for v, d in zip(vals, durations, strict=True)) / total_s
    rss = [_num(x.get("rss_peak_bytes")) for x in summaries]
    out["rss_peak_bytes"] = None if any(v is None for v in rss) else max(v or 0 for v in rss)
    calls: dict[str, float] = {}
    for x in summaries:
        for k, v in (x.get("api_calls") or {}).items():
            if isinstance(v, (int, float)):
                calls[k] = calls.get(k, 0) + v
    out["api_calls"] = calls
    out["seeds"] = seeds
    out["bound_basis"] = bound_basis(seeds, frames, summaries)
    if out["bound_basis"]["same_as"]:  # the latencies' bounds too count each replay once
        pooled_n = {m: b["n"] for m, b in out["latency_bounds"].items()}
        out["latency_bounds"] = latency_bounds(basis_outcomes(seeds, frames, summaries),
                                               n_all=pooled_n)
    out["fault_events"] = sum(len(x.get("faults") or []) for x in summaries)
    # every seed's faults by kind: ``faults`` is the first seed's (its figures' windows)
    kinds = Counter(str(f.get("name")) for x in summaries for f in x.get("faults") or []
                    if isinstance(f, dict))
    out["fault_kinds"] = dict(sorted(kinds.items()))
    out["spread"] = {m: _spread([_num(x.get(m)) for x in summaries])  # type: ignore[misc]
                     for m in SPREAD_METRICS}
    out["status"], out["error"] = "ok", None
    out["thresholds"] = evaluate_all(list(scenario.thresholds), out)
    _write_pooled(sdir, seeds[0], outcomes, pooled_reliability(sdir, seeds, out.get("inputs")),
                  out)
    return out


#: the first seed's files copied up into the scenario's folder: they stand for the figures
FIRST_SEED_FILES = ("truth.parquet", "detections.parquet", "sim_history.jsonl",
                    "monitor_history.jsonl", "detections.jsonl", "scenario.toml", "run.json")


def _write_pooled(sdir: Path, first_seed: int, outcomes: pd.DataFrame,
                  reliability: dict[str, Any] | None, summary: dict[str, Any]) -> None:
    """Write the pooled scenario's files as one (:func:`written_together`): a disk that
    fills up or a process stopped mid-write leaves the earlier files whole, never a
    pooled table or a copied history cut short beside a summary. The summary is replaced
    last. A file the first seed lacks is removed from the scenario's folder first: no
    earlier pool's copy stands beside this pool's summary."""
    first = sdir / "seeds" / str(first_seed)
    for name in FIRST_SEED_FILES:
        if not (first / name).exists():
            (sdir / name).unlink(missing_ok=True)
    if reliability is None:
        write_reliability(sdir, None)
    with written_together() as stage:
        outcomes.to_parquet(stage(sdir / "outcomes.parquet"), index=False, engine="pyarrow")
        for name in FIRST_SEED_FILES:
            if (first / name).exists():
                shutil.copyfile(first / name, stage(sdir / name))
        if reliability is not None:
            write_reliability(sdir, reliability, stage)
        stage(sdir / "summary.json").write_text(
            json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")


def pooled_reliability(sdir: Path, seeds: list[int], inputs: Any) -> dict[str, Any] | None:
    """Every seed's reliability counts (``seeds/<seed>/reliability.json``) summed: the
    malformed items injected and the inputs rejected by kind, the restarts survived and
    the task crashes; the tasks not alive at the end of any seed. None when a seed has no
    readable counts (analysed before the analysis noted them): the report then says its
    figures are the first seed's only. ``inputs``: the pooled summary's, which the report
    matches."""
    malformed: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    restarts = crashes = 0
    dead: set[str] = set()
    for seed in seeds:
        try:
            data = json.loads((sdir / "seeds" / str(seed) / RELIABILITY_FILE)
                              .read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        counts = reliability_counts(data)
        if counts is None:
            return None
        malformed.update(counts["malformed"])
        rejected.update(counts["rejected"])
        restarts += counts["restarts"]
        crashes += counts["task_crashes"]
        dead.update(counts["tasks_dead"])
    return {"malformed": dict(sorted(malformed.items())),
            "rejected": dict(sorted(rejected.items())), "restarts": restarts,
            "task_crashes": crashes, "tasks_dead": sorted(dead), "seeds": list(seeds),
            "inputs": inputs}


_TRADES = ("detected", "late", "missed", "duplicate")  # what outcome_counts calls trades
_BASIS_OUTCOMES = {"missed": "missed", "late": "late", "duplicates": "duplicate",
                   "phantoms": "phantom"}


def _replay_key(outcomes: pd.DataFrame, summary: dict[str, Any]) -> str:
    """What a seed's run put its monitor through: the trades it had to find and the fault
    windows it met. Two seeds with the same key replayed the same trades under the same
    faults (a shipped recording and no faults: every seed), so their trades are not new
    trials of the miss rate."""
    trades = sorted(str(t) for t in outcomes.loc[outcomes["outcome"] != "phantom", "trade_id"])
    faults = sorted((str(f.get("name")), str(f.get("start_s")), str(f.get("stop_s")))
                    for f in summary.get("faults") or [] if isinstance(f, dict))
    return hashlib.sha256(json.dumps([trades, faults]).encode()).hexdigest()


def _replay_groups(seeds: list[int], frames: list[pd.DataFrame],
                   summaries: list[dict[str, Any]]) -> list[list[tuple[int, pd.DataFrame]]]:
    """The seeds' (seed, outcomes) grouped by what they replayed (:func:`_replay_key`), in
    the order of their first seeds."""
    groups: dict[str, list[tuple[int, pd.DataFrame]]] = {}
    for seed, frame, summary in zip(seeds, frames, summaries, strict=True):
        groups.setdefault(_replay_key(frame, summary), []).append((seed, frame))
    return list(groups.values())


def basis_outcomes(seeds: list[int], frames: list[pd.DataFrame],
                   summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """The outcomes the latency quantiles' bounds count: each distinct replay once, each of
    its trades by the seed that delivered it slowest (as :func:`bound_basis` counts a
    replay's misses by the worst seed): ten seeds that replayed one run are ten copies of
    its latencies, not ten times the evidence."""
    parts = []
    for members in _replay_groups(seeds, frames, summaries):
        if len(members) == 1:
            parts.append(members[0][1])
            continue
        rows = pd.concat([f for _s, f in members], ignore_index=True)
        trades = rows[rows["outcome"].isin(_TRADES)]
        slowest = (trades.assign(_lat=trades["latency_s"].astype("Float64").fillna(-1.0))
                   .sort_values("_lat", kind="stable", ascending=False)
                   .drop_duplicates("trade_id").drop(columns="_lat"))
        parts.append(slowest)
    return pd.concat(parts, ignore_index=True)


def bound_basis(seeds: list[int], frames: list[pd.DataFrame],
                summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts the rates' confidence bounds use: each distinct replay once (seeds that
    replayed another seed's trades under the same faults are counted with it, by the worst
    of them), so pooling identical runs cannot manufacture confidence. ``same_as`` names
    each seed counted with an earlier one."""
    basis: dict[str, Any] = {"trades": 0, **dict.fromkeys(_BASIS_OUTCOMES, 0),
                             "seeds": [], "same_as": {}}
    for members in _replay_groups(seeds, frames, summaries):
        first_seed, first = members[0]
        basis["seeds"].append(first_seed)
        basis["trades"] += int(first["outcome"].isin(_TRADES).sum())
        for key, outcome in _BASIS_OUTCOMES.items():
            basis[key] += max(int((f["outcome"] == outcome).sum()) for _s, f in members)
        for seed, _f in members[1:]:
            basis["same_as"][str(seed)] = first_seed
    return basis


def _write_summary(sdir: Path, summary: dict[str, Any]) -> None:
    sdir.mkdir(parents=True, exist_ok=True)
    with written_together() as stage:  # a full disk leaves the earlier summary whole
        stage(sdir / "summary.json").write_text(
            json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
