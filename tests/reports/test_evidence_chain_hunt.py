"""Numbers of the report that could be wrong: a resource not measured drawn as 0, the
fault events of seeds that replayed one run counted once per seed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from experiments.checker import latency_bounds
from reports import figures
from reports.criteria import load_criteria
from reports.load import load_run
from reports.verdict import evaluate

MakeRun = Callable[..., Path]


def test_a_resource_not_measured_is_said_not_drawn_as_zero(make_run: MakeRun) -> None:
    """ws_healthy's CPU and memory were not measured (None): its bars were drawn at 0,
    reading as a monitor that cost nothing."""
    run = load_run(make_run(overrides={"ws_healthy": {"cpu_s_per_hour": None,
                                                      "rss_peak_bytes": None}}))
    fig = figures.resources(run)
    cpu_ax, rss_ax = fig.axes[:2]
    names = [t.get_text() for t in cpu_ax.get_yticklabels()]
    row = names.index("ws_healthy")
    for ax in (cpu_ax, rss_ax):
        said = [t for t in ax.texts if t.get_text().strip() == "not measured"]
        assert len(said) == 1, [t.get_text() for t in ax.texts]
        assert said[0].get_position()[1] == row
    # the measured ones are drawn as before, without the note
    assert all(p.get_width() > 0 for i, p in enumerate(cpu_ax.patches) if i != row)


def test_seeds_that_replayed_one_run_rest_on_its_fault_events_once(
        make_run: MakeRun) -> None:
    """ws_drop pooled over three seeds that replayed the same trades and faults
    (``bound_basis.same_as``): the latency bounds count that replay's trades once, and
    its one fault is one event, not three."""
    run = make_run()
    sdir = run / "ws_drop"
    df = pd.read_parquet(sdir / "outcomes.parquet")
    summary = json.loads((sdir / "summary.json").read_text(encoding="utf-8"))
    summary.update(seeds=[1, 2, 3], fault_events=3, fault_kinds={"ws_drop": 3},
                   latency_bounds=latency_bounds(df),
                   bound_basis={"seeds": [1], "same_as": {"2": 1, "3": 1}})
    (sdir / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    for seed in (1, 2, 3):
        (sdir / "seeds" / str(seed)).mkdir(parents=True)
        (sdir / "seeds" / str(seed) / "summary.json").write_text(json.dumps(
            {"scenario": "ws_drop", "seed": seed, "status": "ok",
             "faults": summary["faults"]}), encoding="utf-8")
    res = evaluate(load_run(run), load_criteria())
    gate = next(c for c in res.checks
                if c.scenario == "ws_drop" and c.expr == "latency_p95_in_fault_s < 5s")
    assert gate.fault_events == 1
    assert "rests on 1 fault event," in gate.note
    assert gate.shown_bound.endswith(" trades, 1 fault event)")
