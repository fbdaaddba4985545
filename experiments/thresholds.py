"""k6-like threshold expressions, parsed by hand (no ``eval``).

Grammar (one comparison per string)::

    threshold := metric op number [unit]
    metric    := [a-z_][a-z0-9_]*          a key of the scenario summary
    op        := "<" | "<=" | ">" | ">=" | "==" | "!="
    unit      := "s" | "ms" | "%"

``"latency_p95_s < 1"``, ``"missed_pct < 1"``, ``"duplicates == 0"``,
``"explorer_calls_per_hour <= 500"``, ``"latency_p95 < 800ms"`` (``latency_p95`` is an
alias of ``latency_p95_s``; ``ms`` divides by 1000). Evaluating against a summary gives
``{"expr", "passed", "value"}``; a metric that is missing or null gives ``passed: None``
(unknown, never a pass).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Threshold", "ThresholdError", "evaluate", "evaluate_all", "parse_threshold"]


class ThresholdError(ValueError):
    """An expression that does not parse; the message says what is wrong."""


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}

_PATTERN = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*"
    r"(?P<unit>ms|s|%)?\s*$"
)

_UNIT_FACTOR = {None: 1.0, "s": 1.0, "%": 1.0, "ms": 0.001}
# Short names people write, and the summary key they mean.
_ALIASES = {
    "missed_rate": "missed_pct",
    "phantom": "phantoms",
    "duplicate": "duplicates",
}
# Metrics stored as a share 0..1: "uptime >= 99%" means 0.99.
_FRACTIONS = frozenset({"uptime", "coverage"})


@dataclass(frozen=True, slots=True)
class Threshold:
    """One parsed comparison: ``metric op value``."""

    expr: str
    metric: str
    op: str
    value: float

    def check(self, actual: float) -> bool:
        return _OPS[self.op](actual, self.value)


def _canonical_metric(name: str, unit: str | None) -> str:
    name = _ALIASES.get(name.lower(), name.lower())
    if name.startswith("latency_") and not name.endswith("_s"):
        return name + "_s"
    if unit in ("s", "ms") and not name.endswith("_s"):
        return name + "_s"
    return name


def parse_threshold(expr: str) -> Threshold:
    """Parse one expression. Raises :class:`ThresholdError` with a readable message."""
    if not isinstance(expr, str):
        raise ThresholdError(f"expected a string like 'missed_pct < 1', got {expr!r}")
    m = _PATTERN.match(expr)
    if m is None:
        raise ThresholdError(
            f"cannot parse {expr!r}: expected '<metric> <op> <number>[s|ms|%]' "
            f"with op one of < <= > >= == !=")
    unit = m.group("unit")
    metric = _canonical_metric(m.group("metric"), unit)
    value = float(m.group("number")) * _UNIT_FACTOR[unit]
    if unit == "%" and metric in _FRACTIONS:
        value /= 100.0
    if not math.isfinite(value):
        raise ThresholdError(f"cannot parse {expr!r}: the number is not finite")
    return Threshold(expr=expr.strip(), metric=metric, op=m.group("op"), value=value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def evaluate(threshold: Threshold | str, summary: Mapping[str, Any]) -> dict[str, Any]:
    """``{"expr", "passed", "value"}``: ``passed`` is None when the metric is missing."""
    t = parse_threshold(threshold) if isinstance(threshold, str) else threshold
    value = _number(summary.get(t.metric))
    if value is None:
        return {"expr": t.expr, "passed": None, "value": None}
    return {"expr": t.expr, "passed": t.check(value), "value": value}


def evaluate_all(thresholds: list[str], summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [evaluate(t, summary) for t in thresholds]
