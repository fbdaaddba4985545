"""The checker gives every trade exactly one outcome, on hand-made histories."""

from __future__ import annotations

import pandas as pd
import pytest
from exp_helpers import (
    END_S,
    OTHER,
    WALLET,
    Sim,
    monitor,
    ns,
    outcome_of,
    params,
    retraction,
    tid,
    trade,
)

from experiments.checker import (
    CheckerError,
    classify,
    detections_frame,
    fault_windows,
    monitor_metrics,
    run_checker,
)
from experiments.truth import build_truth


def check(sim: Sim, detections: list[dict], mon: list[dict] | None = None, **kw):
    return run_checker(sim.sorted(), mon or monitor(), detections, params(**kw),
                       thresholds=["missed_pct < 1", "duplicates == 0", "latency_p95_s < 1"])


def test_detected_with_latency_in_simulated_seconds():
    # 10 s: block 1 with trade 1 visible; 10.5 s: delivered -> 0.5 simulated seconds
    sim = Sim().block(10, 1, [tid(1)])
    _, _, out, summary = check(sim, [trade(10.5, tid(1))])
    row = outcome_of(out, tid(1))
    assert row["outcome"] == "detected"
    assert row["latency_s"] == pytest.approx(0.5)
    assert row["deliveries"] == 1 and row["source"] == "ws" and row["wallet"] == WALLET
    assert summary["detected"] == 1 and summary["trades"] == 1 and summary["missed_pct"] == 0
    assert summary["latency_p50_s"] == pytest.approx(0.5)
    # one trade cannot bound a miss rate below 1 %, nor a p95 below 1 s (that takes 59
    # trades): undecided, never a pass
    got = [(t["expr"], t["passed"]) for t in summary["thresholds"]]
    assert got == [("missed_pct < 1", None), ("duplicates == 0", True),
                   ("latency_p95_s < 1", None)]
    assert summary["thresholds"][0]["note"].startswith("undecided: 0 missed in 1 trades")
    assert "58 more trades under 1 s would pass it" in summary["thresholds"][2]["note"]


def test_late_after_the_actionable_window():
    sim = Sim().block(10, 1, [tid(1)])
    _, _, out, summary = check(sim, [trade(25, tid(1), source="poll")])
    row = outcome_of(out, tid(1))
    assert row["outcome"] == "late" and row["latency_s"] == pytest.approx(15.0)
    assert summary["late"] == 1 and summary["detected"] == 0
    assert summary["thresholds"][2]["passed"] is False


def test_missed_when_never_delivered():
    sim = Sim().block(10, 1, [tid(1)]).block(12, 2, [tid(2)])
    _, _, out, summary = check(sim, [trade(12.1, tid(2))])
    row = outcome_of(out, tid(1))
    assert row["outcome"] == "missed" and pd.isna(row["latency_s"])
    assert pd.isna(row["delivered_t_ns"])
    assert summary["missed"] == 1 and summary["missed_pct"] == pytest.approx(50.0)
    assert summary["thresholds"][0]["passed"] is False


def test_duplicate_when_delivered_twice_without_retraction():
    sim = Sim().block(10, 1, [tid(1)])
    _, _, out, summary = check(sim, [trade(10.2, tid(1)), trade(30, tid(1), source="backfill")])
    row = outcome_of(out, tid(1))
    assert row["outcome"] == "duplicate" and row["deliveries"] == 2
    assert row["latency_s"] == pytest.approx(0.2)  # the first delivery counts for latency
    assert summary["duplicates"] == 1 and summary["thresholds"][1]["passed"] is False


def test_redelivery_after_a_retraction_is_not_a_duplicate():
    # 10 s: block 1 (fork ee) holds trade 1; 12 s: reorg, block 1 (fork ff) holds it again
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [tid(1)], fork="ff")
    dets = [trade(10.1, tid(1)), retraction(12.1, tid(1)), trade(12.2, tid(1))]
    _, _, out, _ = check(sim, dets)
    row = outcome_of(out, tid(1))
    assert row["outcome"] == "detected" and row["deliveries"] == 2
    assert row["latency_s"] == pytest.approx(2.2)  # standing delivery vs first visibility


def test_phantom_when_orphaned_trade_is_never_retracted():
    # 10 s: block 1 holds trade 1; 12 s: reorg replaces block 1 with one without it
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    _, _, out, summary = check(sim, [trade(10.1, tid(1))])
    assert outcome_of(out, tid(1))["outcome"] == "phantom"
    assert summary["phantoms"] == 1 and summary["trades"] == 0


