"""Compare two runs metric by metric (pytest-benchmark's ``compare`` as the model).

For every scenario present in both runs and every metric, the change from A to B; a
change in the bad direction beyond the tolerance is a regression. For missed,
duplicates and phantoms any increase is a regression. A change that does not show at the
precision the numbers are shown with (:func:`experiments.thresholds.shown`: three
significant digits, counts in full) is no change, neither a regression nor better: the
table and the list would say "0.167 -> 0.167" (a missed % whose count stayed 1 while the
number of trades moved by one, a per-hour count over a second more of simulated time),
and nothing the harness measures is that precise. A count's increase always shows.
What stops B from being measured at all is a regression too: a scenario ok in A and not
ok in B (harness error, inconclusive, missing), a scenario only in A, and a worse verdict
(GO -> MARGINAL, NO-GO or INCONCLUSIVE; MARGINAL -> INCONCLUSIVE or NO-GO; INCONCLUSIVE
-> NO-GO).

Only like is compared with like:

- counts (missed, late, reconnects, fallback seconds, ...) are sums over the simulated
  time, and pooling many seeds sums them over the seeds: when the two scenarios differ in
  seeds or simulated time they are compared per simulated hour (``missed/h``);
- on the virtual clock computing costs no time, so CPU and memory are not measured there:
  ``not comparable (virtual clock)``; a latency in virtual time is a protocol latency, not
  comparable with one on the real clock.

The output warns when the runs differ in clock or seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from experiments.thresholds import metric_value, number, shown
from reports.criteria import Criteria
from reports.load import NOT_MEASURED_VIRTUAL, VIRTUAL, Run, ScenarioData, run_clock
from reports.render import environment, fmt_num
from reports.verdict import Verdict, evaluate

__all__ = ["METRICS", "Comparison", "Row", "compare_runs", "render_compare", "text_table"]

# (metric, label, "lower" or "higher" is better, strict: any worsening is a regression)
METRICS: tuple[tuple[str, str, str, bool], ...] = (
    ("missed", "missed", "lower", True),
    ("missed_pct", "missed %", "lower", True),
    ("duplicates", "duplicates", "lower", True),
    ("phantoms", "phantoms", "lower", True),
    ("late", "late", "lower", False),
    ("latency_p50_s", "latency p50 s", "lower", False),
    ("latency_p95_s", "latency p95 s", "lower", False),
    ("latency_p99_s", "latency p99 s", "lower", False),
    ("latency_max_s", "latency max s", "lower", False),
    ("api_calls_per_hour", "API calls/h", "lower", False),
    ("explorer_calls_per_hour", "explorer calls/h", "lower", False),
    ("uptime", "uptime", "higher", False),
    ("coverage", "coverage", "higher", False),
    ("reconnects", "reconnects", "lower", False),
    ("fallback_s", "fallback s", "lower", False),
    ("cpu_s_per_hour", "CPU s/h", "lower", False),
    ("rss_peak_mb", "RSS MB", "lower", False),
)
#: sums over the simulated time (and over the seeds, when pooled: experiments/seeds.py)
COUNTS = frozenset({"missed", "duplicates", "phantoms", "late", "reconnects", "fallback_s"})
LATENCIES = frozenset({"latency_p50_s", "latency_p95_s", "latency_p99_s", "latency_max_s"})
#: a verdict lower than another's is a regression; INCONCLUSIVE is below a pass
_RANK = {Verdict.GO: 3, Verdict.MARGINAL: 2, Verdict.INCONCLUSIVE: 1, Verdict.NO_GO: 0}


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    metric: str
    label: str
    a: float | None
    b: float | None
    change: float | None
    change_pct: float | None
    status: str  # "regression" / "better" / "same" / "unknown" / "not comparable"
    note: str = ""  # why it is not comparable


@dataclass(frozen=True, slots=True)
class Comparison:
    run_a: str
    run_b: str
    verdict_a: Verdict
    verdict_b: Verdict
    rows: tuple[Row, ...]
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    tolerance: float
    #: scenarios ok in A and not ok in B, one line each
    status_drops: tuple[str, ...] = ()
    #: the two runs differ in clock, seeds or simulated time
    warnings: tuple[str, ...] = ()

    @property
    def metric_regressions(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.status == "regression")

    @property
    def verdict_drop(self) -> str | None:
        if _RANK[self.verdict_b] < _RANK[self.verdict_a]:
            return f"verdict dropped from {self.verdict_a.value} to {self.verdict_b.value}"
        return None

    @property
    def regressions(self) -> tuple[str, ...]:
        """Every regression, one line each: the verdict, the scenarios, the metrics."""
        lines = [self.verdict_drop] if self.verdict_drop else []
        lines += self.status_drops
        lines += [f"{n}: only in A (missing from B)" for n in self.only_a]
        lines += [f"{r.scenario}: {r.label} {fmt_num(r.a)} -> {fmt_num(r.b)} "
                  f"({_pct(r.change_pct)})" for r in self.metric_regressions]
        return tuple(lines)


def _row(scenario: str, metric: str, label: str, better: str, strict: bool,
         a: float | None, b: float | None, tolerance: float) -> Row:
    if a is None or b is None:
        return Row(scenario, metric, label, a, b, None, None, "unknown")
    change = b - a
    pct = change / abs(a) if a else (0.0 if change == 0 else None)
    worse = change > 0 if better == "lower" else change < 0
    if change == 0 or shown(a) == shown(b):  # no change at the precision shown
        status = "same"
    elif worse:
        big = strict or pct is None or abs(pct) > tolerance
        status = "regression" if big else "same"
    else:
        status = "better" if (pct is None or abs(pct) > tolerance or strict) else "same"
    return Row(scenario, metric, label, a, b, change, pct, status)


def _seeds(summary: Mapping[str, Any]) -> tuple[Any, ...]:
    """The seeds a scenario's summary was run (and pooled) under: ``seeds`` or ``seed``."""
    seeds = summary.get("seeds")
    if isinstance(seeds, list) and seeds:
        return tuple(seeds)
    return (summary.get("seed"),)


