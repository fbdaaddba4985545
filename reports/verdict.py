"""Thresholds -> GO / MARGINAL / NO-GO / INCONCLUSIVE.

Order (Kayenta-like, with Jepsen's "unknown"):

1. Every rule of the criteria is applied to every scenario it names (by mode, with or
   without faults); the scenarios' own ``thresholds`` lists are added. Polling
   scenarios are the baseline: their own thresholds are shown but not scored.
2. A failed critical gate (missed, duplicates, phantoms on websocket) => NO-GO.
3. Else any check that could not be evaluated (scenario missing, ``harness_error``,
   metric absent) or no websocket scenario at all => INCONCLUSIVE. Never a silent pass.
4. Else score = weighted share of passed non-critical checks: >= go_score GO,
   >= marginal_score MARGINAL, below NO-GO.
"""

from __future__ import annotations

import enum
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from experiments.thresholds import ThresholdError, parse_threshold
from reports.criteria import Criteria, Rule
from reports.load import Run, ScenarioData

__all__ = [
    "CRITICAL_METRICS",
    "CheckResult",
    "Expr",
    "Verdict",
    "VerdictResult",
    "evaluate",
    "metric_value",
    "parse_expr",
]


class Verdict(enum.Enum):
    GO = "GO"
    MARGINAL = "MARGINAL"
    NO_GO = "NO-GO"
    INCONCLUSIVE = "INCONCLUSIVE"


CRITICAL_METRICS = frozenset({"missed", "missed_pct", "duplicates", "phantoms"})

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
@dataclass(frozen=True, slots=True)
class Expr:
    """A parsed threshold ``metric op bound`` (the bound in the metric's own unit)."""

    text: str
    metric: str
    op: str
    bound: float

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.bound)


def parse_expr(text: str) -> Expr:
    """``"latency_p95 < 1s"`` -> Expr; raises ValueError with a readable message.

    The grammar and units are the experiments' own (:mod:`experiments.thresholds`), so a
    threshold means the same in the run summary and in the report.
    """
    try:
        t = parse_threshold(text)
    except ThresholdError as exc:
        raise ValueError(str(exc)) from None
    return Expr(t.expr, t.metric, t.op, t.value)


