"""Run many scenarios into one run directory, ``--jobs N`` at a time, with a live progress bar.

Local execution uses asyncio (each scenario is two subprocesses plus a little waiting, so a
single event loop drives N of them). ``executor="dask"`` hands each scenario to a Dask
distributed client (only when dask is importable; it is not a dependency).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from experiments.analysis import empty_summary
from experiments.runner import Progress as ScenarioProgress
from experiments.runner import RunnerOptions, run_scenario, run_scenario_sync
from experiments.scenario import Scenario
from experiments.store import (
    create_run,
    point_latest,
    started_now,
    write_manifest,
    write_run_summary,
)

__all__ = ["MatrixError", "MatrixResult", "dask_available", "run_matrix", "summary_table"]


class MatrixError(ValueError):
    """Bad matrix options (duplicate scenario names, unavailable executor)."""


@dataclass(frozen=True, slots=True)
class MatrixResult:
    run_dir: Path
    summaries: list[dict[str, Any]]


def dask_available() -> bool:
    return importlib.util.find_spec("dask") is not None and \
        importlib.util.find_spec("distributed") is not None


class _Bar:
    def __init__(self, console: Console | None, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[scenario]:<24}"),
            BarColumn(),
            TextColumn("{task.fields[sim]}"),
            TextColumn("trades {task.fields[trades]:>5}"),
            TextColumn("{task.fields[phase]}"),
            TimeElapsedColumn(),
            console=console, disable=not enabled, transient=False)
        self.tasks: dict[str, TaskID] = {}

    def add(self, scenario: Scenario) -> None:
        self.tasks[scenario.name] = self.progress.add_task(
            scenario.name, total=scenario.sim_duration_s, scenario=scenario.name,
            sim=f"0/{scenario.sim_duration_s:.0f} sim s", trades=0, phase="queued")

    def update(self, p: ScenarioProgress) -> None:
        self.progress.update(self.tasks[p.scenario], completed=p.sim_s,
                             sim=f"{p.sim_s:.0f}/{p.sim_total_s:.0f} sim s",
                             trades=p.trades_seen, phase=p.phase)


async def _run_local(scenarios: Sequence[Scenario], run_dir: Path, jobs: int, bar: _Bar,
                     cache_dir: Path) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(jobs)
    options = RunnerOptions(cache_dir=cache_dir, on_progress=bar.update)

    async def one(s: Scenario) -> dict[str, Any]:
        async with sem:
            return await run_scenario(s, run_dir / s.name, options)

    return list(await asyncio.gather(*(one(s) for s in scenarios)))


def _run_dask(scenarios: Sequence[Scenario], run_dir: Path, jobs: int,
              cache_dir: Path) -> list[dict[str, Any]]:
    from dask.distributed import Client, LocalCluster

    options = RunnerOptions(cache_dir=cache_dir)
    with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True) as cluster, \
            Client(cluster) as client:
        futures = [client.submit(run_scenario_sync, s, run_dir / s.name, options, pure=False)
                   for s in scenarios]
        return list(client.gather(futures))


def run_matrix(scenarios: Sequence[Scenario], *, out: Path, command: list[str], quick: bool,
               jobs: int = 1, executor: str = "local", console: Console | None = None,
               progress: bool = True) -> MatrixResult:
    """Run every scenario into a new ``out/<run-id>/`` and point ``out/latest`` at it."""
    names = [s.name for s in scenarios]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MatrixError(f"scenario names must be unique in one run: {', '.join(dupes)}")
    if jobs < 1:
        raise MatrixError("--jobs must be at least 1")
    if executor == "dask" and not dask_available():
        raise MatrixError("--executor dask needs dask[distributed] installed "
                          "(pip install 'dask[distributed]')")
    if executor not in ("local", "dask"):
        raise MatrixError(f"unknown executor {executor!r} (local or dask)")
    started = started_now()
    run_dir = create_run(out)
    cache_dir = out / ".cache" / "recordings"
    if quick:
        scenarios = [s.quickened() for s in scenarios]
    bar = _Bar(console, progress and executor == "local")
    for s in scenarios:
        bar.add(s)
    summaries: list[dict[str, Any]] | None = None
    try:
        if executor == "dask":
            summaries = _run_dask(scenarios, run_dir, jobs, cache_dir)
        else:
            with bar.progress:
                summaries = asyncio.run(_run_local(scenarios, run_dir, jobs, bar, cache_dir))
    finally:
        write_manifest(run_dir, scenarios=[_scenario_entry(s) for s in scenarios],
                       command=command, started=started, quick=quick, jobs=jobs,
                       executor=executor)
        if summaries is None:  # interrupted: keep whatever each scenario managed to write
            summaries = [empty_summary({"scenario": s.name, "status": "harness_error",
                                        "error": "run interrupted"}) for s in scenarios]
        write_run_summary(run_dir, summaries)
        point_latest(run_dir)
    return MatrixResult(run_dir, summaries)


def _scenario_entry(s: Scenario) -> dict[str, Any]:
    return {"name": s.name, "description": s.description, "mode": s.mode, "seed": s.seed,
            "speed": s.speed, "sim_duration_s": s.sim_duration_s,
            "recording": s.recording, "profile": s.profile}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_table(summaries: Sequence[dict[str, Any]], title: str = "") -> Table:
    """The per-scenario table printed at the end of a run."""
    table = Table(title=title or None, show_lines=False)
    for col, justify in (("scenario", "left"), ("mode", "left"), ("speed", "right"),
                         ("status", "left"), ("trades", "right"), ("det", "right"),
                         ("late", "right"), ("miss", "right"), ("dup", "right"),
                         ("phan", "right"), ("retr", "right"), ("p50 s", "right"),
                         ("p95 s", "right"), ("max s", "right"), ("expl/h", "right"),
                         ("uptime", "right"), ("cover", "right"), ("thresholds", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for s in summaries:
        th = s.get("thresholds") or []
        ok = sum(1 for t in th if t.get("passed") is True)
        bad = [t["expr"] for t in th if t.get("passed") is False]
        unknown = sum(1 for t in th if t.get("passed") is None)
        verdict = f"{ok}/{len(th)} pass"
        if bad:
            verdict += "; FAIL " + ", ".join(bad)
        if unknown:
            verdict += f"; {unknown} unknown"
        status = s.get("status") or "-"
        style = {"ok": "green", "harness_error": "red", "inconclusive": "yellow"}.get(status, "")
        table.add_row(
            s.get("scenario") or "-", s.get("mode") or "-", _fmt(s.get("speed"), 0),
            f"[{style}]{status}[/]" if style else status, _fmt(s.get("trades")),
            _fmt(s.get("detected")), _fmt(s.get("late")), _fmt(s.get("missed")),
            _fmt(s.get("duplicates")), _fmt(s.get("phantoms")), _fmt(s.get("retracted")),
            _fmt(s.get("latency_p50_s")), _fmt(s.get("latency_p95_s")),
            _fmt(s.get("latency_max_s")), _fmt(s.get("explorer_calls_per_hour"), 0),
            _fmt(s.get("uptime")), _fmt(s.get("coverage")), verdict)
    return table
