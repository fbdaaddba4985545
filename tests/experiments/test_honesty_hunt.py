"""The honesty of the numbers: per-trade outcomes, fault windows and confidence bounds on
small hand-built histories with exact expected numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import tomli_w
from exp_helpers import (
    END_S,
    SPEED,
    WALLET,
    Sim,
    monitor,
    ns,
    params,
    retraction,
    tid,
    trade,
    write_jsonl,
)

from experiments.analysis import analyze_scenario_dir
from experiments.checker import run_checker
from experiments.scenario import scenario_from_dict


def check(sim: Sim, detections: list[dict], **kw):
    return run_checker(sim.sorted(), monitor(), detections, params(**kw),
                       thresholds=["missed_pct < 1", "duplicates == 0", "phantoms == 0"])


def outcome_of(outcomes: pd.DataFrame, trade_id: str) -> pd.Series:
    rows = outcomes[outcomes["trade_id"] == trade_id]
    assert len(rows) == 1, f"{trade_id} has {len(rows)} outcome rows"
    return rows.iloc[0]


def test_an_orphaned_trade_delivered_twice_and_retracted_once_is_a_phantom():
    # 10 s: block 1 (fork ee) holds trade 1; 12 s: a reorg replaces it by a block without.
    # The monitor delivered trade 1 twice (no retraction between) and retracted it once:
    # the sink's second delivery was never retracted - the bot holds a trade that is not
    # on the chain. It was counted "retracted" (correct behaviour), and no critical gate saw
    # it.
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    dets = [trade(10.1, tid(1)), trade(10.5, tid(1), source="backfill"),
            retraction(12.3, tid(1))]
    _, _, out, summary = check(sim, dets)
    row = outcome_of(out, tid(1))
    assert row["outcome"] == "phantom" and row["deliveries"] == 2
    assert summary["phantoms"] == 1 and summary["retracted"] == 0 and summary["trades"] == 0
    assert summary["thresholds"][2]["passed"] is False


def test_an_orphaned_trade_retracted_as_often_as_delivered_stays_retracted():
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    dets = [trade(10.1, tid(1)), retraction(12.3, tid(1)), trade(12.4, tid(1)),
            retraction(12.5, tid(1))]
    _, _, out, summary = check(sim, dets)
    assert outcome_of(out, tid(1))["outcome"] == "retracted"
    assert summary["phantoms"] == 0 and summary["retracted"] == 1



# -- faults: only those the measured window met ---------------------------------------------

def test_a_fault_started_in_the_grace_period_is_not_a_measured_fault():
    # ws_drop at 30 s and again at 105 s (an `every` schedule's last round, in the grace
    # period after the 100-s window): only the first met a judged trade
    sim = (Sim().fault("ws_drop", 30, 30.5, fid="f1").fault("ws_drop", END_S + 5,
                                                            END_S + 5.5, fid="f2")
           .block(31, 1, [tid(1)]))
    _, _, _, summary = check(sim, [trade(31.2, tid(1))])
    assert [(f["name"], f["start_s"]) for f in summary["faults"]] == [("ws_drop", 30.0)]


def _scenario_dir(tmp_path: Path, fault_at: float) -> Path:
    sdir = tmp_path / "grace_fault"
    sdir.mkdir()
    scenario = scenario_from_dict({
        "name": "grace_fault", "recording": "default", "sim_duration_s": END_S,
        "grace_s": 20, "speed": SPEED, "wallets": {"list": [WALLET]},
        "thresholds": ["missed_pct < 1"],
        "faults": [{"name": "ws_drop", "at": fault_at}]})
    (sdir / "scenario.toml").write_bytes(tomli_w.dumps(scenario.to_toml_dict()).encode())
    sim = Sim().fault("ws_drop", fault_at, fault_at).block(10, 1, [tid(1)])
    write_jsonl(sdir / "sim_history.jsonl", sim.sorted())
    write_jsonl(sdir / "monitor_history.jsonl", monitor(extra=[
        {"t_ns": ns(0), "event": "feed", "healthy": True, "cause": "subscribed"}]))
    write_jsonl(sdir / "detections.jsonl", [trade(10.2, tid(1))])
    run = {"scenario": "grace_fault", "description": "", "mode": "websocket", "speed": SPEED,
           "seed": 0, "sim_duration_s": END_S, "actionable_window_s": 5.0,
           "thresholds": ["missed_pct < 1"], "wallets": [WALLET], "status": "ok",
           "error": None, "window_start_ns": ns(0), "window_end_ns": ns(END_S)}
    (sdir / "run.json").write_text(json.dumps(run), encoding="utf-8")
    return sdir


def test_a_scenario_whose_planned_faults_never_met_the_window_is_inconclusive(tmp_path):
    # the scenario's only fault starts at 105 s, in the grace period: nothing measured the
    # monitor under it, and judged as a calm run the scenario would read as survived
    summary = analyze_scenario_dir(_scenario_dir(tmp_path, END_S + 5))
    assert summary["status"] == "inconclusive"
    assert "none started inside the measured window" in summary["error"]
    assert all(t["passed"] is None for t in summary["thresholds"])


def test_a_scenario_whose_fault_met_the_window_is_analysed(tmp_path):
    summary = analyze_scenario_dir(_scenario_dir(tmp_path, 40))
    assert summary["status"] == "ok", summary["error"]
    assert [f["name"] for f in summary["faults"]] == ["ws_drop"]
