"""The honesty of the report's numbers: faults counted as measured, the rollout's trade
count derived from the bound the pilot needs, verdict edges."""

from __future__ import annotations

import json
from pathlib import Path

from report_fixtures import DURATION_S, T0_NS, build_run

from reports.criteria import load_criteria
from reports.load import load_run
from reports.reliability import reliability_rows
from reports.verdict import Verdict, evaluate


def _append(path: Path, rows: list[dict]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def test_a_fault_started_after_the_measured_window_is_not_counted_as_injected(tmp_path):
    # the simulator went on through the grace period and started one more ws_drop there
    # (an `every` schedule's last round): no judged trade met it, and the analysis's
    # summary does not list it; the reliability table counted it all the same
    run = build_run(tmp_path)
    after = T0_NS + int((DURATION_S + 5) * 1e9)
    _append(run / "ws_drop" / "sim_history.jsonl", [
        {"t_ns": after, "event": "fault_start", "fault_id": "late", "name": "ws_drop",
         "target": "ws", "params": {}},
        {"t_ns": after, "event": "fault_stop", "fault_id": "late", "name": "ws_drop",
         "target": "ws", "params": {}}])
    rows = {r.scenario: r for r in reliability_rows(load_run(run))}
    assert rows["ws_drop"].faults == {"ws_drop": 1}


def test_a_criteria_gate_of_a_zero_rate_gives_a_verdict_not_a_traceback(tmp_path):
    crit = tmp_path / "criteria.toml"
    crit.write_text('[[rule]]\nname = "no misses"\nexpr = "missed_pct <= 0"\n'
                    'critical = true\nmodes = ["websocket"]\n', encoding="utf-8")
    result = evaluate(load_run(build_run(tmp_path / "run")), load_criteria(crit))
    gate = [c for c in result.checks if c.expr == "missed_pct <= 0"]
    assert gate and all(c.passed in (None, False) for c in gate)
    assert result.verdict in (Verdict.INCONCLUSIVE, Verdict.NO_GO)


def test_a_scenario_threshold_on_the_duplicate_rate_is_a_critical_gate(tmp_path):
    # criteria of the user's own, without a duplicates rule; the websocket scenario's own
    # threshold 'duplicate_pct < 1' failed (2 %): a duplicate rate is a critical measure
    # (DESIGN: missed, duplicates, phantoms), but it was scored as one check among many
    # and the verdict came out MARGINAL
    crit = tmp_path / "criteria.toml"
    crit.write_text('[[rule]]\nname = "coverage"\nexpr = "coverage >= 0.5"\n'
                    'modes = ["websocket"]\n', encoding="utf-8")
    failed = [{"expr": "duplicate_pct < 1", "passed": False, "value": 2.0,
               "note": "2 duplicates in 100 trades"}]
    run = build_run(tmp_path / "run", overrides={"ws_healthy": {"thresholds": failed}})
    result = evaluate(load_run(run), load_criteria(crit))
    assert result.verdict is Verdict.NO_GO
    assert "Critical gate failed in ws_healthy: duplicate_pct < 1" in result.reasons[0]
