"""The verdict of a live pilot: one run of weeks whose faults are the real provider's
outages (reconciled as fault windows), judged as such, not as a fault scenario."""

from __future__ import annotations

from pathlib import Path

from report_fixtures import build_run

from reports.criteria import load_criteria
from reports.load import load_run
from reports.verdict import Verdict, evaluate

OUTAGE = [{"name": "feed_down", "start_s": 0.1, "stop_s": 0.5}]  # no trade visible in it


def _pilot(tmp_path: Path, latency_p95_s: float) -> Path:
    return build_run(tmp_path, scenarios=[
        {"name": "pilot_websocket", "mode": "websocket", "wallets": 1, "n": 400,
         "faults": OUTAGE, "special": {}}],
        overrides={"pilot_websocket": {"latency_p95_s": latency_p95_s}})


def test_a_pilot_with_an_outage_and_no_trade_in_it_is_judged_not_left_inconclusive(
        tmp_path: Path) -> None:
    """One outage of the feed in the pilot made it a 'fault scenario': every calm rule
    (latency p95 < 1 s, late trades, explorer calls, uptime) was dropped for the whole
    pilot, and the fault rule read 'not measured' because no trade became visible during
    the outage: INCONCLUSIVE, for any real pilot, however long it ran."""
    result = evaluate(load_run(_pilot(tmp_path, 0.4)), load_criteria())
    assert result.verdict is not Verdict.INCONCLUSIVE, result.reasons
    by_name = {c.name: c for c in result.checks}
    fault = by_name["latency p95 while a fault is active"]
    assert fault.passed is None and not fault.scored
    assert "no trade became visible during the pilot's outages" in fault.note
    assert by_name["detection latency p95"].passed is True
    assert by_name["late trades (no faults)"].passed is True


def test_a_pilots_calm_latency_gate_reads_the_latency_outside_its_outages(
        tmp_path: Path) -> None:
    """The whole pilot's p95 (30 s: the trades of an outage, found by the fallback) is not
    the steady state the calm rule judges; the p95 outside the outages is."""
    # 200-260 s of 600: the trades 133-172 of 400, 10 %, each found 30 s late
    run = build_run(tmp_path, scenarios=[
        {"name": "pilot_websocket", "mode": "websocket", "wallets": 1, "n": 400,
         "faults": [{"name": "feed_down", "start_s": 200.0, "stop_s": 260.0}],
         "special": {i: ("late", 30.0) for i in range(134, 172)}}])
    loaded = load_run(run)
    assert loaded.scenario("pilot_websocket").summary["latency_p95_s"] == 30.0
    result = evaluate(loaded, load_criteria())
    check = {c.name: c for c in result.checks}["detection latency p95"]
    assert check.passed is True and check.value is not None and check.value < 1.0
    assert "outside the pilot's outages" in check.note
