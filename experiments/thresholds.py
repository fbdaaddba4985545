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
(unknown, never a pass). A metric is a summary key or one derived from summary keys
(:func:`metric_value`: ``late_pct``, ``detected_pct``, ``fallback_pct``,
``reconnects_per_hour``, ``explorer_calls_per_hour_per_wallet``, ``rss_peak_mb``).

Rates are judged by their confidence bound, not the point estimate: a ``<``/``<=`` gate on
``missed_pct``, ``late_pct``, ``duplicate_pct`` or ``phantom_pct`` passes only when the
one-sided upper bound (exact binomial, :mod:`experiments.confidence`, 95% unless told)
of events per trade satisfies it (a ``>``/``>=`` gate on ``detected_pct``: its lower
bound); it fails when the measured rate does not; in between
it is undecided (``passed: None``) and ``note`` says how many more trades (and simulated
hours at the run's pace) would decide it. ``missed_pct < 1`` with 0 missed in 120 trades
is therefore undecided: it bounds the rate only below 2.5%.

Latency quantiles are judged by their distribution-free bounds likewise
(:data:`QUANTILE_METRICS`; the checker writes them under ``latency_bounds``, see
:func:`experiments.confidence.quantile_bound`): ``latency_p95_s < 1`` passes only when the
95 % upper bound of the p95 is below 1 s (59 trades at the least), fails when its lower
bound is at or over 1 s, and is undecided in between, saying how many more trades on the
passing side would pass it (or, where the measured p95 fails, on the other side would fail
it). One trade at 0.5 s passed that gate on its point value.

This module is the one grammar and the one evaluator of thresholds: the analysis evaluates a
scenario's own thresholds once, on its final summary, and writes the result into
``summary.json``; the report takes those results as written and evaluates its criteria rules
with the same :func:`evaluate`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from experiments.confidence import (
    rate_bound,
    samples_to_lower_upper,
    samples_to_raise_lower,
    trials_needed,
)

__all__ = [
    "METRICS",
    "QUANTILE_METRICS",
    "SUMMARY_KEYS",
    "Threshold",
    "ThresholdError",
    "evaluate",
    "evaluate_all",
    "metric_value",
    "number",
    "parse_threshold",
    "rate_counts",
    "shown",
]


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
    elif metric in _FRACTIONS and value > 1.0:  # "uptime >= 99": a gate no run can pass
        raise ThresholdError(f"{expr!r}: {metric} is a share from 0 to 1: write "
                             f"'{metric} {m.group('op')} {value:g}%' or "
                             f"'{metric} {m.group('op')} {value / 100:g}'")
    if not math.isfinite(value):
        raise ThresholdError(f"cannot parse {expr!r}: the number is not finite")
    if metric not in METRICS:  # a typo would be "not measured" in every run, never a check
        raise ThresholdError(f"{expr!r}: unknown metric {m.group('metric')!r} (known: "
                             f"{', '.join(sorted(METRICS))})")
    return Threshold(expr=expr.strip(), metric=metric, op=m.group("op"), value=value)


#: the keys of a scenario's summary (docs/contracts.md "Scenario summary"), in order
SUMMARY_KEYS = [
    "scenario", "description", "era", "mode", "speed", "seed", "wallets", "sim_duration_s",
    "status", "error", "trades", "detected", "late", "missed", "duplicates", "phantoms",
    "retracted", "missed_pct", "latency_p50_s", "latency_p95_s", "latency_p99_s",
    "latency_max_s", "latency_p95_in_fault_s", "latency_p95_outside_fault_s", "api_calls",
    "api_calls_per_hour", "explorer_calls_per_hour", "api_calls_per_hour_per_wallet",
    "uptime", "coverage", "reconnects", "fallback_s", "cpu_s", "cpu_s_per_hour",
    "rss_peak_bytes", "bytes_received", "faults", "thresholds", "actionable_window_s",
    "latency_stages", "inputs", "latency_bounds",
]
#: summary keys that are not numbers, so no threshold can name them
_NOT_METRICS = frozenset({"scenario", "description", "era", "mode", "status", "error",
                          "api_calls", "faults", "thresholds", "latency_stages", "inputs",
                          "latency_bounds"})


def number(value: Any) -> float | None:
    """A summary value as a finite float (a bool counts 0/1, a numeric string is read);
    None when it is missing, null, NaN, infinite or not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, str)):
        try:
            f = float(value)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _rounded(v: float, digits: int) -> str:
    """``v`` to ``digits`` significant digits, written out (``1,000`` and ``0.00004``,
    never ``1e+03`` or ``4e-05``), trailing zeros dropped."""
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    text = f"{v:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def shown(value: float, limits: Iterable[float] = (), digits: int = 3) -> str:
    """A measured number for people: ``digits`` significant digits, more where fewer would
    round it onto or across one of ``limits`` (a gate's bound; 0 and 100 of a percentage):
    an uptime of 0.9986 against ``uptime >= 0.999`` reads 0.9986, not a failed "0.999",
    a 99.996 % uptime not "100 %", 0.0004 % missed not "0"."""
    if not math.isfinite(value):
        return "unlimited" if value == math.inf else ("-unlimited" if value < 0 else "-")
    marks = [float(x) for x in limits if x is not None and math.isfinite(float(x))]
    text = _rounded(value, digits)
    for d in range(digits, 18):
        text = _rounded(value, d)
        r = float(text.replace(",", ""))
        if all((r > m) == (value > m) and (r < m) == (value < m) for m in marks):
            return text
    return text


def _ratio(num: Any, den: Any, scale: float = 1.0) -> float | None:
    n, d = number(num), number(den)
    return None if n is None or not d else scale * n / d


#: the scenarios of a reconciled live pilot (``experiments reconcile``) are named
#: ``pilot_<path>``
LIVE_PILOT_PREFIX = "pilot_"


def _hours(s: Mapping[str, Any]) -> float:
    return (number(s.get("sim_duration_s")) or 0.0) / 3600.0


# Metrics computed from summary keys when the summary does not hold them itself.
_DERIVED: dict[str, Callable[[Mapping[str, Any]], float | None]] = {
    "late_pct": lambda s: _ratio(s.get("late"), s.get("trades"), 100.0),
    "detected_pct": lambda s: _ratio(s.get("detected"), s.get("trades"), 100.0),
    "missed_pct": lambda s: _ratio(s.get("missed"), s.get("trades"), 100.0),
    "fallback_pct": lambda s: _ratio(s.get("fallback_s"), s.get("sim_duration_s"), 100.0),
    "reconnects_per_hour": lambda s: _ratio(s.get("reconnects"), _hours(s)),
    "explorer_calls_per_hour_per_wallet": lambda s: _ratio(s.get("explorer_calls_per_hour"),
                                                           s.get("wallets")),
    "rss_peak_mb": lambda s: _ratio(s.get("rss_peak_bytes"), 1e6),
}


def metric_value(summary: Mapping[str, Any], metric: str) -> float | None:
    """A summary key, or a metric derived from summary keys; None when it cannot be had."""
    if metric in summary:
        return number(summary[metric])
    derive = _DERIVED.get(metric)
    return derive(summary) if derive is not None else None


#: rate metric (percent) -> (events key, trials key) of the summary
RATE_METRICS: dict[str, tuple[str, str]] = {
    "missed_pct": ("missed", "trades"),
    "late_pct": ("late", "trades"),
    "duplicate_pct": ("duplicates", "trades"),
    "phantom_pct": ("phantoms", "trades"),
}
_DERIVED["duplicate_pct"] = lambda s: _ratio(s.get("duplicates"), s.get("trades"), 100.0)
_DERIVED["phantom_pct"] = lambda s: _ratio(s.get("phantoms"), s.get("trades"), 100.0)
#: what a threshold can name: the summary's numbers and the metrics derived from them
METRICS = frozenset(k for k in SUMMARY_KEYS if k not in _NOT_METRICS) | frozenset(_DERIVED)
CONFIDENCE = 0.95


def evaluate(threshold: Threshold | str, summary: Mapping[str, Any], *,
             confidence: float = CONFIDENCE) -> dict[str, Any]:
    """``{"expr", "passed", "value", "note"}`` (+ ``"bound"`` for rates): ``passed`` is
    None when the metric is missing or, for a rate, when the data cannot decide."""
    t = parse_threshold(threshold) if isinstance(threshold, str) else threshold
    value = metric_value(summary, t.metric)
    if value is None and t.metric in QUANTILE_METRICS and t.op in ("<", "<=", ">", ">="):
        empty = _no_samples(t, summary, confidence)
        if empty is not None:
            return empty
    if value is None:
        note = f"{t.metric} not measured"
        if t.metric in RATE_METRICS and number(summary.get(RATE_METRICS[t.metric][1])) == 0:
            note = f"{t.metric}: no {RATE_METRICS[t.metric][1]}, the rate is unknown"
        return {"expr": t.expr, "passed": None, "value": None, "note": note}
    if t.metric in RATE_METRICS and t.op in ("<", "<="):
        return _evaluate_rate(t, summary, value, confidence)
    if t.metric in LOWER_RATE_METRICS and t.op in (">", ">="):
        return _evaluate_lower_rate(t, summary, value, confidence)
    if t.metric in QUANTILE_METRICS and t.op in ("<", "<=", ">", ">="):
        return _evaluate_quantile(t, summary, value, confidence)
    return {"expr": t.expr, "passed": t.check(value), "value": value, "note": ""}


def rate_counts(summary: Mapping[str, Any], ev_key: str, n_key: str = "trades"
                ) -> tuple[float | None, float | None, str]:
    """(events, trials, note) a rate's confidence bound is computed from: the summary's
    own counts, or for seeds pooled its ``bound_basis`` (each distinct replay once; the
    note says which seeds were counted with another)."""
    basis = summary.get("bound_basis")
    if isinstance(basis, dict) and ev_key in basis and n_key in basis:
        same = basis.get("same_as") if isinstance(basis.get("same_as"), dict) else {}
        note = ""
        if same:
            firsts = sorted({str(v) for v in same.values()})
            note = (f" (seeds {', '.join(sorted(same, key=str))} replayed the trades and "
                    f"faults of seed {', '.join(firsts)}: counted once)")
        return number(basis.get(ev_key)), number(basis.get(n_key)), note
    return number(summary.get(ev_key)), number(summary.get(n_key)), ""


def _pace(summary: Mapping[str, Any], more: int, per: float) -> str:
    """``; about H more simulated hours at this run's pace`` for ``more`` trades (or
    samples), at ``per`` of them in the run's (pooled) time; "" without a time."""
    hours = _hours(summary)
    if hours <= 0 or per <= 0:
        return ""
    # a live pilot's hours are wall-clock hours of the wallets' own trading
    live = str(summary.get("scenario") or "").startswith(LIVE_PILOT_PREFIX)
    what_hours = ("hours of pilot at the watched wallets' pace so far" if live
                  else "simulated hours at this run's pace")
    return f"; about {more * hours / per:.2g} more {what_hours}"


def _evaluate_rate(t: Threshold, summary: Mapping[str, Any], value: float,
                   confidence: float) -> dict[str, Any]:
    ev_key, n_key = RATE_METRICS[t.metric]
    k, n, basis_note = rate_counts(summary, ev_key, n_key)
    if k is not None and n is not None and 1 <= n < k:  # phantoms are no subset of trades
        return {"expr": t.expr, "passed": False if not t.check(value) else None,
                "value": value, "note": f"{int(k):,} {ev_key} in {int(n):,} {n_key}: more "
                f"than one per {n_key.rstrip('s')}, no share to bound{basis_note}"}
    if k is None or n is None or n < 1 or k < 0 or k > n:
        return {"expr": t.expr, "passed": None, "value": value,
                "note": f"{t.metric}: no {n_key} to bound the rate with"}
    b = rate_bound(int(k), int(n), confidence)
    out = {"expr": t.expr, "value": value, "bound": b.to_dict(),
           "upper": b.upper * 100.0}
    what = ev_key
    if t.check(b.upper * 100.0):
        return {**out, "passed": True, "note": b.text(what) + basis_note}
    if not t.check(value):
        return {**out, "passed": False, "note": b.text(what) + basis_note}
    if basis_note and not t.check(100.0 * k / n):  # the point the bound stands on fails:
        # the worst of seeds that replayed the same trades was over the limit, though the
        # seeds' average is under it - no number of trades more decides that in its favour
        return {**out, "passed": False, "note": f"{b.text(what)}{basis_note}: "
                f"{int(k):,} {ev_key} in {int(n):,} {n_key} is {100.0 * k / n:.3g} %"}
    if not 0.0 < t.value < 100.0:  # "missed_pct <= 0": no bound is ever 0
        return {**out, "passed": None,
                "note": f"undecided: {b.text(what)}{basis_note}; no number of {n_key} "
                        f"bounds a rate at {t.value:g} %: write '{ev_key} == 0' to require "
                        f"no {what.rstrip('s')} event"}
    needed = trials_needed(t.value / 100.0, confidence, events=int(k))
    more = needed - int(n)
    all_n = number(summary.get(n_key))  # the pooled time covers every seed's trades
    pace = _pace(summary, more, all_n or n)
    return {**out, "passed": None,
            "note": f"undecided: {b.text(what)}{basis_note}; {more:,} more {n_key} "
                    f"without a {what.rstrip('s')} event would decide it{pace}"}


#: rate metric (percent) gated from below -> (the summary's counts of the trades that are
#: not it, trials key): ``detected_pct >= 99`` passes when the upper bound of the trades
#: late, missed or duplicated is at most 1 %, as ``missed_pct < 1`` is judged
LOWER_RATE_METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "detected_pct": (("late", "missed", "duplicates"), "trades"),
}


