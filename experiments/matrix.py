"""Run many scenarios (x seeds) into one run directory, ``--jobs N`` at a time.

A *unit* is one (scenario, seed) run. Without ``seeds`` a unit is the scenario as written,
stored in ``<run>/<scenario>/`` (the layout of a single run). With ``seeds`` every scenario
runs once per seed (:func:`experiments.seeds.reseed`) into ``<run>/<scenario>/seeds/<s>/``
and :func:`experiments.seeds.pool` writes the pooled summary into ``<run>/<scenario>/``.

Clocks: ``real`` runs the simulator and the monitor as processes (asyncio drives N units,
each two subprocesses); ``virtual`` runs both in one process on a looptime loop
(:mod:`experiments.virtual`), ``--jobs`` processes at a time.

Executors: ``local``; ``dask`` (a ``LocalCluster`` of ``--jobs`` workers) or
``dask://HOST:PORT`` (an existing Dask scheduler). Each unit is one Dask task; the results
come back into the same store and report, so workers must see the run directory at the
same path (a shared file system), and have this project installed (the ``dask`` extra).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import json
import logging
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from experiments.analysis import empty_summary
from experiments.orphans import die_with_parent
from experiments.runner import HarnessError, RunnerOptions, run_scenario, run_scenario_sync
from experiments.runner import Progress as ScenarioProgress
from experiments.scenario import MAX_JOBS, MAX_SEEDS, Scenario
from experiments.seeds import pool, reseed
from experiments.store import (
    create_run,
    point_latest,
    started_now,
    write_manifest,
    write_run_summary,
)
from polyvocab.child_start import stops_held

__all__ = ["MatrixError", "MatrixResult", "dask_available", "run_matrix", "summary_table"]

log = logging.getLogger("experiments.matrix")


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
        self.units: dict[str, int | None] = {}

    def add(self, scenario: Scenario, units: int | None = None) -> None:
        """A bar per scenario: simulated seconds (real clock) or units done (virtual)."""
        self.units[scenario.name] = units
        self.tasks[scenario.name] = self.progress.add_task(
            scenario.name, total=units if units else scenario.sim_duration_s,
            scenario=scenario.name, sim=f"0/{scenario.sim_duration_s:.0f} sim s"
            if not units else f"0/{units} runs", trades=0, phase="queued")

    def done(self, name: str) -> None:
        """One unit of ``name`` finished (virtual clock: runs are not observed inside)."""
        self.progress.advance(self.tasks[name])
        task = self.progress.tasks[self.tasks[name]]
        self.progress.update(self.tasks[name], phase="running",
                             sim=f"{task.completed:.0f}/{self.units[name]} runs")

    def update(self, p: ScenarioProgress) -> None:
        self.progress.update(self.tasks[p.scenario], completed=p.sim_s,
                             sim=f"{p.sim_s:.0f}/{p.sim_total_s:.0f} sim s",
                             trades=p.trades_seen, phase=p.phase)


@dataclass(frozen=True, slots=True)
class Unit:
    """One (scenario, seed) run and the directory it writes."""

    scenario: Scenario
    seed: int | None
    sdir: Path


def run_unit(unit: Unit, options: RunnerOptions, clock: str) -> dict[str, Any]:
    """Run one unit to its summary, in this process (a worker's entry point)."""
    if clock == "virtual":
        from experiments.virtual import run_scenario_virtual
        return run_scenario_virtual(unit.scenario, unit.sdir, options)
    return run_scenario_sync(unit.scenario, unit.sdir, options)


async def _run_local(units: Sequence[Unit], jobs: int, bar: _Bar,
                     cache_dir: Path) -> list[dict[str, Any]]:
    sem = asyncio.Semaphore(jobs)
    options = RunnerOptions(cache_dir=cache_dir, on_progress=bar.update)

    async def one(u: Unit) -> dict[str, Any]:
        async with sem:
            return await run_scenario(u.scenario, u.sdir, options)

    return list(await asyncio.gather(*(one(u) for u in units)))


def _run_virtual(units: Sequence[Unit], jobs: int, bar: _Bar,
                 cache_dir: Path) -> list[dict[str, Any]]:
    from experiments.virtual import render_ahead_wanted

    # a helper process renders a run's chain when a core is spare (the same blocks)
    options = RunnerOptions(cache_dir=cache_dir,
                            render_ahead=render_ahead_wanted(min(jobs, len(units))))
    if len(units) == 1:
        out = [run_unit(units[0], options, "virtual")]
        bar.done(units[0].scenario.name)
        return out
    # a clean process per worker (no loop) and per unit: a run's CPU, RSS samples and
    # peak are its own, not the high-water mark of the seeds a reused worker ran before
    # (the soak's memory check hid a week's growth behind it); forked from a server that
    # has imported the unit's modules and done nothing else (_unit_context)
    with stops_held():  # the fork server starts whole, even on a Ctrl-C
        ctx, parent = _unit_context()
    # a worker ends with this process (die_with_parent), also when it is killed outright
    with concurrent.futures.ProcessPoolExecutor(max_workers=min(jobs, len(units)), mp_context=ctx,
                                                max_tasks_per_child=1,
                                                initializer=_unit_worker_start,
                                                initargs=(parent, os.getpid(),
                                                          dict(os.environ))) as pool_:
        try:
            with stops_held():  # a worker starts at a submit: whole, even on a Ctrl-C
                futures = [pool_.submit(run_unit, u, options, "virtual") for u in units]
            names = {f: u.scenario.name for u, f in zip(units, futures, strict=True)}
            collect(pool_, futures, lambda f: bar.done(names[f]))
            return [f.result() for f in futures]
        except BaseException:
            _stop_pool(pool_)
            raise


#: how often a wait for a pool's units looks whether the pool can still run them
POOL_CHECK_S = 5.0


def collect(pool_: concurrent.futures.ProcessPoolExecutor,
            futures: Sequence[concurrent.futures.Future[Any]],
            on_done: Any, check_s: float = POOL_CHECK_S) -> None:
    """Wait for ``futures`` of ``pool_``, calling ``on_done(future)`` as each completes.

    The pool starts a new worker for each unit (``max_tasks_per_child=1``) from its
    manager thread; a start that fails there (the fork server's socket gone: its
    ``/tmp/pymp-*`` folder deleted under a long run, a process limit) ends that thread
    with the units still pending, and they never complete: the wait went on for ever,
    the run showing no progress. A pool seen so raises :class:`HarnessError` instead."""
    pending = set(futures)
    while pending:
        done, pending = concurrent.futures.wait(
            pending, timeout=check_s, return_when=concurrent.futures.FIRST_COMPLETED)
        for f in done:
            on_done(f)
        if not pending or done:
            continue
        manager = getattr(pool_, "_executor_manager_thread", None)
        if manager is not None and manager.is_alive():
            continue
        pending = {f for f in pending if not f.done()}  # (it may have just failed them)
        if pending:
            raise HarnessError(
                f"the worker pool stopped with {len(pending)} run(s) pending: it could not "
                "start a worker (its fork server gone? a /tmp cleaner deleting "
                "/tmp/pymp-* under a running matrix, or a process limit); see the "
                "traceback above; run again")


#: what a virtual unit imports (its run, the monitor, the simulator, the analysis and
#: the parquet writer): imported once by the fork server, not by every unit's worker
#: (a spawned worker paid ~1.5-1.7 CPU s for them, each of 100 seed-days); first the
#: module that ties the server's life to this process's
UNIT_PRELOAD = ("experiments.unit_server", "experiments.matrix", "experiments.virtual",
                "experiments.analysis", "monitor.wallet_monitor", "simulator.server",
                "simulator.explorer", "simulator.telegram", "looptime", "psutil",
                "logging.handlers", "pyarrow.parquet")


def _unit_context() -> tuple[Any, int | None]:
    """The multiprocessing context of virtual units' workers, and the pid of the process
    they are children of (None: this one). ``forkserver`` preloaded with
    :data:`UNIT_PRELOAD`: a worker is a fork of a server that imported the unit's modules
    and did nothing else (no loop, no thread, no unit run before), so it starts clean as
    a spawned interpreter did, without the imports. ``spawn`` where there is no fork
    server, or it does not start."""
    try:
        ctx = multiprocessing.get_context("forkserver")
        from multiprocessing import forkserver

        ctx.set_forkserver_preload(list(UNIT_PRELOAD))
        forkserver.ensure_running()
        server = getattr(forkserver, "_forkserver", None)
        pid = getattr(server, "_forkserver_pid", None)
        if isinstance(pid, int) and pid > 0:
            return ctx, pid
    except (ValueError, OSError, AttributeError, ImportError):
        pass
    return multiprocessing.get_context("spawn"), None


def _unit_worker_start(server: int | None, parent: int, environ: dict[str, str]) -> None:
    """A unit worker's initializer: it ends with the process that runs the matrix (a
    fork server's child: with the server, which ends with that process), and it has that
    process's environment as it is now, as a spawned worker had (the server has the one
    of its start; settings read from it at import are read again)."""
    die_with_parent(parent if server is None else server)
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)
        from experiments import virtual

        virtual.NOOP_CYCLES = virtual._noop_cycles(environ.get("EXPERIMENTS_NOOP_CYCLES"))


