"""The report's reliability section: faults and malformed inputs by kind, trades at risk,
lost, duplicated, recovered, restarts survived, tasks restarted - as measured."""

from __future__ import annotations

import json
from pathlib import Path

from report_fixtures import build_run

from reports.criteria import load_criteria
from reports.load import BULK_EVENTS, load_run
from reports.reliability import reliability_rows
from reports.render import write_report


def _append(path: Path, rows: list[dict]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def test_reliability_rows_count_what_the_histories_say(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    sdir = run / "ws_drop"
    _append(sdir / "monitor_history.jsonl", [
        {"t_ns": 10, "event": "bad_input", "kind": "ws_not_json"},
        {"t_ns": 11, "event": "bad_input", "kind": "ws_not_json"},
        {"t_ns": 12, "event": "bad_input", "kind": "head_jump"},
        {"t_ns": 13, "event": "task_crash", "task": "sync-ws0", "error": "OSError"},
        {"t_ns": 14, "event": "start", "mode": "websocket"},
        {"t_ns": 15, "event": "tasks", "alive": {"sync-ws0": True, "polling": False}},
    ])
    _append(sdir / "sim_history.jsonl", [
        {"t_ns": 9, "event": "malformed", "kind": "ws_garbage"}])
    rows = {r.scenario: r for r in reliability_rows(load_run(run))}
    r = rows["ws_drop"]
    assert r.faults == {"ws_drop": 1} and r.injected == {"ws_garbage": 1}
    assert r.rejected == {"head_jump": 1, "ws_not_json": 2}
    assert r.at_risk is not None and r.at_risk > 0 and r.lost == 1
    assert r.recovered == r.at_risk - 1 and r.duplicated == 0
    assert r.restarts_survived == 1 and r.tasks_restarted == 1 and r.tasks_dead == ("polling",)
    clean = rows["ws_healthy"]
    assert clean.faults == {} and clean.at_risk == 0 and clean.restarts_survived == 0
    _, out = write_report(load_run(run), load_criteria())
    html = out.read_text(encoding="utf-8")
    assert 'id="reliability"' in html and "ws_not_json&nbsp;2" in html
    assert '<span class="warn">polling</span>' in html


def test_recovered_trades_say_how_many_came_too_late_to_copy(tmp_path: Path) -> None:
    """"Recovered" counted trades delivered after the actionable window with those in
    time (half_open_stall: 140 recovered, 24 of them late): a trader reads "recovered" as
    "nothing lost". The late ones are now said beside it."""
    import pandas as pd

    run = build_run(tmp_path)
    sdir = run / "ws_drop"
    out = pd.read_parquet(sdir / "outcomes.parquet")
    risk = out.index[out["in_fault"].fillna(False).astype(bool)
                     & (out["outcome"] == "detected")]
    assert len(risk) >= 1
    out.loc[risk[0], "outcome"] = "late"
    out.to_parquet(sdir / "outcomes.parquet", index=False)
    late = int((out["in_fault"].fillna(False).astype(bool) & (out["outcome"] == "late")).sum())
    r = {r.scenario: r for r in reliability_rows(load_run(run))}["ws_drop"]
    assert r.recovered_late == late >= 1 and r.recovered is not None and r.recovered > late
    _, page = write_report(load_run(run), load_criteria())
    assert f"{r.recovered} ({late} late)" in page.read_text(encoding="utf-8")


def test_the_report_reads_the_histories_without_their_bulk_rows(tmp_path: Path) -> None:
    """A simulated week's histories hold ~1.5 million per-block, per-request and
    per-delivery rows that the analysis already turned into tables: the report's frames
    leave them out and keep every row the report reads."""
    run = build_run(tmp_path)
    sdir = run / "ws_drop"
    _append(sdir / "sim_history.jsonl", [
        {"t_ns": 9, "event": "request", "method": "eth_getLogs"},
        {"t_ns": 9, "event": "explorer_indexed", "number": 1},
        {"t_ns": 9, "event": "malformed", "kind": "ws_garbage"}])
    _append(sdir / "monitor_history.jsonl", [
        {"t_ns": 10, "event": "delivered", "trade_id": "0x1:1"},
        {"t_ns": 11, "event": "bad_input", "kind": "ws_not_json"}])
    sc = load_run(run).scenario("ws_drop")
    assert sc.sim_history is not None and sc.monitor_history is not None
    sim_events, mon_events = set(sc.sim_history["event"]), set(sc.monitor_history["event"])
    assert not (sim_events | mon_events) & BULK_EVENTS
    assert {"start", "fault_start", "malformed"} <= sim_events
    assert {"start", "state", "bad_input"} <= mon_events
    assert sc.t0_ns is not None
