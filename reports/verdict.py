"""Thresholds -> GO / MARGINAL / NO-GO / INCONCLUSIVE.

Order (Kayenta-like, with Jepsen's "unknown"):

1. Every rule of the criteria is applied to every scenario it names (by mode, with or
   without faults); the scenarios' own ``thresholds`` lists are added. Polling
   scenarios are the baseline: their own thresholds are shown but not scored.

   One grammar, evaluated once: rules are evaluated here with
   :func:`experiments.thresholds.evaluate`; a scenario's own thresholds were evaluated
   by the analysis and are taken as written in its ``summary.json``.
2. A failed critical gate (missed, duplicates, phantoms on websocket) => NO-GO.
3. Else any check that could not be evaluated (scenario missing, ``harness_error``,
   metric absent; a critical gate its confidence bound left undecided) or no websocket
   scenario at all => INCONCLUSIVE. Never a silent pass.
4. Else score = weighted share of passed non-critical checks: >= go_score GO,
   >= marginal_score MARGINAL, below NO-GO. A scored check measured but left undecided by
   its bound (too few trades, or a quantile's bounds either side of its limit) is scored
   both ways: failed (the score shown) and passed (``score_best``). Where the two fall in
   different bands the undecided checks decide the verdict, and it is INCONCLUSIVE;
   where they fall in the same band that band is the verdict whichever way they fall,
   and the reasons say so and list them with the simulated time that would decide them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

from experiments.confidence import pct_up
from experiments.thresholds import (
    LIVE_PILOT_PREFIX,
    LOWER_RATE_METRICS,
    QUANTILE_METRICS,
    ThresholdError,
    number,
    parse_threshold,
    shown,
)
from experiments.thresholds import evaluate as evaluate_threshold
from reports.criteria import Criteria, Rule
from reports.load import TWICE, Run, ScenarioData, basis_fault_events

__all__ = [
    "CRITICAL_METRICS",
    "LATENCY_BOUND_CAVEAT",
    "NO_SCENARIO",
    "CheckResult",
    "Verdict",
    "VerdictResult",
    "evaluate",
]


class Verdict(enum.Enum):
    GO = "GO"
    MARGINAL = "MARGINAL"
    NO_GO = "NO-GO"
    INCONCLUSIVE = "INCONCLUSIVE"


#: a scenario threshold on these is a critical gate (DESIGN: missed, duplicates, phantoms,
#: as counts or as rates per trade)
CRITICAL_METRICS = frozenset({"missed", "missed_pct", "duplicates", "duplicate_pct",
                              "phantoms", "phantom_pct"})


#: said next to every latency quantile's bounds (the gates table, ``reports build --json``)
LATENCY_BOUND_CAVEAT = (
    "Latency bounds are order statistics that assume independent samples. Trades inside "
    "one fault are not independent (one outage delays them all): a bound of latencies "
    "during faults rests on the number of fault events it is shown with, not on its "
    "trade count, and is weaker than it reads where those events are few.")


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
    # the confidence bound the gate was judged by: a rate's {events, trials, confidence,
    # rate, lower, upper}, a latency quantile's {quantile, confidence, n, lower, upper, ...}
    bound: dict[str, Any] | None = None
    # a latency quantile gate of a scenario with faults: the fault events its samples
    # come from (trades inside one fault are not independent samples)
    fault_events: int | None = None

    @property
    def status(self) -> str:
        if self.passed is None:
            return "unknown"
        return "passed" if self.passed else "failed"

    @property
    def shown_value(self) -> str:
        """The measured value for people, with the digits that keep it on its side of the
        gate's bound (a failed ``uptime >= 0.999`` measured 0.9986 read "measured 0.999";
        a failed ``explorer_calls_per_hour <= 10800`` at 10,800.4 read "10,800")."""
        return _fmt(self.value, self.expr)

    @property
    def shown_bound(self) -> str:
        """The bound beside the measured value, as the gate used it: a rate's upper bound
        (``< 0.70%``; a share gated from below, its lower bound), a latency quantile's lower
        and upper bounds (``0.41 - 0.87 s``, either missing below enough trades); "" for a
        gate judged on its measured value alone."""
        b = self.bound
        if not b:
            return ""
        try:
            t = parse_threshold(self.expr)
        except ThresholdError:
            return ""
        conf = number(b.get("confidence"))
        at = f" at {conf:.0%}" if conf is not None else ""
        up, lo = number(b.get("upper")), number(b.get("lower"))
        if "quantile" in b:
            parts = [shown(x, [t.value]) if x is not None else None for x in (lo, up)]
            n = int(number(b.get("n")) or 0)
            basis = f"{n:,} trade{'' if n == 1 else 's'}"
            if self.fault_events is not None:
                basis += (f", {self.fault_events:,} fault event"
                          f"{'' if self.fault_events == 1 else 's'}")
            if parts[0] and parts[1]:
                text = f"{parts[0]} - {parts[1]} s"
            elif parts[0] or parts[1]:
                text = f">= {parts[0]} s" if parts[0] else f"<= {parts[1]} s"
            else:
                return f"none ({basis})"
            return f"{text}{at} ({basis})"
        if up is None:
            return ""
        if t.metric in LOWER_RATE_METRICS:  # the share's lower bound: 1 - the others' upper
            return f">= {shown(100.0 * (1.0 - up), [t.value])}%{at}"
        return f"< {pct_up(up)}{at}"


@dataclass(frozen=True, slots=True)
class VerdictResult:
    verdict: Verdict
    reasons: tuple[str, ...]
    score: float | None
    checks: tuple[CheckResult, ...]
    #: the score had every scored check its bound left undecided passed (``score`` counts
    #: them failed); the verdict is given only when both scores fall in the same band
    score_best: float | None = None

    @property
    def line(self) -> str:
        """The one line the CLI prints."""
        score = ""
        if self.score is not None:
            best = self.score_best
            score = (f" (score {self.score:.3f} - {best:.3f})"
                     if best is not None and best != self.score else
                     f" (score {self.score:.3f})")
        first = f": {self.reasons[0]}" if self.reasons else ""
        return f"VERDICT {self.verdict.value}{score}{first}"


def _has_faults(sc: ScenarioData) -> bool:
    faults = sc.summary.get("faults")
    return bool(faults) if isinstance(faults, list) else False


def _live_pilot(sc: ScenarioData) -> bool:
    return sc.name.startswith(LIVE_PILOT_PREFIX)


def _applies(rule: Rule, sc: ScenarioData) -> bool:
    if rule.modes and sc.mode not in rule.modes and sc.mode != "unknown":
        return False
    if _live_pilot(sc):  # one run of weeks: calm hours and the provider's outages, both
        return True     # judged (see _pilot_rule_check)
    return not (rule.faults is not None and sc.summary and _has_faults(sc) != rule.faults)


#: a rule for calm scenarios (``faults = false``) reads these on a live pilot with outages:
#: the steady state the rule is about, not the outages the fault rules judge
_PILOT_CALM_METRICS = {"latency_p95_s": "latency_p95_outside_fault_s"}


def _pilot_rule_check(sc: ScenarioData, rule: Rule) -> CheckResult | None:
    """A criteria rule on a live pilot, where it differs from a simulation's: a pilot is
    one run of weeks whose faults are the real provider's outages (reconciled as fault
    windows). Judged as a simulation, any outage dropped every calm rule for the whole
    pilot and the fault rule had nothing to read when no trade came during an outage: no
    real pilot could reach GO. A calm rule reads the pilot outside its outages where the
    summary has that measure; the fault rule is left out (shown, not scored) when no
    trade's detection span overlapped an outage. None: judge it as usual."""
    expr = parse_threshold(rule.expr)
    outages = _has_faults(sc)
    if rule.faults is False and outages and expr.metric in _PILOT_CALM_METRICS:
        outside = _PILOT_CALM_METRICS[expr.metric]
        calm = {**sc.summary, expr.metric: sc.summary.get(outside)}
        bounds = sc.summary.get("latency_bounds")
        if isinstance(bounds, dict):  # and its confidence bounds: those outside the outages
            calm["latency_bounds"] = {**bounds, expr.metric: bounds.get(outside)}
        res = evaluate_threshold(expr, calm)
        bound = res.get("bound") if isinstance(res.get("bound"), dict) else None
        return CheckResult(sc.name, sc.mode, rule.name, expr.expr, "criteria", rule.critical,
                           rule.weight, res["passed"], res["value"],
                           (str(res.get("note") or "") + " (outside the pilot's outages)"
                            ).strip(), bound=bound)
    if rule.faults is True and number(sc.summary.get(expr.metric)) is None:
        why = ("no outage of the feed during the pilot" if not outages else
               "no trade became visible during the pilot's outages, nor was awaiting "
               "detection when one began")
        return CheckResult(sc.name, sc.mode, rule.name, expr.expr, "criteria", rule.critical,
                           rule.weight, None, None, f"{why}: nothing to judge", scored=False)
    return None