def _stop_pool(pool_: concurrent.futures.ProcessPoolExecutor) -> None:
    """An interrupted run (Ctrl-C, SIGTERM) stops its workers now: leaving the ``with``
    waited for every unit still queued (``shutdown(wait=True)``), so a Ctrl-C of
    ``--seeds 100`` went on running seed after seed, and a SIGTERM left the workers
    running a simulated week each after this process had gone.

    The workers are terminated until the pool's manager thread, seeing them die, has
    marked the pool broken and ended; only then is the pool shut down. Shut down first,
    a stop just as a unit finished raced that thread replacing the unit's worker
    (``max_tasks_per_child=1``): it started a worker the stop had not listed, or found
    the pool's processes gone and printed a ``TypeError`` traceback."""
    manager = getattr(pool_, "_executor_manager_thread", None)
    if isinstance(manager, threading.Thread):
        _quiet_when_stopped(manager)
    workers: dict[int, Any] = {}
    deadline = time.monotonic() + _STOP_WAIT_S
    while True:
        for pid, proc in list((getattr(pool_, "_processes", None) or {}).items()):
            workers[pid] = proc
            with contextlib.suppress(Exception):
                proc.terminate()
        if manager is None or not manager.is_alive() or time.monotonic() > deadline:
            break
        manager.join(0.1)
    pool_.shutdown(wait=False, cancel_futures=True)
    for proc in workers.values():
        with contextlib.suppress(Exception):
            proc.join(10.0)
            if proc.is_alive():
                proc.kill()


