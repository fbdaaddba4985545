"""The reliability row of a scenario pooled over seeds: every figure covers every seed
(the injected, rejected, restart and task figures were the first seed's alone), and a
store analysed before the seeds' counts were noted says "first seed only" beside them."""

from __future__ import annotations

import json
from pathlib import Path

from report_fixtures import build_run

from experiments.analysis import RELIABILITY_FILE, write_reliability
from experiments.seeds import pooled_reliability
from reports.criteria import load_criteria
from reports.load import load_run
from reports.reliability import FirstSeedOnly, reliability_rows
from reports.render import write_report

SEEDS = [1, 2, 3]


def _append(path: Path, rows: list[dict]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def _pooled(tmp_path: Path) -> Path:
    """ws_drop pooled over three seeds; its folder's histories are seed 1's (one
    malformed item, one rejected input, one restart, one task crash)."""
    run = build_run(tmp_path)
    sdir = run / "ws_drop"
    summary = json.loads((sdir / "summary.json").read_text(encoding="utf-8"))
    summary["seeds"] = SEEDS
    (sdir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    _append(sdir / "monitor_history.jsonl", [
        {"t_ns": 10, "event": "bad_input", "kind": "ws_not_json"},
        {"t_ns": 13, "event": "task_crash", "task": "sync-ws0", "error": "OSError"},
        {"t_ns": 14, "event": "start", "mode": "websocket"}])
    _append(sdir / "sim_history.jsonl", [{"t_ns": 9, "event": "malformed", "kind": "ws_garbage"}])
    return run


def _seed_counts(sdir: Path, seed: int) -> None:
    path = sdir / "seeds" / str(seed)
    path.mkdir(parents=True, exist_ok=True)
    write_reliability(path, {
        "malformed": {"ws_garbage": seed}, "rejected": {"ws_not_json": 2 * seed},
        "restarts": seed, "task_crashes": seed - 1,
        "tasks_dead": ["polling"] if seed == 3 else []})


def test_a_pooled_row_shows_every_seeds_counts_summed(tmp_path: Path) -> None:
    run = _pooled(tmp_path)
    sdir = run / "ws_drop"
    for seed in SEEDS:
        _seed_counts(sdir, seed)
    summary = json.loads((sdir / "summary.json").read_text(encoding="utf-8"))
    write_reliability(sdir, pooled_reliability(sdir, SEEDS, summary.get("inputs")))
    r = {r.scenario: r for r in reliability_rows(load_run(run))}["ws_drop"]
    assert r.injected == {"ws_garbage": 6} and r.rejected == {"ws_not_json": 12}
    assert r.restarts_survived == 6 and r.tasks_restarted == 3
    assert r.tasks_dead == ("polling",) and not r.first_seed_only
    _, page = write_report(load_run(run), load_criteria())
    html = page.read_text(encoding="utf-8")
    assert "ws_garbage&nbsp;6" in html and "ws_not_json&nbsp;12" in html
    assert "first seed only" not in html


def test_a_pooled_store_without_the_seeds_counts_says_first_seed_only(
        tmp_path: Path) -> None:
    run = _pooled(tmp_path)
    r = {r.scenario: r for r in reliability_rows(load_run(run))}["ws_drop"]
    assert r.first_seed_only
    assert r.injected == {"ws_garbage": FirstSeedOnly(1)}
    assert r.rejected == {"ws_not_json": FirstSeedOnly(1)}
    assert r.restarts_survived == FirstSeedOnly(1) and r.tasks_restarted == FirstSeedOnly(1)
    assert r.at_risk is not None and r.at_risk > 0  # from the pooled outcomes: whole
    _, page = write_report(load_run(run), load_criteria())
    html = page.read_text(encoding="utf-8")
    assert "ws_garbage&nbsp;1 (first seed only)" in html
    assert '<td class="n">1 (first seed only)</td>' in html
    # a scenario of one seed reads its histories whole: no such note
    healthy = {r.scenario: r for r in reliability_rows(load_run(run))}["ws_healthy"]
    assert not healthy.first_seed_only and healthy.restarts_survived == 0


def test_counts_of_another_analysis_are_not_shown_as_this_ones(tmp_path: Path) -> None:
    """A reliability.json whose seeds are not the summary's (left from another pool) is
    not read as the pooled counts."""
    run = _pooled(tmp_path)
    sdir = run / "ws_drop"
    for seed in SEEDS:
        _seed_counts(sdir, seed)
    write_reliability(sdir, pooled_reliability(sdir, SEEDS[:2], None))
    r = {r.scenario: r for r in reliability_rows(load_run(run))}["ws_drop"]
    assert r.first_seed_only and r.restarts_survived == FirstSeedOnly(1)
    (sdir / RELIABILITY_FILE).write_text("{not json", encoding="utf-8")
    assert {r.scenario: r for r in reliability_rows(load_run(run))}["ws_drop"].first_seed_only