def _fault_events(sc: ScenarioData) -> int:
    """The fault events measured in a scenario: every seed's when pooled
    (``fault_events``), else its ``faults`` windows. Seeds that replayed another seed's
    trades and faults (``bound_basis.same_as``) are counted once, as the latency bounds
    count them: ten seeds of one replay are one fault event each, not ten."""
    basis = sc.summary.get("bound_basis")
    if isinstance(basis, dict) and basis.get("same_as"):
        distinct = basis_fault_events(sc)
        if distinct is not None:
            return distinct
    pooled = sc.summary.get("fault_events")
    if isinstance(pooled, int) and not isinstance(pooled, bool) and pooled >= 0:
        return pooled
    faults = sc.summary.get("faults")
    return len([f for f in faults if isinstance(f, dict)]) if isinstance(faults, list) else 0


def _with_fault_events(sc: ScenarioData, check: CheckResult) -> CheckResult:
    """``check`` with the fault events its latency samples come from, when it is a latency
    quantile gate of a scenario with faults whose samples include trades during faults
    (not the ``outside_fault`` quantile); its note says how many events it rests on when
    they are fewer than the independent samples the quantile's upper bound needs."""
    try:
        metric = parse_threshold(check.expr).metric
    except ThresholdError:
        return check
    if metric not in QUANTILE_METRICS or metric.endswith("_outside_fault_s") \
            or not _has_faults(sc) or check.bound is None:
        return check
    if not _live_pilot(sc) and sc.summary.get("latency_bounds") is None:
        return check
    if "outside the pilot's outages" in check.note:
        return check
    events = _fault_events(sc)
    note = check.note
    min_n = number(check.bound.get("min_n"))
    n = number(check.bound.get("n")) or 0
    if n > 0 and min_n is not None and events < min_n:
        note = (f"{note}; rests on {events:,} fault event{'' if events == 1 else 's'}, "
                f"fewer than the {int(min_n):,} independent samples its bound assumes: "
                "trades in one fault are not independent").lstrip("; ")
    return replace(check, fault_events=events, note=note)


