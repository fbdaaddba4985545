"""A scored check its confidence bound left undecided (measured, too few trades, or a
quantile's bounds either side of its limit) is scored both ways: the verdict is given
when both scores fall in one band, INCONCLUSIVE when the undecided checks decide it.

Before, any such check made the run INCONCLUSIVE, even where it could not change the
verdict: ``make experiment`` at speed 30 gave INCONCLUSIVE on every run, on three
latency checks of 70 (score 0.920 with them failed, 0.954 passed, GO needs 0.90)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from report_fixtures import point_latencies

from experiments.checker import latency_bounds
from reports.criteria import load_criteria
from reports.load import load_run
from reports.verdict import Verdict, evaluate

MakeRun = Callable[..., Path]


def _undecided_fault_gate_run(make_run: MakeRun) -> Path:
    """A run whose ws_drop scenario had no trade inside its faults: its in-fault latency
    check is measured but undecided; every other check passes."""
    calm = pd.read_parquet(make_run(run_id="calm") / "ws_drop" / "outcomes.parquet")
    calm = calm.assign(in_fault=False, fault=None)
    run = make_run(overrides={"ws_drop": {**point_latencies(calm),
                                          "latency_bounds": latency_bounds(calm)}})
    # the table the bounds are of (the report refuses bounds its outcomes do not give)
    calm.to_parquet(run / "ws_drop" / "outcomes.parquet", index=False)
    return run


def test_an_undecided_scored_check_that_cannot_change_the_band_leaves_the_verdict(
        make_run: MakeRun) -> None:
    result = evaluate(load_run(_undecided_fault_gate_run(make_run)), load_criteria())
    open_checks = [c for c in result.checks if c.passed is None]
    assert [(c.scenario, c.expr) for c in open_checks] == \
        [("ws_drop", "latency_p95_in_fault_s < 5s")]
    assert result.verdict is Verdict.GO
    assert result.score is not None and result.score_best == 1.0
    assert result.score < 1.0  # the undecided check is counted failed in the score shown
    assert any("GO either way" in r for r in result.reasons)
    assert any(r.startswith("Undecided in ws_drop: latency_p95_in_fault_s < 5s") and
               "59 more trades during faults under 5 s would pass it" in r
               for r in result.reasons)
    assert f"{result.score:.3f} - 1.000" in result.line


def test_undecided_scored_checks_that_decide_the_band_make_it_inconclusive(
        make_run: MakeRun) -> None:
    run = load_run(_undecided_fault_gate_run(make_run))
    decided = evaluate(run, load_criteria())
    assert decided.score is not None
    # GO needs more than the score with the check failed, less than with it passed
    criteria = dataclasses.replace(load_criteria(), go_score=(decided.score + 1.0) / 2)
    result = evaluate(run, criteria)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.score is None
    assert any("decide the verdict" in r and "(MARGINAL)" in r and "(GO)" in r
               for r in result.reasons), result.reasons


def test_an_undecided_critical_gate_still_makes_the_run_inconclusive(
        make_run: MakeRun) -> None:
    """0 missed of 5 trades bounds the miss rate only below ~45 %: a critical gate is
    never scored both ways."""
    run = load_run(make_run(overrides={"ws_drop": {"missed_pct": 0.0, "trades": 5,
                                                   "detected": 5}}))
    result = evaluate(run, load_criteria())
    crit = [c for c in result.checks if c.critical and c.passed is None]
    if not crit:  # the fixture's summary keys: the gate reads its own counts
        raise AssertionError([(c.scenario, c.expr, c.passed, c.note)
                              for c in result.checks if c.critical])
    assert result.verdict is Verdict.INCONCLUSIVE


def test_an_inconclusive_scenario_says_why_in_the_verdict(make_run: MakeRun) -> None:
    """A pilot reconciled against a provider that refused a block even alone is an
    ``inconclusive`` scenario whose summary's error names the blocks; the verdict said
    only "status 'inconclusive'"."""
    why = "eth_getLogs refused blocks 81234567-81234568 even one at a time: not checked"
    run = load_run(make_run(overrides={"ws_drop": {"status": "inconclusive",
                                                   "error": why}}))
    result = evaluate(run, load_criteria())
    assert result.verdict is Verdict.INCONCLUSIVE
    assert any("ws_drop" in r and why in r for r in result.reasons), result.reasons
