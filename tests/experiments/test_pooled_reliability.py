"""A scenario pooled over seeds: the reliability section's malformed items, rejected
inputs, restarts and task crashes are every seed's, summed (they were the first seed's
alone: the pool copies only its histories up into the scenario's folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from exp_helpers import make_scenario_dir, ns, write_jsonl

from experiments.analysis import RELIABILITY_FILE, analyze_scenario_dir
from experiments.scenario import load_scenario
from experiments.seeds import pool
from reports.load import load_run
from reports.reliability import reliability_rows

SEEDS = (1, 2, 3)


def _append(path: Path, rows: list[dict]) -> None:
    old = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    write_jsonl(path, sorted(old + rows, key=lambda r: r["t_ns"]))


def _seed_dir(tmp_path: Path, run: Path, seed: int) -> Path:
    """A seed of ``hand_made`` whose histories hold ``seed`` malformed items, ``seed``
    rejected inputs, ``seed - 1`` restarts and ``seed`` task crashes."""
    staged = make_scenario_dir(tmp_path / f"stage{seed}", "hand_made")
    _append(staged / "sim_history.jsonl", [
        {"t_ns": ns(40 + i), "event": "malformed", "kind": "ws_garbage", "name": "junk"}
        for i in range(seed)])
    _append(staged / "monitor_history.jsonl", [
        *({"t_ns": ns(41 + i), "event": "bad_input", "kind": "ws_not_json"}
          for i in range(seed)),
        *({"t_ns": ns(60 + i), "event": "start", "mode": "websocket", "wallets": 1,
           "settings": {}} for i in range(seed - 1)),
        *({"t_ns": ns(70 + i), "event": "task_crash", "task": "sync-ws0", "error": "OSError"}
          for i in range(seed)),
        {"t_ns": ns(99), "event": "tasks",
         "alive": {"sync-ws0": True, "polling": seed != 2}}])
    target = run / "hand_made" / "seeds" / str(seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(staged, target)
    return target


def _pooled_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    summaries = []
    for seed in SEEDS:
        summary = analyze_scenario_dir(_seed_dir(tmp_path, run, seed))
        assert summary["status"] == "ok", summary["error"]
        summaries.append(summary)
    sdir = run / "hand_made"
    scenario = load_scenario(sdir / "seeds" / "1" / "scenario.toml")
    out = pool(scenario, sdir, list(SEEDS), summaries)
    assert out["status"] == "ok", out["error"]
    return run


def test_the_pooled_reliability_row_sums_every_seeds_counts(tmp_path: Path) -> None:
    run = _pooled_run(tmp_path)
    per_seed = [json.loads((run / "hand_made" / "seeds" / str(s) / RELIABILITY_FILE)
                           .read_text(encoding="utf-8")) for s in SEEDS]
    assert [c["restarts"] for c in per_seed] == [0, 1, 2]  # the seeds' counts differ
    row = {r.scenario: r for r in reliability_rows(load_run(run))}["hand_made"]
    assert row.injected == {"ws_garbage": 1 + 2 + 3}
    assert row.rejected == {"ws_not_json": 1 + 2 + 3}
    assert row.restarts_survived == 0 + 1 + 2
    assert row.tasks_restarted == 1 + 2 + 3
    assert row.tasks_dead == ("polling",)  # dead at the end of seed 2
    assert row.first_seed_only is False


def test_a_failed_pool_leaves_no_counts_of_an_earlier_one(tmp_path: Path) -> None:
    run = _pooled_run(tmp_path)
    sdir = run / "hand_made"
    assert (sdir / RELIABILITY_FILE).exists()
    scenario = load_scenario(sdir / "seeds" / "1" / "scenario.toml")
    pool(scenario, sdir, list(SEEDS), [{"status": "harness_error", "error": "x"}] * 3)
    assert not (sdir / RELIABILITY_FILE).exists()