#: how long a stop waits for the pool's manager thread to see its workers gone
_STOP_WAIT_S = 30.0

#: pool manager threads of stopped runs: what they raise while the stop closes their
#: workers' pipes is said in the log, not as a traceback (:func:`_quiet_when_stopped`)
_STOPPED_MANAGERS: set[threading.Thread] = set()


def _quiet_when_stopped(manager: threading.Thread) -> None:
    """From now on an exception that ends ``manager`` (the pool's manager thread, in a
    stop) is one debug line, not a traceback: terminating the workers under it closes
    the pipes it waits on, and it ended with ``OSError: handle is closed`` and ~30
    lines of Python's concurrent.futures on the terminal of an interrupted ``experiments
    chaos`` or ``run`` (a SIGTERM; found in a chaos hunt). Any other thread's exception
    goes to the hook before."""
    _STOPPED_MANAGERS.add(manager)
    if getattr(threading.excepthook, "_quiets_stopped_pools", False):
        return
    before = threading.excepthook

    def hook(args: Any) -> None:
        if args.thread in _STOPPED_MANAGERS and isinstance(args.exc_value, Exception):
            log.debug("the stopped pool's manager thread ended: %s: %s",
                      type(args.exc_value).__name__, args.exc_value)
            return
        before(args)
    hook._quiets_stopped_pools = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _run_dask(units: Sequence[Unit], jobs: int, cache_dir: Path, clock: str,
              client: Any | None) -> list[dict[str, Any]]:
    """Each unit a Dask task: on ``client`` (an existing scheduler's, closed here), or on
    a ``LocalCluster`` of ``jobs`` workers."""
    from dask.distributed import Client, LocalCluster

    options = RunnerOptions(cache_dir=cache_dir)
    if client is None:
        with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as local:
            futures = [local.submit(run_unit, u, options, clock, pure=False) for u in units]
            return _gathered(units, futures)
    with client:
        futures = [client.submit(run_unit, u, options, clock, pure=False) for u in units]
        return _gathered(units, futures)


