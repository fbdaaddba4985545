"""A summary's point latency quantiles (p50, p95, p99, ...) are the quantiles of its
outcomes.parquet: a gate without confidence bounds judges the point value, and a p95
edited from 5 s to 0.3 s over a table of 5-s trades passed the latency gate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from report_fixtures import point_latencies

from reports.criteria import load_criteria
from reports.load import load_run
from reports.verdict import Verdict, evaluate

MakeRun = Callable[..., Path]


def _edit(run: Path, scenario: str, **values: Any) -> None:
    """``values`` into the scenario's summary and the run summary's entry for it."""
    for path, pick in ((run / scenario / "summary.json", None), (run / "summary.json", scenario)):
        doc = json.loads(path.read_text(encoding="utf-8"))
        entries = [e for e in doc["scenarios"] if e["scenario"] == pick] if pick else [doc]
        for entry in entries:
            entry.update(values)
        path.write_text(json.dumps(doc), encoding="utf-8")


def _slow_table(run: Path, scenario: str) -> dict[str, Any]:
    """Every delivered trade of the scenario 5 s late, its summary following."""
    path = run / scenario / "outcomes.parquet"
    df = pd.read_parquet(path)
    df.loc[df["latency_s"].notna(), "latency_s"] = 5.0
    df.to_parquet(path, index=False)
    points = point_latencies(df)
    _edit(run, scenario, **points)
    return points


@pytest.mark.parametrize("key", ["latency_p95_s", "latency_p50_s", "latency_p99_s",
                                 "latency_p95_outside_fault_s"])
def test_an_edited_point_latency_is_a_named_problem(make_run: MakeRun, key: str) -> None:
    run = make_run()
    _slow_table(run, "ws_healthy")
    assert load_run(run).scenario("ws_healthy").problems == ()
    _edit(run, "ws_healthy", **{key: 0.3})
    loaded = load_run(run)
    problems = loaded.scenario("ws_healthy").problems
    assert f"summary.json says {key} = 0.3, outcomes.parquet gives 5" in problems, problems
    result = evaluate(loaded, load_criteria())
    assert result.verdict is Verdict.INCONCLUSIVE
    assert any("ws_healthy" in r and key in r for r in result.reasons), result.reasons


def test_a_point_latency_of_a_table_without_any_is_a_named_problem(
        make_run: MakeRun) -> None:
    """No trade in a fault: the table gives no in-fault p95; a summary that has one was
    written over another table."""
    run = make_run()
    _edit(run, "ws_healthy", latency_p95_in_fault_s=0.2)
    problems = load_run(run).scenario("ws_healthy").problems
    assert "summary.json says latency_p95_in_fault_s = 0.2, outcomes.parquet gives no " \
        "latency" in problems, problems


def test_the_point_latencies_of_a_pool_are_of_every_seeds_trades(make_run: MakeRun) -> None:
    """A pooled table (a seed column) gives the quantiles of all its rows, as
    experiments.seeds.pool computes them."""
    run = make_run()
    sdir = run / "ws_healthy"
    df = pd.read_parquet(sdir / "outcomes.parquet")
    half = len(df) // 2
    df.insert(0, "seed", [1] * half + [2] * (len(df) - half))
    df.to_parquet(sdir / "outcomes.parquet", index=False)
    _edit(run, "ws_healthy", seeds=[1, 2])
    assert not [p for p in load_run(run).scenario("ws_healthy").problems if "latency" in p]
    _edit(run, "ws_healthy", latency_p99_s=0.1)
    problems = load_run(run).scenario("ws_healthy").problems
    assert any(p.startswith("summary.json says latency_p99_s = 0.1, outcomes.parquet gives")
               for p in problems), problems