def _seeds_text(seeds: tuple[Any, ...]) -> str:
    return ", ".join("?" if s is None else str(s) for s in seeds)


def _per_hour(summary: Mapping[str, Any], metric: str) -> float | None:
    value, seconds = metric_value(summary, metric), number(summary.get("sim_duration_s"))
    return None if value is None or not seconds else value / (seconds / 3600.0)


def _scenario_rows(name: str, sa: ScenarioData, sb: ScenarioData, clocks: tuple[str, str],
                   tolerance: float, warnings: list[str]) -> list[Row]:
    seeds_a, seeds_b = _seeds(sa.summary), _seeds(sb.summary)
    time_a = number(sa.summary.get("sim_duration_s"))
    time_b = number(sb.summary.get("sim_duration_s"))
    # pooling sums counts over seeds: per simulated hour unless both pooled the same time
    per_hour = len(seeds_a) != len(seeds_b) or time_a != time_b
    both_ok = sa.ok and sb.ok
    if both_ok and seeds_a != seeds_b:
        warnings.append(f"{name}: seeds differ (A: {_seeds_text(seeds_a)}; "
                        f"B: {_seeds_text(seeds_b)})"
                        + ("; counts compared per simulated hour" if per_hour else ""))
    elif both_ok and per_hour:
        warnings.append(f"{name}: simulated time differs (A {fmt_num(time_a)} s, "
                        f"B {fmt_num(time_b)} s); counts compared per simulated hour")
    virtual = VIRTUAL in clocks
    rows = []
    for metric, label, better, strict in METRICS:
        if metric in NOT_MEASURED_VIRTUAL and virtual:
            a = None if clocks[0] == VIRTUAL or not sa.ok else metric_value(sa.summary, metric)
            b = None if clocks[1] == VIRTUAL or not sb.ok else metric_value(sb.summary, metric)
            rows.append(Row(name, metric, label, a, b, None, None, "not comparable",
                            "not comparable (virtual clock)"))
            continue
        value = metric_value
        if metric in COUNTS and per_hour:
            value, label = _per_hour, f"{label}/h"
        a = value(sa.summary, metric) if sa.ok else None
        b = value(sb.summary, metric) if sb.ok else None
        if metric in LATENCIES and virtual and clocks[0] != clocks[1]:
            rows.append(Row(name, metric, label, a, b, None, None, "not comparable",
                            f"not comparable (A {clocks[0]} clock, B {clocks[1]} clock)"))
            continue
        rows.append(_row(name, metric, label, better, strict, a, b, tolerance))
    return rows


