"""The evidence chain of the report: the summary's counts against the per-trade table they
come from, latency gates with no trade to bound, and the fault events a latency bound
rests on."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from report_fixtures import point_latencies

from experiments.analysis import analyze_scenario_dir
from experiments.checker import latency_bounds
from experiments.store import write_run_summary
from experiments.thresholds import evaluate
from reports.cli import EXIT_CODES, main
from reports.criteria import load_criteria
from reports.load import load_run
from reports.verdict import LATENCY_BOUND_CAVEAT, Verdict
from reports.verdict import evaluate as verdict_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from exp_helpers import make_scenario_dir

MakeRun = Callable[..., Path]


def real_run(tmp_path: Path) -> Path:
    """A run store of one small scenario, as the runner leaves it and the analysis
    writes it (tests/experiments/exp_helpers.py): 3 trades, 1 missed, 1 retracted,
    one ws_drop fault."""
    run = tmp_path / "run"
    run.mkdir()
    summary = analyze_scenario_dir(make_scenario_dir(run))
    assert summary["status"] == "ok", summary["error"]
    write_run_summary(run, [summary])
    (run / "manifest.json").write_text(json.dumps(
        {"run_id": "run", "scenarios": [{"name": "hand_made"}]}), encoding="utf-8")
    return run


def _edit_json(path: Path, **changes: Any) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.update(changes)
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_a_real_run_store_s_counts_agree_with_its_outcomes(tmp_path: Path) -> None:
    run = load_run(real_run(tmp_path))
    assert run.scenarios[0].problems == ()


def test_a_summary_count_edited_after_the_analysis_makes_the_report_inconclusive(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """summary.json says no trade was missed (detected raised to keep it adding up); the
    outcomes table it came from says one was. The headline read 0 missed beside a table
    listing the miss."""
    run = real_run(tmp_path)
    _edit_json(run / "hand_made" / "summary.json", missed=0, detected=3)
    doc = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    doc["scenarios"][0].update(missed=0, detected=3)  # the run's summary edited alike
    (run / "summary.json").write_text(json.dumps(doc), encoding="utf-8")
    sc = load_run(run).scenarios[0]
    assert "summary.json says missed = 0, outcomes.parquet counts 1" in sc.problems
    assert "summary.json says detected = 3, outcomes.parquet counts 2" in sc.problems
    assert main(["build", str(run), "--exit-code"]) == EXIT_CODES["INCONCLUSIVE"]
    out = capsys.readouterr().out
    assert "VERDICT INCONCLUSIVE" in out
    assert "data problem: summary.json says detected = 3, outcomes.parquet counts 2 (and " \
        "1 more)" in out


def test_an_outcomes_table_edited_after_the_analysis_is_said(tmp_path: Path) -> None:
    run = real_run(tmp_path)
    path = run / "hand_made" / "outcomes.parquet"
    df = pd.read_parquet(path)
    df[df["outcome"] != "retracted"].to_parquet(path, index=False)
    problems = load_run(run).scenarios[0].problems
    assert problems == ("summary.json says retracted = 1, outcomes.parquet counts 0",)
    res = verdict_of(load_run(run), load_criteria())
    assert res.verdict is Verdict.INCONCLUSIVE
    assert any("retracted = 1, outcomes.parquet counts 0" in r for r in res.reasons)


def test_the_run_s_summary_must_agree_on_late_and_retracted_too(tmp_path: Path) -> None:
    run = real_run(tmp_path)
    doc = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    doc["scenarios"][0]["retracted"] = 0
    (run / "summary.json").write_text(json.dumps(doc), encoding="utf-8")
    problems = load_run(run).scenarios[0].problems
    assert "the run's summary.json says retracted = 0, the scenario's says 1" in problems


def _pool_two_seeds(run: Path, name: str = "ws_healthy") -> Path:
    """``name`` as a scenario pooled over seeds 1 and 2: its outcomes carry a seed column
    and each seed has its own summary with that seed's counts."""
    sdir = run / name
    df = pd.read_parquet(sdir / "outcomes.parquet")
    half = len(df) // 2
    df.insert(0, "seed", [1] * half + [2] * (len(df) - half))
    df.loc[df.index[-1], ["outcome", "latency_s", "deliveries", "source"]] = \
        ["missed", float("nan"), 0, None]
    df.loc[df.index[-1], "delivered_t_ns"] = pd.NA
    df.to_parquet(sdir / "outcomes.parquet", index=False)
    summary = json.loads((sdir / "summary.json").read_text(encoding="utf-8"))
    summary.update(seeds=[1, 2], missed=1, detected=summary["trades"] - 1,
                   **point_latencies(df))
    (sdir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    for seed in (1, 2):
        rows = df[df["seed"] == seed]
        own = {**summary, "seed": seed, "trades": len(rows),
               "missed": int((rows["outcome"] == "missed").sum()),
               "detected": int((rows["outcome"] == "detected").sum())}
        (sdir / "seeds" / str(seed)).mkdir(parents=True)
        (sdir / "seeds" / str(seed) / "summary.json").write_text(json.dumps(own))
    top = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    top["scenarios"] = [summary if s["scenario"] == name else s for s in top["scenarios"]]
    (run / "summary.json").write_text(json.dumps(top), encoding="utf-8")
    return sdir


def test_a_pooled_scenario_is_checked_seed_by_seed(make_run: MakeRun) -> None:
    run = make_run()
    sdir = _pool_two_seeds(run)
    assert load_run(run).scenario("ws_healthy").problems == ()
    # seed 2's summary edited: the pooled counts still agree, its own do not
    _edit_json(sdir / "seeds" / "2" / "summary.json", missed=0, detected=200)
    assert load_run(run).scenario("ws_healthy").problems == (
        "seeds/2/summary.json says detected = 200, outcomes.parquet (seed 2) counts 199",
        "seeds/2/summary.json says missed = 0, outcomes.parquet (seed 2) counts 1")


def test_a_seed_pooled_twice_is_said(make_run: MakeRun) -> None:
    run = make_run()
    sdir = _pool_two_seeds(run)
    df = pd.read_parquet(sdir / "outcomes.parquet")
    twice = pd.concat([df, df[df["seed"] == 1]], ignore_index=True)
    twice.to_parquet(sdir / "outcomes.parquet", index=False)
    problems = load_run(run).scenario("ws_healthy").problems
    assert "outcomes.parquet lists 200 trade ids more than once for one seed (a seed " \
        "pooled twice?)" in problems
    assert "summary.json says trades = 400, outcomes.parquet counts 600" in problems


def test_a_latency_gate_with_no_trade_in_its_window_says_how_many_would_decide_it(
) -> None:
    calm = pd.DataFrame({"outcome": ["detected"] * 3, "latency_s": [0.1, 0.2, 0.3],
                         "in_fault": [False] * 3})
    summary = {"latency_bounds": latency_bounds(calm), "latency_p95_in_fault_s": None}
    res = evaluate("latency_p95_in_fault_s < 5s", summary)
    assert res["passed"] is None
    assert res["bound"]["n"] == 0
    assert res["note"] == (
        "undecided: no trade's latency during faults to bound the p95 with; 59 more trades "
        "during faults under 5 s would pass it, 1 more trade during faults at or over 5 s "
        "would fail it")
    res = evaluate("latency_p50_s >= 0.2", {"latency_bounds": latency_bounds(calm.iloc[:0])})
    assert res["passed"] is None
    assert "more trades at or over 0.2 s would pass it" in res["note"]
    # a summary without bounds (analysed before they were written) is still "not measured"
    assert evaluate("latency_p95_in_fault_s < 5s", {})["note"] == \
        "latency_p95_in_fault_s not measured"


def test_the_report_says_how_many_trades_decide_an_empty_fault_gate(
        make_run: MakeRun, tmp_path: Path) -> None:
    calm = pd.read_parquet(make_run(run_id="calm") / "ws_drop" / "outcomes.parquet")
    calm = calm.assign(in_fault=False, fault=None)
    run = make_run(overrides={"ws_drop": {**point_latencies(calm),
                                          "latency_bounds": latency_bounds(calm)}})
    # the table the bounds are of (the report refuses bounds its outcomes do not give)
    calm.to_parquet(run / "ws_drop" / "outcomes.parquet", index=False)
    out = tmp_path / "v.json"
    # one scored check of 15 undecided: GO whichever way it falls (14 of 15 is 0.933)
    assert main(["build", str(run), "--json", str(out), "--exit-code"]) == \
        EXIT_CODES["GO"]
    doc = json.loads(out.read_text())
    gate = next(g for g in doc["gates"]
                if g["scenario"] == "ws_drop" and g["expr"] == "latency_p95_in_fault_s < 5s")
    assert gate["passed"] is None
    assert "59 more trades during faults under 5 s would pass it" in gate["note"]
    assert any("59 more trades during faults under 5 s would pass it" in r
               for r in doc["reasons"])
    assert doc["score"] < doc["score_best"] == 1.0


def test_a_latency_bound_says_the_fault_events_it_rests_on_and_the_caveat(
        tmp_path: Path) -> None:
    run = real_run(tmp_path)
    out = tmp_path / "v.json"
    main(["build", str(run), "--json", str(out)])
    doc = json.loads(out.read_text())
    gate = next(g for g in doc["gates"] if g["expr"] == "latency_p95_s < 1")
    assert gate["fault_events"] == 1
    assert "rests on 1 fault event, fewer than the 59 independent samples its bound " \
        "assumes: trades in one fault are not independent" in gate["note"]
    rate = next(g for g in doc["gates"] if g["expr"] == "missed_pct < 1")
    assert rate["fault_events"] is None  # a rate gate: not a latency bound
    assert doc["caveats"] == [LATENCY_BOUND_CAVEAT]
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "(2 trades, 1 fault event)" in html
    assert "assume independent samples" in html
    assert "Trades inside one fault are not independent" in html


def test_a_run_without_latency_bounds_carries_no_caveat(make_run: MakeRun,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    main(["build", str(make_run()), "--json", str(out)])
    doc = json.loads(out.read_text())
    assert doc["caveats"] == []
    assert all(g["fault_events"] is None for g in doc["gates"])