def test_retracted_when_orphaned_trade_is_retracted():
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    _, _, out, summary = check(sim, [trade(10.1, tid(1)), retraction(12.3, tid(1))])
    assert outcome_of(out, tid(1))["outcome"] == "retracted"
    assert summary["retracted"] == 1 and summary["phantoms"] == 0


def test_orphaned_trade_never_delivered_is_correct_and_has_no_row():
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    truth, _, out, summary = check(sim, [])
    assert out.empty and summary["trades"] == 0
    assert truth["canonical"].tolist() == [False]


def test_canonical_trade_retracted_for_good_is_missed():
    sim = Sim().block(10, 1, [tid(1)])
    _, _, out, _ = check(sim, [trade(10.1, tid(1)), retraction(11, tid(1))])
    assert outcome_of(out, tid(1))["outcome"] == "missed"


def test_delivery_of_an_unknown_or_unwatched_trade_is_a_phantom():
    sim = Sim().block(10, 1, [tid(1)], maker=OTHER)
    _, _, out, _ = check(sim, [trade(10.1, tid(1), wallet=OTHER), trade(11, tid(9))])
    assert outcome_of(out, tid(1))["outcome"] == "phantom"
    assert outcome_of(out, tid(9))["outcome"] == "phantom"


def test_trades_outside_the_window_are_ignored():
    # -5 s: visible before the monitor was up; 105 s: after the measured span
    sim = Sim().block(-5, 1, [tid(1)]).block(50, 2, [tid(2)]).block(END_S + 5, 3, [tid(3)])
    dets = [trade(1, tid(1)), trade(50.1, tid(2)), trade(END_S + 5.1, tid(3))]
    _, _, out, summary = check(sim, dets)
    assert out["trade_id"].tolist() == [tid(2)]
    assert summary["trades"] == 1


def test_every_trade_gets_exactly_one_outcome():
    sim = (Sim().block(10, 1, [tid(1), tid(2)]).block(12, 2, [tid(3)], fork="ee")
           .block(14, 2, [tid(4)], fork="ff").block(16, 3, [tid(5)]))
    dets = [trade(10.1, tid(1)), trade(10.2, tid(2)), trade(11, tid(2)), trade(12.1, tid(3)),
            trade(30, tid(5))]
    _, _, out, _ = check(sim, dets)
    assert out["trade_id"].is_unique
    assert dict(zip(out["trade_id"], out["outcome"], strict=True)) == {
        tid(1): "detected", tid(2): "duplicate", tid(3): "phantom", tid(4): "missed",
        tid(5): "late"}


def test_latency_split_inside_and_outside_fault_windows():
    # 30-40 s: ws_stall; trade at 35 s is inside, at 43 s inside the recovery tail (5 s),
    # at 10 s and 60 s outside
    sim = (Sim().fault("ws_stall", 30, 40).block(10, 1, [tid(1)]).block(35, 2, [tid(2)])
           .block(43, 3, [tid(3)]).block(60, 4, [tid(4)]))
    dets = [trade(10.1, tid(1)), trade(41, tid(2), source="backfill"),
            trade(44, tid(3), source="backfill"), trade(60.3, tid(4))]
    _, _, out, summary = check(sim, dets)
    flags = dict(zip(out["trade_id"], out["in_fault"], strict=True))
    assert flags == {tid(1): False, tid(2): True, tid(3): True, tid(4): False}
    assert outcome_of(out, tid(2))["fault"] == "ws_stall"
    assert pd.isna(outcome_of(out, tid(1))["fault"])
    assert summary["latency_p95_in_fault_s"] == pytest.approx(6 - 0.05 * 5, rel=1e-6)
    assert summary["latency_p95_outside_fault_s"] == pytest.approx(0.1 + 0.95 * 0.2)
    assert summary["faults"] == [{"name": "ws_stall", "start_s": pytest.approx(30),
                                  "stop_s": pytest.approx(40)}]


def test_unstopped_fault_runs_to_the_end():
    windows = fault_windows(Sim().fault("ws_refuse", 20, None).sorted(), ns(END_S))
    assert [(w.name, w.start_ns, w.stop_ns) for w in windows] == [
        ("ws_refuse", ns(20), ns(END_S))]


