"""k6-like thresholds are parsed by hand and evaluated against a summary."""

from __future__ import annotations

import pytest

from experiments.thresholds import (
    ThresholdError,
    evaluate,
    evaluate_all,
    metric_value,
    parse_threshold,
)


@pytest.mark.parametrize(("expr", "metric", "op", "value"), [
    ("latency_p95_s < 1", "latency_p95_s", "<", 1.0),
    ("missed_pct<1", "missed_pct", "<", 1.0),
    ("duplicates == 0", "duplicates", "==", 0.0),
    ("explorer_calls_per_hour <= 500", "explorer_calls_per_hour", "<=", 500.0),
    ("latency_p95 < 800ms", "latency_p95_s", "<", 0.8),
    ("latency_p99 < 1s", "latency_p99_s", "<", 1.0),
    ("uptime >= 0.99", "uptime", ">=", 0.99),
    ("coverage > 9.5e-1", "coverage", ">", 0.95),
    ("missed_pct != 5 %", "missed_pct", "!=", 5.0),
])
def test_parse(expr: str, metric: str, op: str, value: float) -> None:
    t = parse_threshold(expr)
    assert (t.metric, t.op, t.value) == (metric, op, pytest.approx(value))


@pytest.mark.parametrize("expr", [
    "", "missed_pct", "missed_pct < ", "< 1", "missed_pct => 1", "missed_pct < 1 < 2",
    "__import__('os').system('x') < 1", "missed_pct < one", "missed_pct < 1 and x", "1 < 2",
    "missed_pct < 1e999",
])
def test_bad_expressions_are_refused(expr: str) -> None:
    with pytest.raises(ThresholdError, match="cannot parse"):
        parse_threshold(expr)


def test_evaluate_passes_fails_and_is_unknown_without_the_metric() -> None:
    summary = {"missed_pct": 0.05, "missed": 1, "trades": 2000, "duplicates": 2,
               "latency_p95_s": None, "uptime": True}
    res = evaluate("missed_pct < 1", summary)
    assert res["passed"] is True and res["value"] == 0.05 and res["upper"] < 1
    assert res["note"] == "1 missed in 2,000 trades: rate < 0.24% at 95%"
    assert evaluate("duplicates == 0", summary)["passed"] is False
    assert evaluate("latency_p95_s < 1", summary) == {
        "expr": "latency_p95_s < 1", "passed": None, "value": None,
        "note": "latency_p95_s not measured"}
    assert evaluate("phantoms == 0", summary)["passed"] is None
    assert [r["passed"] for r in evaluate_all(["missed_pct < 1", "phantoms == 0"], summary)] \
        == [True, None]


def test_a_rate_gate_passes_on_its_upper_bound_and_says_what_would_decide_it() -> None:
    few = {"missed": 0, "trades": 120, "sim_duration_s": 3600}
    res = evaluate("missed_pct < 1", few)
    # 0 of 120 bounds the rate only below 2.5 %: undecided, not a pass
    assert res["passed"] is None and res["value"] == 0.0
    assert "179 more trades" in res["note"] and "1.5 more simulated hours" in res["note"]
    assert evaluate("missed_pct < 1", {"missed": 0, "trades": 300})["passed"] is True
    assert evaluate("missed_pct < 1", {"missed": 5, "trades": 100})["passed"] is False
    assert evaluate("missed_pct < 1", {"missed": 0, "trades": 0})["passed"] is None


def test_percent_on_a_share_metric_means_a_fraction_and_aliases_resolve() -> None:
    assert parse_threshold("uptime >= 99%").value == 0.99
    assert parse_threshold("coverage > 90 %").value == 0.9
    assert parse_threshold("missed_pct < 1%").value == 1.0
    assert parse_threshold("missed_rate < 1").metric == "missed_pct"
    assert evaluate("uptime >= 99%", {"uptime": 0.995})["passed"] is True


def test_one_operator_table_for_every_comparison() -> None:
    assert parse_threshold("duplicates == 0").check(0.0)
    assert parse_threshold("latency_p95_s < 500ms").check(0.4)
    assert not parse_threshold("latency_p95_s < 500ms").check(0.5)
    assert parse_threshold("coverage >= 0.95").check(0.95)
    assert parse_threshold("reconnects != 0").check(1.0)


def test_derived_metrics_come_from_summary_keys() -> None:
    s = {"trades": 200, "late": 2, "sim_duration_s": 1800, "reconnects": 3,
         "fallback_s": 90, "wallets": 4, "explorer_calls_per_hour": 8.0,
         "rss_peak_bytes": 70_000_000}
    assert metric_value(s, "late_pct") == 1.0
    assert metric_value(s, "reconnects_per_hour") == 6.0
    assert metric_value(s, "fallback_pct") == 5.0
    assert metric_value(s, "explorer_calls_per_hour_per_wallet") == 2.0
    assert metric_value(s, "rss_peak_mb") == 70.0
    assert metric_value(s, "nonexistent") is None
    assert metric_value({"late": 2, "trades": 0}, "late_pct") is None  # no division by zero
    res = evaluate("late_pct < 1", s)
    assert res["passed"] is False and res["value"] == 1.0


def test_a_summary_key_wins_over_its_derivation_and_non_numbers_are_unknown() -> None:
    assert metric_value({"missed_pct": 0.5, "missed": 9, "trades": 10}, "missed_pct") == 0.5
    assert metric_value({"uptime": float("nan")}, "uptime") is None
    assert metric_value({"uptime": "n/a"}, "uptime") is None
    assert metric_value({"uptime": "0.5"}, "uptime") == 0.5