def _gathered(units: Sequence[Unit], futures: Sequence[Any]) -> list[dict[str, Any]]:
    """Each unit's summary; a task that failed on its worker (a worker killed, out of
    memory: ``KilledWorker``; a worker without this project installed) is that unit's
    harness error, naming why. ``client.gather`` raised the first such error: a
    traceback, and every other unit's results reported as 'run interrupted'."""
    out = []
    for unit, future in zip(units, futures, strict=True):
        try:
            out.append(future.result())
        except Exception as exc:
            out.append(empty_summary({
                "scenario": unit.scenario.name, "seed": unit.scenario.seed,
                "status": "harness_error",
                "error": f"the Dask task failed on its worker: {type(exc).__name__}: "
                         f"{str(exc)[:300]}"}))
    return out


#: seconds a Dask client gets to connect and shake hands with the scheduler
DASK_CONNECT_S = 60.0


def _connect_client(client_cls: Any, address: str, timeout: float | None = None) -> Any:
    """``client_cls(address)``, or :class:`MatrixError` when it fails or has not connected
    within ``timeout``: something that accepts TCP but is not a Dask scheduler (the
    dashboard's HTTP port, 8787, instead of 8786) leaves the client waiting for a
    handshake forever. The attempt runs in a daemon thread, left behind on a timeout
    (it cannot hold up the exit)."""
    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            box["client"] = client_cls(address)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=connect, name="dask-connect", daemon=True)
    timeout = DASK_CONNECT_S if timeout is None else timeout
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise MatrixError(f"no Dask scheduler answered at {address} within {timeout:.0f} s "
                          "(is it the scheduler's port, 8786, not the dashboard's?)")
    if "error" in box:
        exc = box["error"]
        hint = ""
        if isinstance(exc, MemoryError):  # a peer that is no Dask scheduler: distributed
            # read its first bytes as a frame length ("Unable to allocate 3.07 EiB")
            hint = ("; what answers there does not speak Dask's protocol (is it the "
                    "scheduler's port, 8786?)")
        raise MatrixError(f"cannot reach the Dask scheduler at {address}: "
                          f"{type(exc).__name__}: {str(exc)[:200]}{hint}") from None
    return box["client"]


def check_scheduler(address: str, timeout: float = 10.0) -> None:
    """Raise :class:`MatrixError` unless something accepts TCP connections at the Dask
    scheduler's ``tcp://HOST:PORT`` (checked before a run directory is made)."""
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise MatrixError(f"cannot reach the Dask scheduler at {host}:{port}: "
                          f"{exc.strerror or exc}") from None