def _unusable(sc: ScenarioData) -> str | None:
    """Why this scenario's numbers cannot be trusted, or None."""
    if not sc.summary or sc.status == "missing":
        return "summary missing"
    if sc.status == "harness_error":
        err = str(sc.summary.get("error") or "no detail")
        return f"harness error ({err[:160]})"
    if sc.status != "ok":  # inconclusive: the error says why (a recording cut short, a
        why = sc.summary.get("error")  # range the provider refused even block by block)
        return f"status {sc.status!r}" + (f" ({str(why)[:200]})" if why else "")
    if sc.problems:  # its files are damaged, missing or contradict its summary
        more = f" (and {len(sc.problems) - 1} more)" if len(sc.problems) > 1 else ""
        return f"data problem: {sc.problems[0][:200]}{more}"
    return None


def _rule_check(sc: ScenarioData, rule: Rule) -> CheckResult:
    """A criteria rule on a scenario, evaluated with the experiments' own evaluator."""
    expr = parse_threshold(rule.expr)
    broken = _unusable(sc)
    if broken:
        return CheckResult(sc.name, sc.mode, rule.name, expr.expr, "criteria", rule.critical,
                           rule.weight, None, None, broken)
    if _live_pilot(sc) and rule.faults is not None:
        pilot = _pilot_rule_check(sc, rule)
        if pilot is not None:
            return pilot
    res = evaluate_threshold(expr, sc.summary)
    note = str(res.get("note") or "")
    bound = res.get("bound") if isinstance(res.get("bound"), dict) else None
    return CheckResult(sc.name, sc.mode, rule.name, expr.expr, "criteria", rule.critical,
                       rule.weight, res["passed"], res["value"], note, bound=bound)


