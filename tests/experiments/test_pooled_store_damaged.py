"""A scenario pooled over seeds whose stored files were damaged or edited after the pool:
the report names the defect (the scenario is not ok, INCONCLUSIVE), never a traceback and
never a gate judged on counts the run does not hold."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from exp_helpers import make_scenario_dir

from experiments.analysis import analyze_scenario_dir
from experiments.scenario import load_scenario
from experiments.seeds import pool
from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import write_report

SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pooled")
    run = tmp / "run"
    summaries = []
    for seed in SEEDS:
        staged = make_scenario_dir(tmp / f"stage{seed}", "hand_made")
        target = run / "hand_made" / "seeds" / str(seed)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, target)
        summary = analyze_scenario_dir(target)
        assert summary["status"] == "ok", summary["error"]
        summaries.append(summary)
    sdir = run / "hand_made"
    out = pool(load_scenario(sdir / "seeds" / "1" / "scenario.toml"), sdir, list(SEEDS),
               summaries)
    assert out["status"] == "ok", out["error"]
    (run / "manifest.json").write_text(json.dumps({"run_id": "run"}))
    assert load_run(run).scenario("hand_made").ok
    return run


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _copy(pooled: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pooled, tmp_path / "run"))


def test_a_spread_entry_of_another_shape_is_no_traceback(pooled: Path, tmp_path: Path) -> None:
    """A metric's spread that was a text was a jinja2 UndefinedError traceback."""
    run = _copy(pooled, tmp_path)
    _edit(run / "hand_made" / "summary.json",
          lambda d: d.__setitem__("spread", {"trades": "x", "missed": [1]}))
    _report, out = write_report(load_run(run), load_criteria())
    assert out.is_file()


@pytest.mark.parametrize(("change", "said"), [
    (lambda b: b.__setitem__("trades", 10**6), "bound_basis says trades = 1000000"),
    (lambda b: b.__setitem__("missed", -1), "bound_basis says missed = -1"),
    (lambda b: b.__setitem__("seeds", [2]), "bound_basis says seeds = [2]"),
], ids=["trades-inflated", "missed-lowered", "seeds"])
def test_an_edited_bound_basis_is_a_named_problem(pooled: Path, tmp_path: Path,
                                                  change: Callable[[dict[str, Any]], None],
                                                  said: str) -> None:
    """The rates' confidence bounds are computed from ``bound_basis``: inflated trades (or
    fewer misses) made a gate as sure as the edit said."""
    run = _copy(pooled, tmp_path)
    _edit(run / "hand_made" / "summary.json", lambda d: change(d["bound_basis"]))
    problems = load_run(run).scenario("hand_made").problems
    assert any(said in p for p in problems), problems


def test_a_seed_analysed_again_to_a_failure_is_a_named_problem(pooled: Path,
                                                               tmp_path: Path) -> None:
    run = _copy(pooled, tmp_path)
    _edit(run / "hand_made" / "seeds" / "2" / "summary.json",
          lambda d: d.update(status="harness_error", error="monitor exited"))
    problems = load_run(run).scenario("hand_made").problems
    assert any("seeds/2/summary.json says status harness_error" in p for p in problems), \
        problems


@pytest.mark.parametrize("seeds", [None, "abc", {}], ids=["null", "text", "object"])
def test_a_pooled_table_under_a_summary_without_its_seeds_is_a_named_problem(
        pooled: Path, tmp_path: Path, seeds: Any) -> None:
    run = _copy(pooled, tmp_path)
    _edit(run / "hand_made" / "summary.json", lambda d: d.__setitem__("seeds", seeds))
    problems = load_run(run).scenario("hand_made").problems
    assert any("summary.json lists no seeds" in p for p in problems), problems


def test_a_seed_listed_twice_is_a_named_problem(pooled: Path, tmp_path: Path) -> None:
    run = _copy(pooled, tmp_path)
    _edit(run / "hand_made" / "summary.json", lambda d: d.__setitem__("seeds", [1, 1, 2, 3]))
    problems = load_run(run).scenario("hand_made").problems
    assert any("not a list of distinct seeds" in p for p in problems), problems


def test_edited_latency_bounds_are_a_named_problem(pooled: Path, tmp_path: Path) -> None:
    """A quantile gate is judged by its bounds: an upper bound edited below the limit
    passed it."""
    run = _copy(pooled, tmp_path)
    summary = json.loads((run / "hand_made" / "summary.json").read_text())
    assert isinstance(summary["latency_bounds"]["latency_p95_s"], dict)
    _edit(run / "hand_made" / "summary.json",
          lambda d: d["latency_bounds"]["latency_p95_s"].update(upper=0.001, n=10**6))
    problems = load_run(run).scenario("hand_made").problems
    assert any("latency_bounds say latency_p95_s" in p for p in problems), problems