def _evaluate_lower_rate(t: Threshold, summary: Mapping[str, Any], value: float,
                         confidence: float) -> dict[str, Any]:
    """A ``>``/``>=`` gate on a share of the trades, by the lower bound of that share (one
    minus the upper bound of the others): 5 of 5 detected passed ``detected_pct >= 99`` on
    the point estimate, where ``missed_pct < 1`` with 0 of 5 missed is undecided."""
    keys, n_key = LOWER_RATE_METRICS[t.metric]
    counts = [rate_counts(summary, key, n_key) for key in keys]
    n, basis_note = counts[0][1], counts[0][2]
    others = [c[0] for c in counts]
    if n is None or n < 1 or any(k is None or k < 0 for k in others):
        return {"expr": t.expr, "passed": None, "value": value,
                "note": f"{t.metric}: no {n_key} to bound the rate with"}
    k = min(int(sum(k for k in others if k is not None)), int(n))
    b = rate_bound(k, int(n), confidence)
    lower = (1.0 - b.upper) * 100.0
    what = "not " + t.metric.removesuffix("_pct")
    text = b.text(what) + basis_note
    out = {"expr": t.expr, "value": value, "bound": b.to_dict(), "lower": lower}
    if t.check(lower):
        return {**out, "passed": True, "note": text}
    if not t.check(value) or (basis_note and not t.check(100.0 * (n - k) / n)):
        return {**out, "passed": False, "note": text}
    if not 0.0 < t.value < 100.0:
        return {**out, "passed": None, "note": f"undecided: {text}; no number of {n_key} "
                f"bounds a rate at {t.value:g} %"}
    more = trials_needed(1.0 - t.value / 100.0, confidence, events=k) - int(n)
    return {**out, "passed": None,
            "note": f"undecided: {text}; {more:,} more {n_key} all "
                    f"{t.metric.removesuffix('_pct')} would decide it"}


