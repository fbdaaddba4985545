"""docs/pilot.md followed as a new user would: the report of a short live pilot says how
much longer to run the pilot, not how to run the simulations."""

from __future__ import annotations

from experiments.thresholds import evaluate
from reports.rollout import _recommendation
from reports.verdict import CheckResult, Verdict

# what `experiments reconcile` wrote for a six-minute pilot of one wallet with 8 trades
PILOT_SUMMARY = {"scenario": "pilot_websocket", "mode": "websocket", "seed": None,
                 "wallets": 1, "sim_duration_s": 357.8, "trades": 8, "detected": 8,
                 "late": 0, "missed": 0, "duplicates": 0, "phantoms": 0, "missed_pct": 0.0}


def _undecided(note: str) -> CheckResult:
    return CheckResult(scenario="pilot_websocket", mode="websocket", name="missed trades",
                       expr="missed_pct < 1", source="criteria", critical=True, weight=1.0,
                       passed=None, value=0.0, note=note,
                       bound={"events": 0, "trials": 8, "confidence": 0.95, "upper": 0.32})


def test_a_short_pilots_undecided_gate_says_hours_of_pilot_not_simulated_hours() -> None:
    """It said 'about 3.6 more simulated hours at this run's pace': a pilot has no
    simulated hours; its pace is the watched wallets' trading."""
    note = evaluate("missed_pct < 1", PILOT_SUMMARY)["note"]
    assert "291 more trades" in note
    assert "simulated" not in note
    assert "3.6 more hours of pilot" in note


def test_a_simulated_runs_undecided_gate_still_says_simulated_hours() -> None:
    sim = {**PILOT_SUMMARY, "scenario": "steady_websocket", "seed": 1}
    assert "more simulated hours" in evaluate("missed_pct < 1", sim)["note"]


def test_a_short_pilots_recommendation_is_to_keep_the_pilot_running() -> None:
    """It said 'Run longer: the full matrix (make experiment, not --quick), or more seeds
    (--seeds N)', none of which a pilot has."""
    checks = [_undecided("undecided: 0 missed in 8 trades")]
    rec = _recommendation(Verdict.INCONCLUSIVE, checks, pilot=True)
    assert "make experiment" not in rec and "--seeds" not in rec
    assert "Keep the pilot running" in rec
    sim = _recommendation(Verdict.INCONCLUSIVE, checks)
    assert "make experiment" in sim