def test_monitor_measures_api_calls_uptime_coverage_fallback():
    # feed healthy 0-40 s, unhealthy 40-60 s (fallback polls from 45 s), healthy 60-100 s
    rows = monitor(extra=[
        {"t_ns": ns(0), "event": "feed", "healthy": True, "cause": "subscribed"},
        {"t_ns": ns(40), "event": "feed", "healthy": False, "cause": "stall"},
        {"t_ns": ns(40), "event": "state", "conn": "c1", "from": "CONNECTED",
         "to": "RECONNECTING", "cause": "ping timeout"},
        {"t_ns": ns(45), "event": "fallback", "active": True, "cause": "unhealthy 5 s"},
        {"t_ns": ns(46), "event": "api_call", "kind": "explorer", "method": "logs.getLogs",
         "ok": True},
        {"t_ns": ns(50), "event": "api_call", "kind": "rpc_http", "method": "eth_getLogs",
         "ok": True},
        {"t_ns": ns(60), "event": "feed", "healthy": True, "cause": "resubscribed"},
        {"t_ns": ns(60), "event": "fallback", "active": False, "cause": "healthy"},
        {"t_ns": ns(61), "event": "api_call", "kind": "rpc_ws", "method": "eth_subscribe",
         "ok": True},
    ])
    m = monitor_metrics(rows, params())
    hours = 100 / 3600
    assert m["api_calls"] == {"explorer": 1, "rpc_http": 1, "rpc_ws": 1}
    assert m["api_calls_per_hour"] == pytest.approx(3 / hours)
    assert m["explorer_calls_per_hour"] == pytest.approx(1 / hours)
    assert m["api_calls_per_hour_per_wallet"] == pytest.approx(3 / hours)
    assert m["uptime"] == pytest.approx(0.8)
    assert m["coverage"] == pytest.approx(0.94)       # uncovered 40-46 s
    assert m["fallback_s"] == pytest.approx(15.0)
    assert m["reconnects"] == 1
    assert m["cpu_s"] == 0.5 and m["rss_peak_bytes"] == 50_000_000
    assert m["bytes_received"] == 1234


def test_polling_mode_has_no_uptime_and_coverage_from_poll_success():
    rows = monitor("polling", extra=[
        {"t_ns": ns(10), "event": "api_call", "kind": "explorer", "method": "logs.getLogs",
         "ok": True},
        {"t_ns": ns(50), "event": "api_call", "kind": "explorer", "method": "logs.getLogs",
         "ok": False},
        {"t_ns": ns(70), "event": "api_call", "kind": "explorer", "method": "logs.getLogs",
         "ok": True},
    ])
    m = monitor_metrics(rows, params(mode="polling"))
    assert m["uptime"] == 0.0
    assert m["coverage"] == pytest.approx(0.7)        # 10-50 s and 70-100 s


def test_websocket_uptime_from_state_rows_when_there_are_no_feed_rows():
    rows = monitor(extra=[
        {"t_ns": ns(0), "event": "state", "conn": "c1", "from": "CONNECTING",
         "to": "CONNECTED", "cause": "open"},
        {"t_ns": ns(75), "event": "state", "conn": "c1", "from": "CONNECTED",
         "to": "RECONNECTING", "cause": "drop"},
    ])
    assert monitor_metrics(rows, params())["uptime"] == pytest.approx(0.75)


def test_missing_start_rows_raise_checker_error():
    sim = Sim().block(10, 1, [tid(1)])
    with pytest.raises(CheckerError, match="start"):
        run_checker(sim.sorted()[1:], monitor(), [], params())
    with pytest.raises(CheckerError, match="monitor history has no 'start'"):
        run_checker(sim.sorted(), monitor()[1:], [], params())
    with pytest.raises(CheckerError, match="no block_published"):
        run_checker(Sim().sorted(), monitor(), [], params())


def test_malformed_detections_raise_checker_error():
    with pytest.raises(CheckerError, match="row 1"):
        detections_frame([{"t_ns": 1, "kind": "trade"}])
    with pytest.raises(CheckerError, match="unknown kind"):
        detections_frame([{"t_ns": 1, "kind": "bogus"}])


def test_classify_rejects_frames_without_required_columns():
    truth = build_truth(Sim().block(10, 1, [tid(1)]).sorted(), [WALLET])
    with pytest.raises(CheckerError, match="column"):
        classify(truth.drop(columns=["canonical"]), detections_frame([]), [], params())
