"""The gates table's bound cell counts its trades in words that agree with the number:
"(1 trades, ...)" read like a typo beside a verdict."""

from __future__ import annotations

from reports.verdict import CheckResult


def _gate(n: int, lower: float | None, upper: float | None,
          fault_events: int | None = None) -> CheckResult:
    bound = {"quantile": 0.95, "confidence": 0.95, "n": n, "lower": lower, "upper": upper}
    return CheckResult("ws_drop", "websocket", "p95 in faults", "latency_p95_in_fault_s < 5",
                       "criteria", False, 1.0, None, 0.5, "", bound=bound,
                       fault_events=fault_events)


def test_one_trade_is_one_trade() -> None:
    assert _gate(1, 0.5, None).shown_bound == ">= 0.5 s at 95% (1 trade)"
    assert _gate(1, 0.5, None, fault_events=1).shown_bound == \
        ">= 0.5 s at 95% (1 trade, 1 fault event)"
    assert _gate(1, None, None, fault_events=2).shown_bound == \
        "none (1 trade, 2 fault events)"


def test_other_counts_stay_plural() -> None:
    assert _gate(0, None, None).shown_bound == "none (0 trades)"
    assert _gate(2, 0.4, 0.9, fault_events=3).shown_bound == \
        "0.4 - 0.9 s at 95% (2 trades, 3 fault events)"
    assert _gate(1200, 0.4, 0.9).shown_bound == "0.4 - 0.9 s at 95% (1,200 trades)"
