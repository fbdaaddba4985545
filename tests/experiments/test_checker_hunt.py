"""Checker hunt: histories whose measures the checker got wrong, with the exact numbers
DESIGN.md's definitions give."""

from __future__ import annotations

import pytest
from exp_helpers import (
    Sim,
    make_scenario_dir,
    monitor,
    ns,
    outcome_of,
    params,
    retraction,
    tid,
    trade,
    write_jsonl,
)

from experiments.analysis import analyze_scenario_dir
from experiments.checker import FaultWindow, monitor_metrics, run_checker
from experiments.reconcile import _feed_down
from experiments.thresholds import evaluate

# -- uptime, coverage and fallback time of a monitor with several WebSocket shards --------

def _feed(t: float, healthy: bool, shard: str) -> dict:
    return {"t_ns": ns(t), "event": "feed", "healthy": healthy, "cause": f"{shard}: x"}


def _fallback(t: float, active: bool, shard: str) -> dict:
    return {"t_ns": ns(t), "event": "fallback", "active": active, "cause": f"{shard}: x"}


def _explorer(t: float, ok: bool) -> dict:
    return {"t_ns": ns(t), "event": "api_call", "kind": "explorer", "method": "logs.getLogs",
            "ok": ok}


def test_a_shard_still_down_keeps_the_feed_down_while_another_comes_back():
    # two shards (wallets > max_wallets_per_filter). Shard ws0 is down 10-15 s; ws1 goes
    # down at 12 s and stays down until 60 s, polling the explorer from 20 s; ws0 polls
    # briefly at 30-31 s. The checker took the last feed or fallback row of any shard as
    # the whole monitor's: ws0's recovery at 15 s read as the feed back (uptime 95 % where
    # ws1's wallets had no live feed for 48 s) and ws0's fallback ending at 31 s as the
    # fallback over (fallback time 11 s of 40).
    rows = monitor(extra=[
        {"t_ns": ns(0), "event": "subscription_mode", "mode": "filtered", "connections": 2},
        _feed(0, True, "ws0"), _feed(0, True, "ws1"), _feed(10, False, "ws0"),
        _feed(12, False, "ws1"), _feed(15, True, "ws0"), _fallback(20, True, "ws1"),
        _explorer(21, True), _fallback(30, True, "ws0"), _fallback(31, False, "ws0"),
        _feed(60, True, "ws1"), _fallback(60, False, "ws1")])
    m = monitor_metrics(rows, params())
    assert m["uptime"] == pytest.approx(0.50)     # down 10-60 s: ws0, then ws1
    assert m["coverage"] == pytest.approx(0.89)   # ws0 uncovered 10-15 s, ws1 12-21 s
    assert m["fallback_s"] == pytest.approx(40.0)  # ws1 polls 20-60 s (ws0's 30-31 inside)


def test_a_planned_shard_that_never_became_healthy_is_down():
    rows = monitor(extra=[
        {"t_ns": ns(0), "event": "subscription_mode", "mode": "filtered", "connections": 2},
        _feed(0, True, "ws0"), _feed(40, True, "ws1")])
    m = monitor_metrics(rows, params())
    assert m["uptime"] == pytest.approx(0.60) and m["coverage"] == pytest.approx(0.60)


def test_the_analysis_reads_the_shards_the_monitor_planned(tmp_path):
    # the analysis passed the checker only some monitor rows, without the
    # subscription_mode row: a second shard that never became healthy was not counted
    sdir = make_scenario_dir(tmp_path)
    write_jsonl(sdir / "monitor_history.jsonl", monitor(extra=[
        {"t_ns": ns(0), "event": "subscription_mode", "mode": "filtered", "connections": 2},
        _feed(0, True, "ws0"), _feed(40, True, "ws1")]))
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "ok", summary["error"]
    assert summary["uptime"] == pytest.approx(0.60)


def test_a_pilot_feed_is_down_until_its_last_shard_is_back():
    # the live pilot's fault windows (feed_down): ws0 down 10-15 s, ws1 down 12-60 s. The
    # window closed at ws0's recovery (10-15 s): trades at 15-60 s, when ws1's wallets
    # had no live feed, were judged outside any fault.
    rows = [_feed(0, True, "ws0"), _feed(0, True, "ws1"), _feed(10, False, "ws0"),
            _feed(12, False, "ws1"), _feed(15, True, "ws0"), _feed(60, True, "ws1")]
    assert _feed_down(rows, ns(100)) == [FaultWindow("feed_down", ns(10), ns(60))]


# -- a share of the trades gated from below ------------------------------------------------

def test_a_detected_share_gate_is_judged_by_its_lower_bound():
    # "detected_pct >= 99" with 5 of 5 trades detected passed on the point estimate
    # (100 %), where "missed_pct < 1" with 0 of 5 missed is undecided (the miss rate is
    # only bounded below 45 %): the same five trades proved one gate and not the other.
    few = {"trades": 5, "detected": 5, "late": 0, "missed": 0, "duplicates": 0,
           "sim_duration_s": 600.0}
    res = evaluate("detected_pct >= 99", few)
    assert res["passed"] is None and res["value"] == 100.0
    assert res["bound"]["trials"] == 5 and "294 more trades" in res["note"]
    many = dict(few, trades=1000, detected=1000)
    assert evaluate("detected_pct >= 99", many)["passed"] is True
    assert evaluate("detected_pct > 99.8", many)["passed"] is None
    bad = dict(few, trades=100, detected=90, late=5, missed=5)
    assert evaluate("detected_pct >= 99", bad)["passed"] is False
    assert evaluate("detected_pct <= 95", bad)["passed"] is True  # from above: the point
    assert evaluate("detected_pct >= 99", {"trades": 0})["passed"] is None


# -- retractions no delivery stands for ------------------------------------------------

def check(sim: Sim, detections: list[dict], mon: list[dict] | None = None, **kw):
    return run_checker(sim.sorted(), mon if mon is not None else monitor(), detections,
                       params(**kw), thresholds=["phantoms == 0"])


def test_a_retraction_before_any_delivery_covers_no_later_delivery():
    # block 1 (fork ee) holds trade 1 at 10 s; a reorg at 12 s replaces it by a block
    # without. A restarting monitor sends a retraction of a trade the sink never got (the
    # bot ignores it, docs/contracts.md), then delivers trade 1 twice (WebSocket and
    # backfill) and retracts it once: one delivery still stands in the bot. The stray
    # retraction was counted against the deliveries: 2 deliveries, 2 retractions, so
    # "retracted" (a reorg handled) and the 'phantoms == 0' gate passed.
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    dets = [retraction(10.05, tid(1)), trade(10.1, tid(1)),
            trade(10.5, tid(1), source="backfill"), retraction(12.3, tid(1))]
    _, _, out, summary = check(sim, dets)
    row = outcome_of(out, tid(1))
    assert row["outcome"] == "phantom" and row["deliveries"] == 2
    assert summary["phantoms"] == 1 and summary["retracted"] == 0
    assert summary["thresholds"][0]["passed"] is False


def test_retractions_that_take_back_every_delivery_leave_it_retracted():
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    dets = [retraction(10.05, tid(1)), trade(10.1, tid(1)), retraction(12.2, tid(1)),
            retraction(12.3, tid(1))]
    _, _, out, summary = check(sim, dets)
    assert outcome_of(out, tid(1))["outcome"] == "retracted"
    assert summary["phantoms"] == 0 and summary["retracted"] == 1
