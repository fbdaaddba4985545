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
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports.cost import bench_results_dir

__all__ = ["BenchFigure", "BenchResult", "Performance", "default_bench_dirs",
           "load_performance"]

NO_RESULTS = "no benchmark results found; run make bench"


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


@dataclass(frozen=True, slots=True)
class Performance:
    results: tuple[BenchResult, ...]
    unreadable: tuple[str, ...]
    searched: tuple[str, ...]

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
        text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def _own(doc: dict[str, Any], path: Path) -> BenchResult:
    figs = []
    for f in doc["figures"]:
        met = f.get("met")
        figs.append(BenchFigure(name=str(f["name"]),
                                value=_fmt(f.get("value"), f.get("unit") or ""),
                                target=str(f.get("target") or ""),
                                met=met if isinstance(met, bool) else None))
    return BenchResult(title=str(doc.get("title") or doc.get("benchmark") or path.stem),
                       source=str(path), created=str(doc.get("created") or ""),
                       git_sha=str(doc.get("git_sha") or ""),
                       command=str(doc.get("command") or ""), figures=tuple(figs))


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
    return BenchResult(title="pytest-benchmark (time per call)", source=str(path),
                       created=str(doc.get("datetime") or ""),
                       git_sha=str(commit.get("id") or "")[:12],
                       command="make bench", figures=tuple(figs))


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
