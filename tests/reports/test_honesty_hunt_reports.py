"""The honesty of the report's numbers: faults counted as measured (pooled seeds too),
rate gates at their edges, which measures are critical."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from report_fixtures import DURATION_S, T0_NS, build_run

from experiments.checker import OUTCOME_COLUMNS
from experiments.scenario import scenario_from_dict
from experiments.seeds import pool
from reports.criteria import load_criteria
from reports.load import Run, ScenarioData, load_run
from reports.reliability import reliability_rows
from reports.verdict import Verdict, evaluate

WALLET = "0x" + "ab" * 20


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


def test_pooled_seeds_count_every_seeds_faults_beside_every_seeds_trades_at_risk(tmp_path):
    # three seeds, each with its own ws_drop windows and 10 trades inside them: the
    # reliability table put every seed's 30 trades at risk beside the first seed's faults
    # only (1 ws_drop where the three seeds met 5)
    scenario = scenario_from_dict({"name": "pooled", "recording": "default",
                                   "sim_duration_s": 600, "wallets": {"list": [WALLET]},
                                   "thresholds": ["missed_pct < 1"]})
    sdir = tmp_path / "pooled"
    faults = {1: [(30.0, "ws_drop")], 2: [(30.0, "ws_drop"), (90.0, "ws_drop")],
              3: [(40.0, "ws_drop"), (95.0, "ws_drop")]}
    summaries = []
    for seed, windows in faults.items():
        seed_dir = sdir / "seeds" / str(seed)
        seed_dir.mkdir(parents=True)
        _in_fault_outcomes(10).to_parquet(seed_dir / "outcomes.parquet", index=False)
        summaries.append({"scenario": "pooled", "mode": "websocket", "status": "ok",
                          "speed": 1.0, "sim_duration_s": 600.0,
                          "faults": [{"name": n, "start_s": t, "stop_s": t}
                                     for t, n in windows]})
    summary = pool(scenario, sdir, list(faults), summaries)
    first_seeds_history = pd.DataFrame([{"t_ns": 30, "event": "fault_start", "name": "ws_drop"}])
    sc = ScenarioData("pooled", sdir, summary, pd.read_parquet(sdir / "outcomes.parquet"),
                      None, first_seeds_history)
    run = Run(tmp_path, "r", {}, (sc,))
    row = reliability_rows(run)[0]
    assert row.at_risk == 30 and row.faults == {"ws_drop": 5}


def _in_fault_outcomes(n: int) -> pd.DataFrame:
    rows = [{"trade_id": f"0x{i:064x}:0", "wallet": WALLET, "block_number": 100 + i,
             "visible_t_ns": i, "delivered_t_ns": i + 5, "latency_s": 0.1,
             "outcome": "detected", "deliveries": 1, "source": "ws", "in_fault": True,
             "fault": "ws_drop"} for i in range(n)]
    frame = pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
    return frame.astype({"delivered_t_ns": "Int64", "visible_t_ns": "Int64"})
