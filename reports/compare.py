"""Compare two runs metric by metric (pytest-benchmark's ``compare`` as the model).

For every scenario present in both runs and every metric, the change from A to B; a
change in the bad direction beyond the tolerance is a regression. For missed,
duplicates and phantoms any increase is a regression.
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.thresholds import metric_value
from reports.criteria import Criteria
from reports.load import Run
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


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    metric: str
    label: str
    a: float | None
    b: float | None
    change: float | None
    change_pct: float | None
    status: str  # "regression" / "better" / "same" / "unknown"


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

    @property
    def regressions(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.status == "regression")


def _row(scenario: str, metric: str, label: str, better: str, strict: bool,
         a: float | None, b: float | None, tolerance: float) -> Row:
    if a is None or b is None:
        return Row(scenario, metric, label, a, b, None, None, "unknown")
    change = b - a
    pct = change / abs(a) if a else (0.0 if change == 0 else None)
    worse = change > 0 if better == "lower" else change < 0
    if change == 0:
        status = "same"
    elif worse:
        big = strict or pct is None or abs(pct) > tolerance
        status = "regression" if big else "same"
    else:
        status = "better" if (pct is None or abs(pct) > tolerance or strict) else "same"
    return Row(scenario, metric, label, a, b, change, pct, status)


def compare_runs(run_a: Run, run_b: Run, criteria: Criteria, *,
                 tolerance: float = 0.10) -> Comparison:
    names_a = [s.name for s in run_a.scenarios]
    names_b = [s.name for s in run_b.scenarios]
    rows = []
    for name in names_a:
        if name not in names_b:
            continue
        sa, sb = run_a.scenario(name), run_b.scenario(name)
        for metric, label, better, strict in METRICS:
            a = metric_value(sa.summary, metric) if sa.ok else None
            b = metric_value(sb.summary, metric) if sb.ok else None
            rows.append(_row(name, metric, label, better, strict, a, b, tolerance))
    return Comparison(
        run_a=run_a.run_id,
        run_b=run_b.run_id,
        verdict_a=evaluate(run_a, criteria).verdict,
        verdict_b=evaluate(run_b, criteria).verdict,
        rows=tuple(rows),
        only_a=tuple(n for n in names_a if n not in names_b),
        only_b=tuple(n for n in names_b if n not in names_a),
        tolerance=tolerance,
    )


def _pct(p: float | None) -> str:
    return "-" if p is None else f"{100 * p:+.1f} %"


def text_table(cmp: Comparison) -> str:
    """The comparison as a plain-text table (what the CLI prints)."""
    head = ("scenario", "metric", "A", "B", "change", "%", "")
    lines = [head]
    for r in cmp.rows:
        flag = {"regression": "REGRESSION", "better": "better", "unknown": "?"}.get(r.status, "")
        change = "-" if r.change is None else f"{r.change:+.3g}"
        lines.append((r.scenario, r.label, fmt_num(r.a), fmt_num(r.b), change, _pct(r.change_pct),
                      flag))
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    out = [f"A: {cmp.run_a} ({cmp.verdict_a.value})  B: {cmp.run_b} ({cmp.verdict_b.value})"]
    for row in lines:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if cmp.only_a:
        out.append("only in A: " + ", ".join(cmp.only_a))
    if cmp.only_b:
        out.append("only in B: " + ", ".join(cmp.only_b))
    out.append(f"{len(cmp.regressions)} regression(s) (tolerance {100 * cmp.tolerance:g} %)")
    return "\n".join(out)


def render_compare(cmp: Comparison) -> str:
    return environment().get_template("compare.html.j2").render(cmp=cmp, pct=_pct)