#: latency metric -> the quantile it is (of the trades' latencies; the checker picks
#: which trades: all, those in a fault, those outside). ``latency_max_s`` is no quantile a
#: sample can bound: a gate on it says what the slowest trade measured was.
QUANTILE_METRICS: dict[str, float] = {
    "latency_p50_s": 0.50,
    "latency_p95_s": 0.95,
    "latency_p99_s": 0.99,
    "latency_p95_in_fault_s": 0.95,
    "latency_p95_outside_fault_s": 0.95,
}


def _quantile_bound_of(summary: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    bounds = summary.get("latency_bounds")
    b = bounds.get(metric) if isinstance(bounds, Mapping) else None
    return b if isinstance(b, Mapping) and number(b.get("n")) is not None else None


def _count_side(b: Mapping[str, Any], limit: float, side: str) -> int | None:
    """How many of the bound's samples are ``side`` (``<``, ``<=``, ``>``, ``>=``) of
    ``limit``, for a limit between its bounds: the ranks below the window are at or under
    its first sample, those above it at or over its last; None without a window."""
    window, first, n = b.get("window"), number(b.get("window_from")), number(b.get("n"))
    if not isinstance(window, list) or first is None or n is None:
        return None
    xs = [number(x) for x in window]
    if any(x is None for x in xs):
        return None
    below = int(first) - 1  # the ranks under the window: at or under its first sample
    above = int(n) - below - len(xs)  # over it: at or over its last
    if not xs or below < 0 or above < 0:
        return None
    check = _OPS[side]
    lo, hi = xs[0], xs[-1]
    assert lo is not None and hi is not None
    # the ranks outside the window are on ``side`` or not where the window's edge decides
    # it (always, for a limit between the two bounds); else the count is not known
    near, far, n_near, n_far = (lo, hi, below, above) if side in ("<", "<=") else \
        (hi, lo, above, below)
    if (n_near and not check(near, limit)) or (n_far and check(far, limit)):
        return None
    return sum(1 for x in xs if x is not None and check(x, limit)) + n_near


def _quantile_text(b: Mapping[str, Any], limit: float, confidence: float) -> str:
    """``p95 of 462 trades' latencies: >= 0.41 s, <= 0.87 s at 95%``."""
    q, n = float(b["quantile"]), int(b["n"])
    lo, up = number(b.get("lower")), number(b.get("upper"))
    what = f"{n:,} trade's latency" if n == 1 else f"{n:,} trades' latencies"
    sides = [f"{op} {shown(x, [limit])} s" for op, x in ((">=", lo), ("<=", up))
             if x is not None]
    text = f"p{q * 100:g} of {what}: "
    text += (", ".join(sides) + f" at {confidence:.0%}") if sides else "no bound"
    if up is None:
        text += f"; no upper bound below {int(number(b.get('min_n')) or 0):,} trades"
    n_all = number(b.get("n_all"))
    if n_all is not None and n_all > n:
        text += (f" (of {int(n_all):,} latencies pooled: seeds that replayed the same trades "
                 "and faults counted once, by the slowest)")
    return text


_WHERE = {"latency_p95_in_fault_s": " during faults",
          "latency_p95_outside_fault_s": " outside faults"}


def _no_samples(t: Threshold, summary: Mapping[str, Any], confidence: float
                ) -> dict[str, Any] | None:
    """A latency quantile gate whose bounds count no trade (none in a fault window, say):
    undecided, saying how many trades would decide it, as for one with too few; None
    when the summary records no bound of it with n = 0."""
    b = _quantile_bound_of(summary, t.metric)
    if b is None or number(b.get("n")) != 0:
        return None
    conf = number(b.get("confidence"))
    q = number(b.get("quantile"))
    if conf is None or not math.isclose(conf, confidence) or q is None or not 0.0 < q < 1.0:
        return None
    upper_side = t.op in ("<", "<=")
    to_pass = (samples_to_lower_upper(q, confidence) if upper_side
               else samples_to_raise_lower(q, confidence))
    to_fail = (samples_to_raise_lower(q, confidence) if upper_side
               else samples_to_lower_upper(q, confidence))
    side = ("under" if t.op == "<" else "at or under" if t.op == "<=" else
            "over" if t.op == ">" else "at or over")
    other = {"under": "at or over", "at or under": "over", "over": "at or under",
             "at or over": "under"}[side]
    where = _WHERE.get(t.metric, "")

    def trades(k: int) -> str:
        return f"{k:,} more trade{'s' if k > 1 else ''}{where}"

    return {"expr": t.expr, "passed": None, "value": None,
            "bound": {k: b.get(k) for k in ("quantile", "confidence", "n", "lower", "upper",
                                            "lower_rank", "upper_rank", "min_n")},
            "note": f"undecided: no trade's latency{where} to bound the p{q * 100:g} with; "
                    f"{trades(to_pass)} {side} {t.value:g} s would pass it, "
                    f"{trades(to_fail)} {other} {t.value:g} s would fail it"}


def _evaluate_quantile(t: Threshold, summary: Mapping[str, Any], value: float,
                       confidence: float) -> dict[str, Any]:
    """A ``<``/``<=``/``>``/``>=`` gate on a latency quantile, by its distribution-free
    bounds (:func:`experiments.confidence.quantile_bound`, written by the checker under
    ``latency_bounds``): ``p95 < X`` passes when the upper bound is below ``X``, fails when
    the lower bound is at or over it, and is undecided in between, saying how many more
    trades would decide it. One trade at 0.5 s passed ``latency_p95_s < 1``. A summary
    without bounds (analysed before they were written) is judged on the point value, and
    says so."""
    b = _quantile_bound_of(summary, t.metric)
    if b is None and "latency_bounds" not in summary:
        return {"expr": t.expr, "passed": t.check(value), "value": value,
                "note": "judged on the point value: the summary records no confidence "
                        "bound (analysed before bounds were written)"}
    if b is None or not 0.0 < (number(b.get("quantile")) or 0.0) < 1.0 \
            or (number(b.get("n")) or 0) < 0:
        return {"expr": t.expr, "passed": None, "value": value,
                "note": f"{t.metric}: the summary's latency_bounds has no usable bound of it"}
    q, n = float(b["quantile"]), int(b["n"])
    conf = number(b.get("confidence"))
    out: dict[str, Any] = {"expr": t.expr, "value": value,
                           "bound": {k: b.get(k) for k in ("quantile", "confidence", "n",
                                                           "lower", "upper", "lower_rank",
                                                           "upper_rank", "min_n")}}
    if conf is None or not math.isclose(conf, confidence):
        return {**out, "passed": None, "note": f"the summary's bounds are at "
                f"{conf if conf is None else f'{conf:.0%}'}, not {confidence:.0%}"}
    lo, up = number(b.get("lower")), number(b.get("upper"))
    text = _quantile_text(b, t.value, confidence)
    upper_side = t.op in ("<", "<=")  # the gate passes on the upper bound, fails on the lower
    good, bad = (up, lo) if upper_side else (lo, up)
    if good is not None and t.check(good):
        return {**out, "passed": True, "note": text}
    if bad is not None and not t.check(bad):
        return {**out, "passed": False, "note": text}
    # undecided: how many more trades would decide it - all on the gate's side of the limit
    # where the point value is, else all on the other side (they would confirm it failed)
    favourable = t.check(value)
    # the samples that must stay beyond the deciding bound: for a pass of "< X", those at
    # or over X; to fail it, those under X
    if upper_side:
        against = _count_side(b, t.value, ">=" if t.op == "<" else ">") if favourable \
            else _count_side(b, t.value, "<" if t.op == "<" else "<=")
    else:
        against = _count_side(b, t.value, "<=" if t.op == ">" else "<") if favourable \
            else _count_side(b, t.value, ">" if t.op == ">" else ">=")
    if against is None:
        return {**out, "passed": None, "note": f"undecided: {text}"}
    if favourable == upper_side:
        needed = samples_to_lower_upper(q, confidence, above=against)
    else:
        needed = samples_to_raise_lower(q, confidence, below=against)
    more = max(1, needed - n)
    n_all = number(b.get("n_all")) or n
    where = _WHERE.get(t.metric, "")
    side = ("under" if t.op == "<" else "at or under" if t.op == "<=" else
            "over" if t.op == ">" else "at or over")
    other = {"under": "at or over", "at or under": "over", "over": "at or under",
             "at or over": "under"}[side]
    trades = f"{more:,} more trade{'s' if more > 1 else ''}{where}"
    how = (f"{trades} {side} {t.value:g} s would pass it" if favourable
           else f"{trades} {other} {t.value:g} s would fail it")
    return {**out, "passed": None,
            "note": f"undecided: {text}; {how}{_pace(summary, more, n_all)}"}


def evaluate_all(thresholds: list[str], summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [evaluate(t, summary) for t in thresholds]