def compare_runs(run_a: Run, run_b: Run, criteria: Criteria, *,
                 tolerance: float = 0.10) -> Comparison:
    names_a = [s.name for s in run_a.scenarios]
    names_b = [s.name for s in run_b.scenarios]
    clocks = (run_clock(run_a), run_clock(run_b))
    warnings: list[str] = []
    if clocks[0] != clocks[1]:
        warnings.append(f"A ran on the {clocks[0]} clock, B on the {clocks[1]} clock: "
                        "latency, CPU and memory are not comparable")
    rows: list[Row] = []
    drops = []
    for name in names_a:
        if name not in names_b:
            continue
        sa, sb = run_a.scenario(name), run_b.scenario(name)
        if sa.ok and not sb.ok:
            error = str(sb.summary.get("error") or "")
            drops.append(f"{name}: ok in A, {sb.status} in B"
                         + (f" ({error[:160]})" if error else ""))
        rows += _scenario_rows(name, sa, sb, clocks, tolerance, warnings)
    return Comparison(
        run_a=run_a.run_id,
        run_b=run_b.run_id,
        verdict_a=evaluate(run_a, criteria).verdict,
        verdict_b=evaluate(run_b, criteria).verdict,
        rows=tuple(rows),
        only_a=tuple(n for n in names_a if n not in names_b),
        only_b=tuple(n for n in names_b if n not in names_a),
        tolerance=tolerance,
        status_drops=tuple(drops),
        warnings=tuple(warnings),
    )


def _pct(p: float | None) -> str:
    """A relative change, one decimal; a change that small rounds to would read "+0.0 %"
    beside two different numbers: its own digits then (``+0.0001 %``)."""
    if p is None:
        return "-"
    text = f"{100 * p:+.1f}"
    if p and float(text) == 0:
        text = ("+" if p > 0 else "-") + shown(abs(100 * p))
    return f"{text} %"


def text_table(cmp: Comparison) -> str:
    """The comparison as a plain-text table (what the CLI prints)."""
    head = ("scenario", "metric", "A", "B", "change", "%", "")
    lines = [head]
    for r in cmp.rows:
        flag = {"regression": "REGRESSION", "better": "better", "unknown": "?",
                "not comparable": r.note}.get(r.status, "")
        change = "-" if r.change is None else f"{r.change:+.3g}"
        lines.append((r.scenario, r.label, fmt_num(r.a), fmt_num(r.b), change, _pct(r.change_pct),
                      flag))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    out = [f"A: {cmp.run_a} ({cmp.verdict_a.value})  B: {cmp.run_b} ({cmp.verdict_b.value})"]
    out += [f"warning: {w}" for w in cmp.warnings]
    for row in lines:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if cmp.only_a:
        out.append("only in A: " + ", ".join(cmp.only_a))
    if cmp.only_b:
        out.append("only in B: " + ", ".join(cmp.only_b))
    regressions = cmp.regressions
    out.append(f"{len(regressions)} regression(s) (tolerance {100 * cmp.tolerance:g} %)"
               + (":" if regressions else ""))
    out += [f"  - {line}" for line in regressions]
    return "\n".join(out)


def render_compare(cmp: Comparison) -> str:
    return environment().get_template("compare.html.j2").render(cmp=cmp, pct=_pct)
