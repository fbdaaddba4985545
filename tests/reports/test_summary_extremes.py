"""A scenario summary with numbers at the edge of what a float holds, or of another type
than a number (a damaged or hand-edited summary.json), is a report with a named defect:
never a traceback, and never a GO that read a text or a bool as a measurement."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import write_report

MakeRun = Callable[..., Path]


def _set(run: Path, scenario: str, **values: Any) -> None:
    """``values`` into the scenario's summary and the run summary's entry for it."""
    path = run / scenario / "summary.json"
    doc = json.loads(path.read_text())
    doc.update(values)
    path.write_text(json.dumps(doc))
    top = json.loads((run / "summary.json").read_text())
    for entry in top["scenarios"]:
        if entry["scenario"] == scenario:
            entry.update(values)
    (run / "summary.json").write_text(json.dumps(top))


@pytest.mark.parametrize("key", ["latency_p95_s", "reconnects", "explorer_calls_per_hour",
                                 "fallback_s"])
def test_a_number_past_what_a_float_holds_once_doubled_is_no_traceback(
        make_run: MakeRun, key: str) -> None:
    """1e308 is a finite float; the rollout plan's gates double it (or half as much
    again) and rounded the infinity up: an OverflowError traceback."""
    run = make_run()
    _set(run, "ws_healthy", **{key: 1e308})
    report, out = write_report(load_run(run), load_criteria())
    assert out.is_file()
    assert report.rollout.phases


@pytest.mark.parametrize(("key", "value"), [
    ("latency_p95_s", True),    # read as 1 s: a failed check, and still GO at 0.900
    ("latency_p95_s", "0.3"),   # read as 0.3 s: the gate passed on a text
    ("uptime", "1"),
    ("coverage", True),         # read as 1: the gate passed on a bool
    ("latency_p50_s", float("nan")),  # no gate reads it; shown as '-', as if not measured
], ids=["p95-true", "p95-text", "uptime-text", "coverage-true", "p50-nan"])
def test_a_measure_that_is_no_number_is_a_named_data_problem(
        make_run: MakeRun, key: str, value: Any) -> None:
    run = make_run()
    _set(run, "ws_healthy", **{key: value})
    report, _out = write_report(load_run(run), load_criteria())
    assert report.verdict.verdict.value == "INCONCLUSIVE", report.verdict.line
    assert f"{key} = " in report.verdict.line and "is not a number" in report.verdict.line, \
        report.verdict.line


def _outcomes(run: Path, scenario: str, **columns: Any) -> None:
    import pandas as pd

    path = run / scenario / "outcomes.parquet"
    pd.read_parquet(path).assign(**columns).to_parquet(path, index=False)


@pytest.mark.parametrize(("columns", "said"), [
    ({"latency_s": "0.3"}, "other values than numbers in latency_s"),
    ({"visible_t_ns": "x"}, "other values than numbers in visible_t_ns"),
    ({"latency_s": float("inf")}, "not finite in latency_s"),
    ({"latency_s": -1.0}, "negative latencies"),
    ({"latency_s": float("nan")}, "holds no latency"),
], ids=["latency-text", "visible-text", "latency-inf", "latency-negative", "latency-gone"])
def test_an_outcomes_table_with_wrong_values_is_a_named_data_problem(
        make_run: MakeRun, columns: dict[str, Any], said: str) -> None:
    """Texts were a traceback (sorting the slowest trades, seconds from the visible
    times); infinite, negative or vanished latencies under a summary's quantiles were a
    GO."""
    run = make_run()
    _outcomes(run, "ws_healthy", **columns)
    report, _out = write_report(load_run(run), load_criteria())
    assert report.verdict.verdict.value == "INCONCLUSIVE", report.verdict.line
    problems = load_run(run).scenario("ws_healthy").problems
    assert any(said in p for p in problems), problems


def test_a_start_row_whose_t0_is_a_text_is_no_traceback(make_run: MakeRun) -> None:
    run = make_run()
    path = run / "ws_drop" / "sim_history.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        if row.get("event") == "start":
            row["t0_ns"] = "x"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sc = load_run(run).scenario("ws_drop")
    assert sc.t0_ns == int(sc.outcomes["visible_t_ns"].min())  # type: ignore[index]
    _report, out = write_report(load_run(run), load_criteria())
    assert out.is_file()



def test_latency_bounds_the_table_does_not_give_are_a_named_problem(
        make_run: MakeRun) -> None:
    """A quantile gate is judged by its confidence bounds: an upper bound edited below
    the limit (every trade of the table 5 s late) passed it."""
    import pandas as pd

    from experiments.checker import outcome_counts

    run = make_run()
    _outcomes(run, "ws_healthy", latency_s=5.0)
    table = outcome_counts(pd.read_parquet(run / "ws_healthy" / "outcomes.parquet"))
    bounds = table["latency_bounds"]
    _set(run, "ws_healthy", latency_bounds=bounds)
    assert not [p for p in load_run(run).scenario("ws_healthy").problems if "bounds" in p]
    bounds["latency_p95_s"]["upper"] = 0.5
    _set(run, "ws_healthy", latency_bounds=bounds)
    problems = load_run(run).scenario("ws_healthy").problems
    assert any("latency_bounds say latency_p95_s upper = 0.5" in p for p in problems), \
        problems


def test_a_threshold_written_as_passed_that_the_summary_fails_is_a_named_problem(
        make_run: MakeRun) -> None:
    """The scenario's own thresholds are taken as written: 'latency_p99_s < 10: passed'
    beside a latency_p99_s edited to 50 s was a GO."""
    run = make_run()
    _set(run, "ws_healthy", latency_p99_s=50.0)
    report, _out = write_report(load_run(run), load_criteria())
    assert report.verdict.verdict.value == "INCONCLUSIVE", report.verdict.line
    problems = load_run(run).scenario("ws_healthy").problems
    assert any("'latency_p99_s < 10' is written as passed" in p and "measured 50" in p
               for p in problems), problems
