"""Soaks in virtual time: every fault kind at least once a simulated hour, nothing lost,
duplicated or phantom, and nothing that grows from the first simulated hour to the last:
file descriptors, the outbox, the live queue (the monitor's memory holds at most
``dedup_capacity`` trade ids by construction). ``make test`` runs the simulated day on one
seed; ``make soak`` runs the simulated week under 5 seeds, two at a time (``python -m
experiments run experiments/scenarios/soak/soak_week.toml --clock virtual --seeds 5 --jobs
2``), and checks each."""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOAK = ROOT / "experiments" / "scenarios" / "soak" / "soak_day.toml"
SOAK_WEEK = SOAK.with_name("soak_week.toml")
KINDS = {"ws_drop", "ws_stall", "ws_silent", "reorg", "ws_refuse", "rpc_errors",
         "explorer_down", "explorer_rate_limit", "ws_garbage", "bad_log", "head_jump",
         "rpc_garbage", "explorer_garbage", "rpc_lag", "explorer_lag"}


SETTLED_S = 3 * 3600  # the bounded structures are full by then
# Measured over a simulated day: 0.53 MB per simulated hour over hours 3-24, ~0.2 over hours
# 12-24 (it was 1.7-2.2 before the transaction lookup stopped holding orphaned and spilled
# blocks, ~5 with the dedup unbounded). Not yet "no growth" everywhere: the guard sits above
# today's figure so that a new leak shows.
RSS_SLOPE_MB_PER_H = 1.0


def _monitor_setting(sdir: Path, name: str, default: int) -> int:
    import tomllib
    cfg = tomllib.loads((sdir / "monitor_config.toml").read_text())
    return int(cfg.get("monitor", cfg).get(name, default))


def _dedup_capacity(sdir: Path) -> int:
    return _monitor_setting(sdir, "dedup_capacity", 200_000)


def _slope_mb_per_h(samples: list[dict[str, Any]]) -> float:
    return statistics.linear_regression([x["t_s"] / 3600 for x in samples],
                                        [x["rss_bytes"] / 1e6 for x in samples]).slope


def check_soak_dir(sdir: Path) -> dict[str, Any]:
    """Assert what a soak must hold for one (scenario, seed) directory; return figures."""
    summary = json.loads((sdir / "summary.json").read_text())
    assert summary["status"] == "ok", summary.get("error")
    assert (summary["missed"], summary["duplicates"], summary["phantoms"]) == (0, 0, 0)
    hours = summary["sim_duration_s"] / 3600
    starts = Counter(f["name"] for f in summary["faults"])
    assert set(starts) >= KINDS, KINDS - set(starts)
    for kind in KINDS - {"reorg"}:  # reorg has two schedules; every kind once an hour
        assert starts[kind] >= int(hours) - 1, (kind, starts[kind], hours)
    run = json.loads((sdir / "run.json").read_text())
    samples = run["samples"]
    assert len(samples) >= 2
    first, last = samples[1] if len(samples) > 2 else samples[0], samples[-1]
    assert last["fds"] <= first["fds"] + 5, (first["fds"], last["fds"])
    assert last["outbox"] <= 1_000 and last["live_queue"] == 0
    capacity = _dedup_capacity(sdir)
    assert all(x["dedup_entries"] <= capacity for x in samples), capacity
    # memory: once the bounded structures are full (the soak's dedup_capacity is ~2
    # simulated hours of trades), the least-squares slope of the process's RSS over the
    # remaining hours, in MB per simulated hour
    settled = [x for x in samples if x["t_s"] >= SETTLED_S]
    # disk: with dedup_retention_blocks set (the soak: ~68 simulated minutes), the stored
    # ids are pruned and the state DB stops growing (it grew ~0.8 MB a simulated hour, 138
    # MB over a week, keeping every id); SQLite reuses the freed pages
    if _monitor_setting(sdir, "dedup_retention_blocks", 0) and len(settled) >= 4:
        db = [x["state_db_bytes"] for x in settled]
        assert db[-1] <= 1.25 * db[0], db
    slope = _slope_mb_per_h(settled) if len(settled) >= 4 else None
    if slope is not None:
        assert slope <= RSS_SLOPE_MB_PER_H, (slope, [x["rss_bytes"] for x in settled])
    mon = [json.loads(x) for x in (sdir / "monitor_history.jsonl").read_text().splitlines()]
    tasks = next(r for r in mon if r["event"] == "tasks")
    assert all(tasks["alive"].values()), tasks
    # CPU per simulated hour, first and last quarter of the run (shown, not asserted: the
    # machine's own speed moves it +-20 % hour to hour)
    cpu = [x["cpu_s"] for x in samples]
    assert cpu == sorted(cpu) and cpu[-1] > cpu[0], cpu
    per_h = [b - a for a, b in itertools.pairwise(cpu)]
    q = max(1, len(per_h) // 4)
    return {"trades": summary["trades"], "hours": hours, "rss_first": first["rss_bytes"],
            "rss_last": last["rss_bytes"], "rss_slope_mb_per_h": slope,
            "cpu_s_per_h": (statistics.median(per_h[:q]), statistics.median(per_h[-q:])),
            "state_db_bytes": (first.get("state_db_bytes"), last.get("state_db_bytes")),
            "fds": (first["fds"], last["fds"]),
            "bound": summary["thresholds"][0].get("note")}


DAY_TIMEOUT_S = 1200
WEEK_TIMEOUT_S = 6 * 3600


@pytest.mark.slow
@pytest.mark.timeout(DAY_TIMEOUT_S + 60)
def test_one_simulated_day_with_every_fault_kind(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "experiments", "run", str(SOAK),
                           "--clock", "virtual", "--no-progress", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=DAY_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = check_soak_dir(tmp_path / "latest" / "soak_day")
    assert figures["hours"] == 24 and figures["trades"] > 10_000
    print("one simulated day:", figures)


@pytest.mark.soak
@pytest.mark.timeout(WEEK_TIMEOUT_S + 600)
def test_a_simulated_week_under_five_seeds(tmp_path: Path) -> None:
    out = Path(__import__("os").environ.get("SOAK_OUT", str(tmp_path)))
    proc = subprocess.run([sys.executable, "-m", "experiments", "run", str(SOAK_WEEK),
                           "--clock", "virtual", "--seeds", "5", "--jobs", "2",
                           "--no-progress", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=WEEK_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = out / "latest" / "soak_week"
    for seed in range(1, 6):
        figures = check_soak_dir(root / "seeds" / str(seed))
        assert figures["hours"] == 7 * 24
        print(seed, figures)
    pooled = json.loads((root / "summary.json").read_text())
    assert pooled["thresholds"][0]["passed"] is True
    print("pooled:", pooled["thresholds"][0]["note"])


def _timeout_mark(test: Any) -> float:
    marks = [m for m in getattr(test, "pytestmark", []) if m.name == "timeout"]
    return float(marks[0].args[0]) if marks else 0.0


def test_the_soaks_outlive_their_runs() -> None:
    """pytest-timeout's default (300 s, pyproject) killed ``make soak``'s week after five
    minutes of a ~25-minute run: each soak's own limit sits above its run's timeout."""
    assert _timeout_mark(test_a_simulated_week_under_five_seeds) > WEEK_TIMEOUT_S
    assert _timeout_mark(test_one_simulated_day_with_every_fault_kind) > DAY_TIMEOUT_S