def _f(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def metric_value(summary: dict[str, Any], metric: str) -> float | None:
    """A summary key or a derived metric; None when it cannot be computed."""
    if metric in summary:
        return _f(summary[metric])
    trades = _f(summary.get("trades"))
    hours = (_f(summary.get("sim_duration_s")) or 0.0) / 3600.0
    wallets = _f(summary.get("wallets"))
    if metric == "late_pct":
        late = _f(summary.get("late"))
        return None if late is None or not trades else 100.0 * late / trades
    if metric == "detected_pct":
        det = _f(summary.get("detected"))
        return None if det is None or not trades else 100.0 * det / trades
    if metric == "fallback_pct":
        fb = _f(summary.get("fallback_s"))
        dur = _f(summary.get("sim_duration_s"))
        return None if fb is None or not dur else 100.0 * fb / dur
    if metric == "reconnects_per_hour":
        rc = _f(summary.get("reconnects"))
        return None if rc is None or not hours else rc / hours
    if metric == "explorer_calls_per_hour_per_wallet":
        ex = _f(summary.get("explorer_calls_per_hour"))
        return None if ex is None or not wallets else ex / wallets
    if metric == "rss_peak_mb":
        rss = _f(summary.get("rss_peak_bytes"))
        return None if rss is None else rss / 1e6
    if metric == "missed_pct":
        missed = _f(summary.get("missed"))
        return None if missed is None or not trades else 100.0 * missed / trades
    return None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One threshold on one scenario. ``passed`` None = could not be evaluated."""

    scenario: str
    mode: str
    name: str
    expr: str
    source: str  # "criteria" or "scenario"
    critical: bool
    weight: float
    passed: bool | None
    value: float | None
    note: str = ""
    scored: bool = True  # False: baseline (polling) thresholds, shown only

    @property
    def status(self) -> str:
        if self.passed is None:
            return "unknown"
        return "passed" if self.passed else "failed"


@dataclass(frozen=True, slots=True)
class VerdictResult:
    verdict: Verdict
    reasons: tuple[str, ...]
    score: float | None
    checks: tuple[CheckResult, ...]

    @property
    def line(self) -> str:
        """The one line the CLI prints."""
        score = f" (score {self.score:.3f})" if self.score is not None else ""
        first = f": {self.reasons[0]}" if self.reasons else ""
        return f"VERDICT {self.verdict.value}{score}{first}"


def _has_faults(sc: ScenarioData) -> bool:
    faults = sc.summary.get("faults")
    return bool(faults) if isinstance(faults, list) else False


def _applies(rule: Rule, sc: ScenarioData) -> bool:
    if rule.modes and sc.mode not in rule.modes and sc.mode != "unknown":
        return False
    return not (rule.faults is not None and sc.summary and _has_faults(sc) != rule.faults)


def _unusable(sc: ScenarioData) -> str | None:
    """Why this scenario's numbers cannot be trusted, or None."""
    if not sc.summary or sc.status == "missing":
        return "summary missing"
    if sc.status == "harness_error":
        err = str(sc.summary.get("error") or "no detail")
        return f"harness error ({err[:160]})"
    if sc.status != "ok":
        return f"status {sc.status!r}"
    return None


def _check(sc: ScenarioData, name: str, expr: Expr, source: str, critical: bool,
           weight: float, scored: bool, given: dict[str, Any] | None = None) -> CheckResult:
    broken = _unusable(sc)
    if broken:
        return CheckResult(sc.name, sc.mode, name, expr.text, source, critical, weight, None,
                           None, broken, scored)
    value = metric_value(sc.summary, expr.metric)
    if given is not None and value is None:
        value = _f(given.get("value"))
    if value is None:
        return CheckResult(sc.name, sc.mode, name, expr.text, source, critical, weight, None,
                           None, f"{expr.metric} not measured", scored)
    passed = expr.holds(value)
    if given is not None and isinstance(given.get("passed"), bool) and given["passed"] != passed:
        note = "the experiment's own evaluation disagrees; recomputed from the summary"
    else:
        note = ""
    return CheckResult(sc.name, sc.mode, name, expr.text, source, critical, weight, passed,
                       value, note, scored)


def _scenario_threshold(sc: ScenarioData, raw: Any) -> CheckResult | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("expr"), str):
        return None
    text = raw["expr"]
    scored = sc.mode != "polling"
    try:
        expr = parse_expr(text)
    except ValueError:
        # an expression we cannot parse: trust the experiment's own pass/fail if given
        passed = raw.get("passed") if isinstance(raw.get("passed"), bool) else None
        return CheckResult(sc.name, sc.mode, text, text, "scenario", False, 1.0, passed,
                           _f(raw.get("value")),
                           "" if passed is not None else "expression not understood", scored)
    critical = expr.metric in CRITICAL_METRICS and sc.mode == "websocket"
    return _check(sc, text, expr, "scenario", critical, 1.0, scored, given=raw)


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def evaluate(run: Run, criteria: Criteria) -> VerdictResult:
    """The verdict of a run under ``criteria``."""
    checks: list[CheckResult] = []
    seen: set[tuple[str, str]] = set()
    for sc in run.scenarios:
        for rule in criteria.rules:
            if _applies(rule, sc):
                checks.append(_check(sc, rule.name, parse_expr(rule.expr), "criteria",
                                     rule.critical, rule.weight, True))
                seen.add((sc.name, parse_expr(rule.expr).text))
        raw_list = sc.summary.get("thresholds")
        for raw in raw_list if isinstance(raw_list, list) else []:
            res = _scenario_threshold(sc, raw)
            if res is not None and (sc.name, res.expr) not in seen:
                checks.append(res)

    reasons: list[str] = []
    ws = [sc for sc in run.scenarios if sc.mode == "websocket"]
    crit_failed = [c for c in checks if c.critical and c.passed is False]
    unknown = [c for c in checks if c.passed is None and (c.critical or c.scored)]
    scored = [c for c in checks if not c.critical and c.scored and c.passed is not None]

    score: float | None = None
    total_w = sum(c.weight for c in scored)
    if total_w > 0:
        score = sum(c.weight for c in scored if c.passed) / total_w

    if crit_failed:
        for c in crit_failed:
            reasons.append(f"Critical gate failed in {c.scenario}: {c.expr} measured "
                           f"{_fmt(c.value)}.")
        for c in unknown:
            reasons.append(f"Also not evaluated in {c.scenario}: {c.expr} ({c.note}).")
        return VerdictResult(Verdict.NO_GO, tuple(reasons), score, tuple(checks))

    if any(p.startswith("summary.json") for p in run.problems):
        reasons.append("The run's summary.json is missing or unreadable: cannot tell whether "
                       "every scenario is present.")
    if not run.scenarios:
        reasons.append("The run has no scenarios: nothing was measured.")
    elif not ws:
        reasons.append("No websocket scenario in the run: the migration was not measured.")
    seen_notes: set[tuple[str, str]] = set()
    for c in unknown:
        key = (c.scenario, c.note)
        if c.note.startswith(("summary missing", "harness error", "status")):
            if key in seen_notes:
                continue
            seen_notes.add(key)
            reasons.append(f"Scenario {c.scenario} has no usable results: {c.note}.")
        else:
            reasons.append(f"Could not evaluate {c.expr} in {c.scenario}: {c.note}.")
    if reasons:  # no score: a partial score would read like a result
        return VerdictResult(Verdict.INCONCLUSIVE, tuple(reasons), None, tuple(checks))
    if score is None:
        reasons.append("No scored check applied to this run: nothing to score.")
        return VerdictResult(Verdict.INCONCLUSIVE, tuple(reasons), None, tuple(checks))

    n_crit = sum(1 for c in checks if c.critical)
    n_pass = sum(1 for c in scored if c.passed)
    if score >= criteria.go_score:
        verdict = Verdict.GO
    elif score >= criteria.marginal_score:
        verdict = Verdict.MARGINAL
    else:
        verdict = Verdict.NO_GO
    reasons.append(f"All {n_crit} critical gates passed on {len(ws)} websocket scenarios.")
    reasons.append(
        f"Score {score:.3f}: {n_pass} of {len(scored)} scored checks passed "
        f"(GO needs {criteria.go_score:.2f}, MARGINAL {criteria.marginal_score:.2f})."
    )
    failed: dict[str, list[str]] = {}
    for c in scored:
        if not c.passed:
            failed.setdefault(c.scenario, []).append(f"{c.expr} (measured {_fmt(c.value)})")
    for scenario, items in failed.items():
        reasons.append(f"Failed in {scenario}: {'; '.join(items)}.")
    return VerdictResult(verdict, tuple(reasons), score, tuple(checks))