def _scenario_threshold(sc: ScenarioData, raw: Any) -> CheckResult | None:
    """A scenario's own threshold as the analysis evaluated it (``{expr, passed, value}``)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("expr"), str):
        return None
    text = raw["expr"]
    scored = sc.mode != "polling"
    try:
        metric: str | None = parse_threshold(text).metric
    except ThresholdError:
        metric = None
    critical = metric in CRITICAL_METRICS and sc.mode == "websocket"
    broken = _unusable(sc)
    if broken:
        return CheckResult(sc.name, sc.mode, text, text, "scenario", critical, 1.0, None, None,
                           broken, scored)
    passed = raw.get("passed") if isinstance(raw.get("passed"), bool) else None
    note = str(raw.get("note") or "")
    if metric is None:  # the analysis cannot have evaluated it: whatever it says, unknown
        passed, note = None, "expression not understood"
    if passed is None and not note:
        note = f"{metric} not measured"
    bound = raw.get("bound") if isinstance(raw.get("bound"), dict) else None
    return CheckResult(sc.name, sc.mode, text, text, "scenario", critical, 1.0, passed,
                       number(raw.get("value")), note, scored, bound)


#: the scenario of a check for a criteria rule that no scenario of the run was for
NO_SCENARIO = "(none in this run)"


def _scope(rule: Rule) -> str:
    modes = " or ".join(rule.modes) if rule.modes else "any"
    faults = {True: " with faults", False: " without faults", None: ""}[rule.faults]
    return f"{modes} scenario{faults}"


def _rules_that_judged_nothing(run: Run, criteria: Criteria,
                               checks: list[CheckResult]) -> list[CheckResult]:
    """An unknown check for each rule of the criteria that applied to no scenario of the
    run. Dropped, a run of one calm websocket scenario was GO with no fault ever injected
    (the fault rule judged nothing, the score stood on the calm checks), and a run of
    fault scenarios only was GO with no calm latency measured: a verdict on data the run
    does not hold."""
    judged = {(c.name, c.expr) for c in checks if c.source == "criteria"}
    out = []
    for rule in criteria.rules:
        expr = parse_threshold(rule.expr).expr
        if (rule.name, expr) in judged:
            continue
        out.append(CheckResult(NO_SCENARIO, "/".join(rule.modes) or "any", rule.name, expr,
                               "criteria", rule.critical, rule.weight, None, None,
                               f"the run has no {_scope(rule)}, so nothing was judged by it; "
                               "run the scenarios the criteria need (the default matrix)"))
    return out


def _fmt(v: float | None, expr: str | None = None) -> str:
    """``v`` (measured for the gate ``expr``) as :func:`shown` writes it beside the gate's
    bound: never rounded onto or across it."""
    if v is None:
        return "n/a"
    limits: list[float] = []
    if expr:
        try:
            limits.append(parse_threshold(expr).value)
        except ThresholdError:
            pass
    return shown(v, limits)


def evaluate(run: Run, criteria: Criteria) -> VerdictResult:
    """The verdict of a run under ``criteria``."""
    checks: list[CheckResult] = []
    seen: set[tuple[str, str]] = set()
    for sc in run.scenarios:
        for rule in criteria.rules:
            if _applies(rule, sc):
                check = _with_fault_events(sc, _rule_check(sc, rule))
                checks.append(check)
                seen.add((sc.name, check.expr))
        raw_list = sc.summary.get("thresholds")
        for raw in raw_list if isinstance(raw_list, list) else []:
            res = _scenario_threshold(sc, raw)
            if res is not None and (sc.name, res.expr) not in seen:
                checks.append(_with_fault_events(sc, res))

    reasons: list[str] = []
    ws = [sc for sc in run.scenarios if sc.mode == "websocket"]
    if ws:  # (without one the verdict says so: nothing of the migration was measured)
        checks.extend(_rules_that_judged_nothing(run, criteria, checks))
    crit_failed = [c for c in checks if c.critical and c.passed is False]
    unknown = [c for c in checks if c.passed is None and (c.critical or c.scored)]
    # a scored check its bound left undecided (measured, too few trades or too close to its
    # limit) decides nothing when the verdict is the same whichever way it falls
    open_scored = [c for c in unknown if not c.critical and _undecided_by_its_bound(c)]
    blocking = [c for c in unknown if not any(c is o for o in open_scored)]
    scored = [c for c in checks if not c.critical and c.scored and c.passed is not None]

    score = _score(scored, open_scored, passed=False)
    score_best = _score(scored, open_scored, passed=True) if open_scored else score

    if crit_failed:
        for c in crit_failed:
            reasons.append(f"Critical gate failed in {c.scenario}: {c.expr} measured "
                           f"{_fmt(c.value, c.expr)}.")
        for c in unknown:
            reasons.append(f"Also not evaluated in {c.scenario}: {c.expr} ({c.note}).")
        return VerdictResult(Verdict.NO_GO, tuple(reasons), score, tuple(checks), score_best)

    for p in run.problems:
        if p.startswith(TWICE):
            reasons.append(f"The run's {p}: it is damaged, and a scenario would be judged "
                           "twice.")
    if any(p.startswith("summary.json") and not p.startswith(TWICE) for p in run.problems):
        reasons.append("The run's summary.json is missing or unreadable: cannot tell whether "
                       "every scenario is present.")
    if not run.scenarios:
        reasons.append("The run has no scenarios: nothing was measured.")
    elif not ws:
        reasons.append("No websocket scenario in the run: the migration was not measured.")
    seen_notes: set[tuple[str, str]] = set()
    for c in blocking:
        key = (c.scenario, c.note)
        if c.scenario == NO_SCENARIO:
            reasons.append(f"No scenario for the criteria's rule '{c.name}' ({c.expr}): "
                           f"{c.note}.")
            continue
        if c.note.startswith(("summary missing", "harness error", "status", "data problem")):
            if key in seen_notes:
                continue
            seen_notes.add(key)
            reasons.append(f"Scenario {c.scenario} has no usable results: {c.note}.")
        else:
            reasons.append(f"Could not evaluate {c.expr} in {c.scenario}: {c.note}.")
    open_reasons = [f"Undecided in {c.scenario}: {c.expr} "
                    f"({c.note.removeprefix('undecided: ')})." for c in open_scored]
    if reasons:  # no score: a partial score would read like a result
        return VerdictResult(Verdict.INCONCLUSIVE, tuple(reasons + open_reasons), None,
                             tuple(checks))
    if score is None or score_best is None:
        reasons.append("No scored check applied to this run: nothing to score.")
        return VerdictResult(Verdict.INCONCLUSIVE, tuple(reasons + open_reasons), None,
                             tuple(checks))

    verdict = _band(score, criteria)
    if open_scored and _band(score_best, criteria) is not verdict:
        reasons.extend(open_reasons)
        reasons.append(
            f"These {len(open_scored)} undecided scored checks decide the verdict: counted "
            f"as failed, the score is {score:.3f} ({verdict.value}); counted as passed, "
            f"{score_best:.3f} ({_band(score_best, criteria).value}).")
        return VerdictResult(Verdict.INCONCLUSIVE, tuple(reasons), None, tuple(checks))

    n_crit = sum(1 for c in checks if c.critical)
    n_pass = sum(1 for c in scored if c.passed)
    n_scored = len(scored) + len(open_scored)
    reasons.append(f"All {n_crit} critical gates passed on {len(ws)} websocket scenarios.")
    reasons.append(
        f"Score {score:.3f}: {n_pass} of {n_scored} scored checks passed "
        f"(GO needs {criteria.go_score:.2f}, MARGINAL {criteria.marginal_score:.2f}).")
    if open_scored:
        reasons.append(
            f"{len(open_scored)} scored checks were undecided by their bounds and are "
            f"counted as failed; counted as passed, the score would be {score_best:.3f}: "
            f"{verdict.value} either way. More simulated time would decide them (below).")
    failed: dict[str, list[str]] = {}
    for c in scored:
        if not c.passed:
            failed.setdefault(c.scenario, []).append(f"{c.expr} (measured {_fmt(c.value, c.expr)})")
    for scenario, items in failed.items():
        reasons.append(f"Failed in {scenario}: {'; '.join(items)}.")
    reasons.extend(open_reasons)
    return VerdictResult(verdict, tuple(reasons), score, tuple(checks), score_best)


def _undecided_by_its_bound(check: CheckResult) -> bool:
    """Measured, but its confidence bound straddles the limit (or too few trades for
    one): :mod:`experiments.thresholds` notes such a check ``undecided: ...``."""
    return check.note.startswith("undecided")


def _score(scored: list[CheckResult], open_scored: list[CheckResult], *,
           passed: bool) -> float | None:
    """The weighted share of passed scored checks, the undecided ones counted as
    ``passed``."""
    total = sum(c.weight for c in scored) + sum(c.weight for c in open_scored)
    if total <= 0:
        return None
    won = sum(c.weight for c in scored if c.passed)
    if passed:
        won += sum(c.weight for c in open_scored)
    return won / total


def _band(score: float, criteria: Criteria) -> Verdict:
    if score >= criteria.go_score:
        return Verdict.GO
    if score >= criteria.marginal_score:
        return Verdict.MARGINAL
    return Verdict.NO_GO