def parse_executor(executor: str) -> tuple[str, str | None]:
    """``local`` | ``dask`` | ``dask://HOST:PORT`` -> (kind, scheduler address or None)."""
    if executor in ("local", "dask"):
        return executor, None
    if executor.startswith("dask://") and len(executor) > len("dask://"):
        where = executor.removeprefix("dask://")
        if "@" in where:  # echoed whole, a password in it reached the terminal and logs
            raise MatrixError(f"--executor dask://***@{where.rpartition('@')[2]}: a Dask "
                              "scheduler's address has no user or password "
                              "(dask://HOST:PORT)")
        host, _, port = where.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise MatrixError(f"--executor {executor!r}: expected dask://HOST:PORT with a "
                              f"port in 1-65535 (a Dask scheduler listens on 8786)")
        return "dask", "tcp://" + where
    raise MatrixError(f"unknown executor {executor!r} (local, dask or dask://HOST:PORT)")


def run_matrix(scenarios: Sequence[Scenario], *, out: Path, command: list[str], quick: bool,
               jobs: int = 1, executor: str = "local", console: Console | None = None,
               progress: bool = True, clock: str = "real",
               seeds: Sequence[int] | None = None) -> MatrixResult:
    """Run every scenario (under every seed of ``seeds``) into a new ``out/<run-id>/`` and
    point ``out/latest`` at it."""
    names = [s.name for s in scenarios]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MatrixError(f"scenario names must be unique in one run: {', '.join(dupes)}")
    if not 1 <= jobs <= MAX_JOBS:
        raise MatrixError(f"--jobs must be 1 to {MAX_JOBS}, got {jobs}")
    kind, address = parse_executor(executor)
    if kind == "dask" and not dask_available():
        raise MatrixError("--executor dask needs dask[distributed] installed "
                          "(pip install -e '.[dask]')")
    if clock not in ("real", "virtual"):
        raise MatrixError(f"unknown clock {clock!r} (real or virtual)")
    cli_seeds = list(seeds) if seeds else None
    plan = [(s, cli_seeds if cli_seeds is not None else
             (list(s.seeds) if s.seeds else None)) for s in scenarios]
    for s, ss in plan:
        if ss is not None and len(set(ss)) != len(ss):
            raise MatrixError(f"{s.name}: seeds must be distinct")
        if ss is not None and len(ss) > MAX_SEEDS:
            raise MatrixError(f"{s.name}: at most {MAX_SEEDS:,} seeds a scenario, got "
                              f"{len(ss):,}")
    client = None
    if address is not None:  # reached before anything is written
        from dask.distributed import Client

        check_scheduler(address)
        client = _connect_client(Client, address)
    started = started_now()
    run_dir = create_run(out)
    cache_dir = out / ".cache" / "recordings"
    if quick:
        scenarios = [s.quickened() for s in scenarios]
        plan = [(s.quickened(), ss) for s, ss in plan]
    units: list[Unit] = []
    for s, ss in plan:
        units += ([Unit(s, None, run_dir / s.name)] if ss is None else
                  [Unit(reseed(s, k), k, run_dir / s.name / "seeds" / str(k)) for k in ss])
    bar = _Bar(console, progress and kind == "local")
    for s, ss in plan:
        bar.add(s, len(ss or [1]) if clock == "virtual" else None)
    summaries: list[dict[str, Any]] | None = None
    try:
        if kind == "dask":
            results = _run_dask(units, jobs, cache_dir, clock, client)
        elif clock == "virtual":
            with bar.progress:
                results = _run_virtual(units, jobs, bar, cache_dir)
        else:
            with bar.progress:
                results = asyncio.run(_run_local(units, jobs, bar, cache_dir))
        summaries = []
        at = 0
        for s, ss in plan:
            n = len(ss) if ss is not None else 1
            part = results[at:at + n]
            at += n
            summaries.append(part[0] if ss is None else pool(s, run_dir / s.name, ss, part))
    finally:
        write_manifest(run_dir, scenarios=[_scenario_entry(s) for s, _ in plan],
                       command=command, started=started, quick=quick, jobs=jobs,
                       executor=executor, clock=clock,
                       seeds={s.name: ss for s, ss in plan if ss is not None} or None)
        if summaries is None:  # interrupted: keep whatever each scenario managed to write
            finished = [_finished_summary(run_dir / s.name, s.name) if ss is None else None
                        for s, ss in plan]
            summaries = [x or empty_summary({"scenario": s.name, "status": "harness_error",
                                             "error": "run interrupted"})
                         for x, s in zip(finished, scenarios, strict=True)]
        write_run_summary(run_dir, summaries)
        point_latest(run_dir)
    return MatrixResult(run_dir, summaries)


