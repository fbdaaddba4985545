"""The report's performance section: the latest benchmark results, with the file each came
from.

Two kinds of file are read, found under the benchmark directories (by default
``benchmarks/results`` - or ``$REPORTS_BENCH_RESULTS`` - and the repository's
``.benchmarks``):

- the benchmarks' own results (``benchmarks/results/<name>.json``, written by
  ``benchmarks/bench_results.py``): ``{"benchmark", "title", "command", "created",
  "git_sha", "figures": [{"name", "value", "unit", "target", "met"}]}``, one per benchmark;
- pytest-benchmark's saved runs (``--benchmark-autosave``: ``{"machine_info",
  "commit_info", "datetime", "benchmarks": [{"name", "stats": {...}}]}``): only the newest
  file is shown, as min / median / max per benchmark.

No file: the section says so ("no benchmark results found; run make bench"). A file that
cannot be read is skipped and named in the section, never a crash.

The latency budget table (:func:`load_budget`): each stage's p50 / p99 and share, end to end
against its targets, the loopback floor and what the harness adds, from the run when one of
its scenarios carries ``latency_stages`` (its summary; not on the virtual clock), else from
``benchmarks/results/latency_budget.json`` - the table names where it came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.thresholds import shown
from reports.cost import bench_results_dir
from reports.load import VIRTUAL

__all__ = ["BUDGET_FILE", "BenchFigure", "BenchResult", "BudgetTable", "Performance",
           "default_bench_dirs", "load_budget", "load_performance"]

NO_RESULTS = "no benchmark results found; run make bench"
BUDGET_FILE = "latency_budget.json"  # written by benchmarks/test_latency_budget_bench.py
#: end-to-end targets of the latency budget (issue 11), ms
BUDGET_P50_MS, BUDGET_P99_MS = 2.0, 20.0


@dataclass(frozen=True, slots=True)
class BenchFigure:
    name: str
    value: str
    target: str
    met: bool | None


@dataclass(frozen=True, slots=True)
class BenchResult:
    title: str
    source: str
    created: str
    git_sha: str
    command: str
    figures: tuple[BenchFigure, ...]
    #: the CPU and core count the file names ("" when it names none)
    machine: str = ""


@dataclass(frozen=True, slots=True)
class BudgetTable:
    """The latency budget as the report shows it (values already formatted)."""

    source: str  # "run <id>, scenario <name>" or the results file
    trades: int
    e2e_p50: str
    e2e_p99: str
    p50_met: bool | None
    p99_met: bool | None
    #: (stage, p50, p99, share at p50, share at p99)
    stages: tuple[tuple[str, str, str, str, str], ...]
    #: (what, p50, p99, note)
    overhead: tuple[tuple[str, str, str, str], ...]
    floor: str  # "" when not measured
    floor_source: str


@dataclass(frozen=True, slots=True)
class Performance:
    results: tuple[BenchResult, ...]
    unreadable: tuple[str, ...]
    searched: tuple[str, ...]
    budget: BudgetTable | None = None

    @property
    def empty_note(self) -> str:
        return NO_RESULTS


def default_bench_dirs() -> list[Path]:
    return [bench_results_dir(), Path(__file__).resolve().parents[1] / ".benchmarks"]


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float):
        text = shown(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _machine(cpu: Any, cpus: Any) -> str:
    parts = [str(cpu).strip()] if cpu and str(cpu).strip() else []
    if isinstance(cpus, int) and not isinstance(cpus, bool) and cpus > 0:
        parts.append(f"{cpus} CPUs")
    return ", ".join(parts)


def _own(doc: dict[str, Any], path: Path) -> BenchResult:
    figs = []
    m = _dict(doc.get("machine"))
    for f in doc["figures"]:
        met = f.get("met")
        figs.append(BenchFigure(name=str(f["name"]),
                                value=_fmt(f.get("value"), f.get("unit") or ""),
                                target=str(f.get("target") or ""),
                                met=met if isinstance(met, bool) else None))
    return BenchResult(title=str(doc.get("title") or doc.get("benchmark") or path.stem),
                       source=str(path), created=str(doc.get("created") or ""),
                       git_sha=str(doc.get("git_sha") or ""),
                       command=str(doc.get("command") or ""), figures=tuple(figs),
                       machine=_machine(m.get("processor"), m.get("cpus")))


def _pytest_benchmark(doc: dict[str, Any], path: Path) -> BenchResult:
    figs = []
    for b in doc["benchmarks"]:
        st = b.get("stats") or {}
        unit = "s"
        figs.append(BenchFigure(
            name=str(b.get("fullname") or b.get("name")),
            value=(f"min {_fmt(st.get('min'), unit)}, median {_fmt(st.get('median'), unit)}, "
                   f"max {_fmt(st.get('max'), unit)} ({_fmt(st.get('rounds'))} rounds)"),
            target="", met=None))
    commit = doc.get("commit_info") or {}
    info = _dict(doc.get("machine_info"))
    cpu = _dict(info.get("cpu"))
    return BenchResult(title="pytest-benchmark (time per call)", source=str(path),
                       created=str(doc.get("datetime") or ""),
                       git_sha=str(commit.get("id") or "")[:12],
                       command="make bench", figures=tuple(figs),
                       machine=_machine(cpu.get("brand_raw") or info.get("processor"),
                                        cpu.get("count")))


def _json_files(dirs: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        if d.is_dir():
            out += sorted(p for p in d.rglob("*.json") if p.is_file())
    return out


def load_performance(dirs: Sequence[Path] | None = None) -> Performance:
    """The benchmark results found under ``dirs`` (default :func:`default_bench_dirs`)."""
    dirs = list(dirs) if dirs is not None else default_bench_dirs()
    own: list[BenchResult] = []
    newest: tuple[float, BenchResult] | None = None
    bad: list[str] = []
    for path in _json_files(dirs):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(doc, dict) and isinstance(doc.get("figures"), list):
                own.append(_own(doc, path))
            elif isinstance(doc, dict) and isinstance(doc.get("benchmarks"), list):
                mtime = path.stat().st_mtime
                if newest is None or mtime > newest[0]:
                    newest = (mtime, _pytest_benchmark(doc, path))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            bad.append(str(path))
    results = own + ([newest[1]] if newest is not None else [])
    return Performance(results=tuple(results), unreadable=tuple(bad),
                       searched=tuple(str(d) for d in dirs))


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f} ms"


def _floor_text(floor: Any) -> str:
    if not isinstance(floor, dict) or floor.get("rtt_p50_ms") is None:
        return ""
    return (f"round trip p50 {_ms(floor['rtt_p50_ms'])}, p99 {_ms(floor.get('rtt_p99_ms'))}; "
            f"one way (half) p50 {_ms(floor.get('one_way_p50_ms'))}")


def _budget_table(b: dict[str, Any], source: str, floor: Any, floor_source: str
                  ) -> BudgetTable:
    p50, p99 = b.get("e2e_p50_ms"), b.get("e2e_p99_ms")
    stages = tuple((str(r["stage"]), _ms(r.get("p50_ms")), _ms(r.get("p99_ms")),
                    f"{float(r.get('share_p50') or 0.0):.0%}",
                    f"{float(r.get('share_p99') or 0.0):.0%}") for r in b["stages"])
    overhead = tuple((str(o.get("name")), _ms(o.get("p50_ms")), _ms(o.get("p99_ms")),
                      str(o.get("note") or "")) for o in b.get("overhead") or [])
    return BudgetTable(
        source=source, trades=int(b.get("trades") or 0), e2e_p50=_ms(p50), e2e_p99=_ms(p99),
        p50_met=None if p50 is None else float(p50) <= BUDGET_P50_MS,
        p99_met=None if p99 is None else float(p99) <= BUDGET_P99_MS,
        stages=stages, overhead=overhead, floor=_floor_text(floor),
        floor_source=floor_source if _floor_text(floor) else "")


def load_budget(run: Any | None = None, dirs: Sequence[Path] | None = None
                ) -> BudgetTable | None:
    """The latency budget: from ``run`` (a :class:`reports.load.Run`) when a scenario's
    summary carries ``latency_stages`` (never from a run on the virtual clock), else from
    :data:`BUDGET_FILE` in ``dirs``; the loopback floor from that file either way. None when
    neither has one (or the file cannot be read)."""
    doc: dict[str, Any] | None = None
    path: Path | None = None
    for d in dirs if dirs is not None else default_bench_dirs():
        candidate = Path(d) / BUDGET_FILE
        try:
            loaded = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(loaded, dict) and isinstance(loaded.get("budget"), dict):
            doc, path = loaded, candidate
            break
    floor = doc.get("floor") if doc is not None else None
    floor_source = str(path) if path is not None else ""
    manifest = getattr(run, "manifest", None)
    virtual = (isinstance(manifest, dict) and manifest.get("clock") == VIRTUAL) \
        or getattr(run, "scenario_clock", None) == VIRTUAL  # a run whose manifest is gone
    try:
        # on the virtual clock computing costs no time: the stages are not a speed-1 budget
        for sc in () if virtual else getattr(run, "scenarios", ()) or ():
            b = sc.summary.get("latency_stages")
            if isinstance(b, dict) and b.get("stages"):
                return _budget_table(b, f"run {getattr(run, 'run_id', '?')}, scenario "
                                        f"{sc.name}", floor, floor_source)
        if doc is not None and path is not None:
            return _budget_table(doc["budget"], str(path), floor, floor_source)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return None