def _finished_summary(sdir: Path, name: str) -> dict[str, Any] | None:
    """The summary a scenario of one seed wrote before the run was interrupted (its
    analysis writes it last), else None. Every scenario of an interrupted run was listed
    as 'run interrupted', also those that had finished: the report called each finished
    one's own summary a data problem (the run's summary.json says status = harness_error,
    the scenario's says ok) and its results were lost with the rest."""
    try:
        summary = json.loads((sdir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(summary, dict) or summary.get("scenario") != name \
            or not isinstance(summary.get("status"), str):
        return None
    return summary


def _scenario_entry(s: Scenario) -> dict[str, Any]:
    return {"name": s.name, "description": s.description, "era": s.era, "mode": s.mode,
            "seed": s.seed,
            "speed": s.speed, "sim_duration_s": s.sim_duration_s,
            "recording": s.recording, "profile": s.profile}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _cell(value: Any, digits: int = 2, style: str = "") -> Text:
    """A table cell of ``value`` as it is, never read as markup: a stored summary's text
    (a damaged run.json's ``"[/x]"``) was a MarkupError traceback, and a number where a
    name belongs a NotRenderableError one."""
    return Text(_fmt(value, digits) if value != "" else "-", style=style)


def summary_table(summaries: Sequence[dict[str, Any]], title: str = "") -> Table:
    """The per-scenario table printed at the end of a run."""
    table = Table(title=Text(title) if title else None, show_lines=False)
    for col, justify in (("scenario", "left"), ("mode", "left"), ("speed", "right"),
                         ("status", "left"), ("trades", "right"), ("det", "right"),
                         ("late", "right"), ("miss", "right"), ("dup", "right"),
                         ("phan", "right"), ("retr", "right"), ("p50 s", "right"),
                         ("p95 s", "right"), ("max s", "right"), ("expl/h", "right"),
                         ("uptime", "right"), ("cover", "right"), ("thresholds", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for s in summaries:
        th = [t for t in s.get("thresholds") or [] if isinstance(t, dict)]
        ok = sum(1 for t in th if t.get("passed") is True)
        bad = [str(t.get("expr")) for t in th if t.get("passed") is False]
        unknown = sum(1 for t in th if t.get("passed") is None)
        verdict = f"{ok}/{len(th)} pass"
        if bad:
            verdict += "; FAIL " + ", ".join(bad)
        if unknown:
            verdict += f"; {unknown} unknown"
        status = s.get("status")
        style = {"ok": "green", "harness_error": "red", "inconclusive": "yellow"
                 }.get(status, "") if isinstance(status, str) else ""
        table.add_row(
            _cell(s.get("scenario")), _cell(s.get("mode")), _cell(s.get("speed"), 0),
            _cell(status, style=style), _cell(s.get("trades")),
            _cell(s.get("detected")), _cell(s.get("late")), _cell(s.get("missed")),
            _cell(s.get("duplicates")), _cell(s.get("phantoms")), _cell(s.get("retracted")),
            _cell(s.get("latency_p50_s")), _cell(s.get("latency_p95_s")),
            _cell(s.get("latency_max_s")), _cell(s.get("explorer_calls_per_hour"), 0),
            _cell(s.get("uptime")), _cell(s.get("coverage")), Text(verdict))
    return table
