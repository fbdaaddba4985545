"""Analysis of one stored scenario: truth + checker on its files, Parquet and summary out.

A scenario directory (docs/contracts.md 'Run store') holds what the runner collected:
``scenario.toml``, ``sim_history.jsonl``, ``monitor_history.jsonl``, ``detections.jsonl``
and ``run.json`` (the runner's own record: status, measurement window, wallets,
resources). :func:`analyze_scenario_dir` turns them into ``truth.parquet``,
``detections.parquet``, ``outcomes.parquet`` and ``summary.json``, and (a successful
analysis) ``reliability.json``: what the report's reliability section counts of the
histories (malformed items injected, inputs rejected, restarts, task crashes, tasks dead
at the end), noted while the histories are read for the checker, so that a pool of seeds
can sum them (:func:`experiments.seeds.pool`). It never raises for bad
data: a harness failure stays ``harness_error``; a checker failure or missing data makes
the scenario ``inconclusive`` with the error, and every threshold ``passed: null``.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.checker import (
    DETECTION_COLUMNS,
    OUTCOME_COLUMNS,
    TRADE_OUTCOMES,
    CheckParams,
    CountedRows,
    detections_frame,
    mean_watched,
    require_parquet,
    run_checker,
)
from experiments.inputs import changed_since, fingerprint
from experiments.latency_budget import budget, overheads, trade_stages
from experiments.orphans import die_with_parent
from experiments.scenario import ScenarioError, load_scenario
from experiments.store import BadRow, JsonlRows, iter_jsonl, written_together
from experiments.thresholds import SUMMARY_KEYS, evaluate_all, parse_threshold
from experiments.truth import TRUTH_COLUMNS
from polyvocab.child_start import stops_held

__all__ = [
    "RELIABILITY_FILE",
    "SUMMARY_KEYS",
    "AnalysisFailed",
    "analyze_scenario_dir",
    "empty_summary",
    "outcomes_table",
    "previous_summary",
    "reliability_counts",
    "summaries_frame",
    "trades_by",
    "write_reliability",
]

require_parquet()  # the tables below are parquet: a missing pyarrow is said before a run


RUN_FILE = "run.json"
#: what the report's reliability section counts of a scenario's histories (see
#: :class:`_MonitorTally` and :meth:`_SimRows.malformed`); a pool of seeds sums them
RELIABILITY_FILE = "reliability.json"

log = logging.getLogger("experiments.analysis")

#: a detections file at least this big is read by a second process (when the caller has a
#: core to spare) while this one reads the simulator's history: a simulated week's, 400 MB,
#: is ~4.7 s of JSON; a smaller one is not worth the second process's start (~1 s)
SECOND_PROCESS_BYTES = 32 << 20

# What the checker and the latency budget read of each file. The rest (the simulator's
# per-request and per-index rows, the monitor's per-delivery and bad-input rows, a
# trade's own fields) stays on disk: a simulated week's histories held whole took 4.4 GB.
FAULT_EVENTS = frozenset({"fault_start", "fault_stop"})
SIM_EVENTS = frozenset({"start", "stop", "block_published"}) | FAULT_EVENTS
MONITOR_EVENTS = frozenset({"start", "stop", "api_call", "feed", "state", "fallback",
                            "subscription_mode"})  # its shards: each must be healthy
TRADE_FIELDS = ("id", "wallet", "block_number", "block_hash")


def _timed(row: dict[str, Any]) -> dict[str, Any]:
    """A history row the checker reads: it must carry its time (an integer ``t_ns``;
    :class:`BadRow` names the file and line)."""
    t = row.get("t_ns")
    if type(t) is not int:
        raise BadRow(f"a {row.get('event')!r} row without an integer t_ns")
    return row


def _monitor_row(row: dict[str, Any]) -> dict[str, Any] | None:
    return _timed(row) if row.get("event") in MONITOR_EVENTS else None


class _MonitorTally:
    """What the reliability section counts of the monitor's history, noted as its rows go
    by (none of them is kept): inputs rejected by kind (``bad_input`` rows by ``kind``,
    ``decode_error`` rows as ``decode_error``), processes started (``start`` rows: all
    but the first are restarts survived), supervised tasks that crashed (``task_crash``)
    and the tasks not alive at the end (the last ``tasks`` row's ``alive``)."""

    def __init__(self) -> None:
        self.rejected: Counter[str] = Counter()
        self.starts = 0
        self.task_crashes = 0
        self.alive: dict[str, Any] | None = None

    def select(self, row: dict[str, Any]) -> dict[str, Any] | None:
        event = row.get("event")
        if event == "bad_input":
            if row.get("kind") is not None:
                self.rejected[str(row["kind"])] += 1
        elif event == "decode_error":
            self.rejected["decode_error"] += 1
        elif event == "task_crash":
            self.task_crashes += 1
        elif event == "tasks":
            alive = row.get("alive")
            self.alive = alive if isinstance(alive, dict) else None
        elif event == "start":
            self.starts += 1
        return _monitor_row(row)

    def counts(self) -> dict[str, Any]:
        return {"rejected": dict(sorted(self.rejected.items())),
                "restarts": max(self.starts - 1, 0), "task_crashes": self.task_crashes,
                "tasks_dead": sorted(str(k) for k, v in (self.alive or {}).items() if not v)}


def _detection_row(row: dict[str, Any]) -> dict[str, Any]:
    trade = row.get("trade")
    if isinstance(trade, dict):
        row["trade"] = {k: trade[k] for k in TRADE_FIELDS if k in trade}
    return row


def empty_summary(run: dict[str, Any]) -> dict[str, Any]:
    """A summary with the scenario's identity and every measure null."""
    s: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    for key in ("scenario", "description", "era", "mode", "speed", "seed", "sim_duration_s",
                "actionable_window_s"):
        s[key] = run.get(key)
    s["wallets"] = len(run.get("wallets") or [])
    s["status"] = run.get("status", "inconclusive")
    s["error"] = run.get("error")
    s["api_calls"] = {}
    s["faults"] = []
    s["thresholds"] = evaluate_all(list(run.get("thresholds") or []), {})
    return s


def _write_frame(frame: pd.DataFrame, path: Path) -> None:
    frame.to_parquet(path, index=False, engine="pyarrow")


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})


def _read_monitor_rows(path: Path, window: tuple[int, int] | None = None
                       ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The monitor's history rows the checker reads, and what the reliability section
    counts of the whole file (:class:`_MonitorTally`), in one pass. ``window``: the
    measured window; the API calls the checker only counts in it are counted as they go
    by and not kept (:class:`~experiments.checker.CountedRows`)."""
    tally = _MonitorTally()
    if window is None:
        return list(iter_jsonl(path, tally.select)), tally.counts()
    rows = CountedRows(window)
    for row in iter_jsonl(path, tally.select):
        rows.add(row)
    return rows.close(), tally.counts()


def _read_detections(path: Path) -> pd.DataFrame:
    """The detections file as the checker's table."""
    return detections_frame(iter_jsonl(path, _detection_row))


def _read_both(monitor_path: Path, det_path: Path, window: tuple[int, int] | None = None
               ) -> tuple[tuple[list[dict[str, Any]], dict[str, Any]], pd.DataFrame]:
    """A second process's work: the monitor's rows (and tally) and the detections table."""
    return _read_monitor_rows(monitor_path, window), _read_detections(det_path)


class _SecondProcess:
    """The monitor's history rows and the detections table read by another process
    (spawned: no state of this one is copied) while this one reads the simulator's
    history. Any failure of that process (it cannot start, dies, or the data is bad) is the
    same read here, so an error names the file and line exactly as without it."""

    def __init__(self, monitor_path: Path, det_path: Path,
                 window: tuple[int, int] | None = None) -> None:
        self.paths = (monitor_path, det_path)
        self.window = window  # the measured window (see _read_monitor_rows)
        self._pool: ProcessPoolExecutor | None = None
        self._future: Future[tuple[tuple[list[dict[str, Any]], dict[str, Any]],
                                   pd.DataFrame]] | None = None
        self._monitor_rows: tuple[list[dict[str, Any]], dict[str, Any]] | None = None
        self._detections: pd.DataFrame | None = None
        try:
            self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=die_with_parent,
                                             initargs=(os.getpid(),))
            with stops_held():  # the worker starts here: whole, even if this one is stopped
                self._future = self._pool.submit(_read_both, *self.paths, window)
        except (OSError, RuntimeError, AssertionError) as exc:  # AssertionError: a
            # daemonic process (a pool or cluster worker) may have no children
            log.warning("analysis: no second process (%s): reading the files here", exc)
            self.close()

    def _result(self) -> None:
        future, self._future = self._future, None
        if future is None:
            return
        try:
            self._monitor_rows, self._detections = future.result()
        except Exception as exc:  # any failure there is the same read here
            log.info("analysis: the second process's read failed (%s): reading here",
                     type(exc).__name__)
        finally:
            self.close()

    def _monitor(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        self._result()
        if self._monitor_rows is None:
            self._monitor_rows = _read_monitor_rows(self.paths[0], self.window)
        return self._monitor_rows

    def monitor_rows(self) -> list[dict[str, Any]]:
        return self._monitor()[0]

    def monitor_counts(self) -> dict[str, Any]:
        return self._monitor()[1]

    def detections(self) -> pd.DataFrame:
        self._result()
        return (self._detections if self._detections is not None
                else _read_detections(self.paths[1]))

    def close(self, *, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None


def analyze_scenario_dir(sdir: str | Path, *, second_process: bool = False,
                         keep_previous: bool = False) -> dict[str, Any]:
    """Re-run truth and checker on a stored scenario and (re)write its outputs.

    ``second_process``: the caller has a core to spare; a big detections file
    (:data:`SECOND_PROCESS_BYTES`) is then read by another process meanwhile. The result
    is the same either way.

    ``keep_previous`` (``experiments analyze``): when this analysis fails and an earlier
    one of the same scenario had succeeded, nothing is written and :class:`AnalysisFailed`
    is raised: a file damaged since does not replace good results with empty ones."""
    sdir = Path(sdir)
    inputs = fingerprint(sdir)  # before reading: what this analysis is of
    run, problem = _run_record(sdir)
    readable = problem is None
    if problem is not None:
        run = {"scenario": sdir.name, "status": "inconclusive", "error": problem}
    summary = empty_summary(run)
    frames: dict[str, pd.DataFrame] = {
        "truth": _empty(TRUTH_COLUMNS), "detections": _empty(DETECTION_COLUMNS),
        "outcomes": _empty(OUTCOME_COLUMNS)}
    reliability: dict[str, Any] | None = None
    if run.get("status") == "harness_error":
        summary["status"] = "harness_error"
    elif readable:
        other: _SecondProcess | None = None
        try:
            scenario = load_scenario(sdir / "scenario.toml")
            thresholds = list(scenario.thresholds)
            params = CheckParams(
                speed=float(run["speed"]),
                window_start_ns=int(run["window_start_ns"]),
                window_end_ns=int(run["window_end_ns"]),
                actionable_window_s=scenario.actionable_window_s,
                wallets=tuple(run["wallets"]),
                mode=scenario.mode,
                watched_mean=mean_watched(run.get("watch"), scenario.sim_duration_s),
            )
            window = (params.window_start_ns, params.window_end_ns)
            # the histories are read again at each pass, never held whole (a week's are
            # ~1.6 million rows); only the monitor's few state rows are kept as a list
            # (and the explorer's calls: the others are counted as they go by)
            sim_rows = _SimRows(sdir / "sim_history.jsonl")
            mon_path, det_path = sdir / "monitor_history.jsonl", sdir / "detections.jsonl"
            det_rows: Iterable[dict[str, Any]] = (
                JsonlRows(det_path, _detection_row) if det_path.exists() else [])
            detections_of: Callable[[], pd.DataFrame] | None = None
            if second_process and det_path.exists() and \
                    det_path.stat().st_size >= SECOND_PROCESS_BYTES:
                other = _SecondProcess(mon_path, det_path, window)
                # the checker asks for them after the truth's pass
                monitor_of: Callable[[], list[dict[str, Any]]] = other.monitor_rows
                counts_of: Callable[[], dict[str, Any]] = other.monitor_counts
                detections_of = other.detections
            else:
                rows, counts = _read_monitor_rows(mon_path, window)
                monitor_of = lambda: rows  # noqa: E731
                counts_of = lambda: counts  # noqa: E731
            truth, detections, outcomes, measures = run_checker(
                sim_rows, monitor_of, det_rows, params, resources=run.get("resources"),
                sim_end_ns=sim_rows.end_ns, fault_rows=sim_rows.fault_rows,
                detections_of=detections_of)
            broken = sim_rows.recording_error()
            if broken is not None:
                raise _Unusable(broken)
            monitor_rows = monitor_of()
            cut = _cut_short(sim_rows.last_start_or_stop(), _last_start_or_stop(monitor_rows),
                             params.window_end_ns)
            if cut is not None:
                raise _Unusable(cut)
            unmet = _faults_unmet(scenario.faults, measures.get("faults"))
            if unmet is not None:
                raise _Unusable(unmet)
            early = _early_deliveries(outcomes)
            if early is not None:
                raise _Unusable(early)
            moved = changed_since(inputs, fingerprint(sdir))
            if moved is not None:
                raise _Unusable(f"the files changed while they were analysed ({moved}): "
                                "a run still writing them?")
            frames = {"truth": truth, "detections": detections, "outcomes": outcomes}
            reliability = {"malformed": sim_rows.malformed(), **counts_of(),
                           "inputs": inputs}
            summary.update(measures)
            if "watch" in run:  # what api_calls_per_hour_per_wallet divided by (null: by
                # every wallet, the list not numbers); absent for a run without one
                summary["wallets_watched_mean"] = params.watched_mean
            summary["latency_stages"] = _latency_stages(sim_rows, monitor_rows, det_rows,
                                                        run.get("resources"))
            summary["era"] = scenario.era  # from scenario.toml: older run.json files lack it
            # evaluated once, here, on the final summary; the report takes it as written
            summary["thresholds"] = evaluate_all(thresholds, summary)
            summary["status"] = "ok"
            summary["error"] = None
        except _Unusable as exc:  # the data is whole, but it is not the run that was meant
            summary = empty_summary({**run, "status": "inconclusive", "error": str(exc)})
            reliability = None
        except (ScenarioError, OSError, KeyError, ValueError, TypeError, ArithmeticError,
                AttributeError, IndexError) as exc:
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            summary = empty_summary({**run, "status": "inconclusive",
                                     "error": f"analysis failed: {detail}"})
            reliability = None
        finally:
            if other is not None:  # the checker stopped before it asked: do not wait for it
                other.close(wait=False)
    if keep_previous and summary["status"] != "ok" and run.get("status") != "harness_error":
        previous = previous_summary(sdir)
        if previous is not None:
            raise AnalysisFailed(sdir.name, str(summary["error"]), previous)
    summary["inputs"] = inputs
    with written_together() as stage:  # a full disk leaves the earlier results whole
        for name, frame in frames.items():
            _write_frame(frame, stage(sdir / f"{name}.parquet"))
        if reliability is not None:
            write_reliability(sdir, reliability, stage)
        stage(sdir / "summary.json").write_text(
            json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    if reliability is None:  # (removed once the rest is written)
        write_reliability(sdir, None)
    return summary


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def reliability_counts(data: Any) -> dict[str, Any] | None:
    """``data`` (a :data:`RELIABILITY_FILE`'s contents) as the counts it holds, or None when
    it is not what an analysis or a pool writes (a count not a whole number >= 0, a kind
    not a string)."""
    if not isinstance(data, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("malformed", "rejected"):
        kinds = data.get(key)
        if not isinstance(kinds, dict) or not all(
                isinstance(k, str) and _count(v) for k, v in kinds.items()):
            return None
        out[key] = dict(sorted(kinds.items()))
    for key in ("restarts", "task_crashes"):
        if not _count(data.get(key)):
            return None
        out[key] = data[key]
    dead = data.get("tasks_dead")
    if not isinstance(dead, list) or not all(isinstance(t, str) for t in dead):
        return None
    out["tasks_dead"] = sorted(dead)
    out["seeds"] = data.get("seeds")
    out["inputs"] = data.get("inputs")
    return out


def write_reliability(sdir: Path, counts: dict[str, Any] | None,
                      stage: Callable[[Path], Path] | None = None) -> None:
    """Write ``sdir``'s :data:`RELIABILITY_FILE`, or remove it (``counts`` None: none were
    had), so that no earlier analysis's counts stand beside this one's summary. ``stage``:
    written with the others of :func:`experiments.store.written_together`."""
    path = sdir / RELIABILITY_FILE
    if counts is None:
        path.unlink(missing_ok=True)
        return
    (stage or (lambda p: p))(path).write_text(json.dumps(counts, indent=2, default=str) + "\n",
                                              encoding="utf-8")


#: a delivery stamped this long before its trade was first published (one monotonic clock
#: for both processes, or one loop clock in virtual time) cannot be: the files disagree
EARLY_TOLERANCE_NS = 10_000_000


def _early_deliveries(outcomes: pd.DataFrame) -> str | None:
    """Why the detections cannot be of this run, or None: trades delivered before any
    block held them. The checker counts such a latency as 0 (a clock's last digits);
    past :data:`EARLY_TOLERANCE_NS` it is a detections file of another run or clock."""
    both = outcomes.dropna(subset=["delivered_t_ns", "visible_t_ns"])
    if both.empty:
        return None
    lead = both["visible_t_ns"].astype("int64") - both["delivered_t_ns"].astype("int64")
    early = lead[lead > EARLY_TOLERANCE_NS]
    if early.empty:
        return None
    return (f"{len(early)} trades were delivered before their block was published (by up "
            f"to {early.max() / 1e9:.3f} s, wall clock): the detections do not belong to "
            "this run's histories")


def _faults_unmet(planned: Iterable[Any], measured: Any) -> str | None:
    """Why a scenario planned faults but measured none, or None: a fault on a random
    schedule that never fired, or one set to start in the grace period only. Judged as a
    fault-free scenario it would pass the checks of a calm run, and the faults it was
    meant to test would read as survived."""
    names = sorted({str(getattr(f, "name", f)) for f in planned})
    if not names or measured:
        return None
    return (f"the scenario plans faults ({', '.join(names)}) but none started inside the "
            "measured window: its behaviour under faults was not measured")


def _last_start_or_stop(rows: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    last = None
    for row in rows:
        if row.get("event") in ("start", "stop"):
            last = row
    return last


def _cut_short(sim_last: dict[str, Any] | None, monitor_last: dict[str, Any] | None,
               window_end_ns: int) -> str | None:
    """Why the histories do not cover the measured window, or None. Each side's last
    process writes a ``stop`` row at the end of the run (the runner treats a process that
    died as a harness error; a monitor killed and restarted on purpose starts again): a
    history whose last start has no stop after it, or whose stop comes before the
    window's end, is a run or a file cut short, and its rates would be divided by a
    window it did not see. ``*_last``: each side's last start or stop row."""
    for side, last in (("simulator", sim_last), ("monitor", monitor_last)):
        if last is None:
            return f"the {side}'s history has no start row: nothing was measured"
        if last.get("event") != "stop":
            return (f"the {side}'s history has no stop row after its last start: the run or "
                    "the file was cut short")
        if last["t_ns"] < window_end_ns:
            return (f"the {side} stopped {(window_end_ns - last['t_ns']) / 1e9:.1f} s (wall "
                    "clock) before the measured window's end")
    return None


class _Unusable(Exception):
    """A run whose data reads fine but does not measure what the scenario asked for."""


class AnalysisFailed(Exception):
    """A re-analysis failed where an earlier one had succeeded: nothing was written, the
    earlier results stand (``previous``: their summary)."""

    def __init__(self, scenario: str, error: str, previous: dict[str, Any]) -> None:
        super().__init__(f"{scenario}: {error}; its earlier results are kept")
        self.scenario = scenario
        self.error = error
        self.previous = previous


def previous_summary(sdir: Path) -> dict[str, Any] | None:
    """The scenario's stored summary when it is a successful analysis, else None."""
    try:
        summary = json.loads((sdir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("status") == "ok" else None


_RUN_LISTS = ("wallets", "thresholds")


def _run_record(sdir: Path) -> tuple[dict[str, Any], str | None]:
    """The runner's record (``run.json``) and, when it cannot be used, why (naming the
    file and the field): not JSON, not an object, a list field that is not a list of
    strings, a threshold that does not parse."""
    path = sdir / RUN_FILE
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {}, f"{path}: cannot read the runner's record ({exc})"
    if not isinstance(run, dict):
        return {}, f"{path}: the runner's record is not a JSON object"
    for key in _RUN_LISTS:
        value = run.get(key)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            return {}, f"{path}: {key} is not a list of strings"
    try:
        for expr in run.get("thresholds") or []:
            parse_threshold(expr)
    except ValueError as exc:
        return {}, f"{path}: thresholds: {exc}"
    wrong = _run_fields_wrong(run)
    if wrong:
        return {}, f"{path}: {wrong}"
    return run, None


#: what the runner writes in ``run.json`` at the end of a run (its record is written once)
RUN_STATUSES = ("ok", "harness_error")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def _run_fields_wrong(run: dict[str, Any]) -> str | None:
    """What in the runner's record is not of the kind the runner writes, or None: a status
    other than its two ("weird", 5, "running" were analysed as ok), a speed, duration or
    window that is no positive number (sim_duration_s = -1 and actionable_window_s = "x"
    went into the summary as they were; "abc" was a ValueError's text)."""
    status = run.get("status")
    if status not in RUN_STATUSES:
        return (f"status {str(status)[:40]!r} is not one the runner writes "
                f"({', '.join(RUN_STATUSES)})")
    if status != "ok":
        return None
    for key in ("speed", "sim_duration_s", "actionable_window_s"):
        value: Any = run.get(key)
        if key in run and not (_is_number(value) and value > 0):
            return f"{key} = {str(value)[:40]} is not a number > 0"
    for key in ("window_start_ns", "window_end_ns"):
        value = run.get(key)
        if key in run and not (isinstance(value, int) and not isinstance(value, bool)
                               and value >= 0):
            return f"{key} = {str(value)[:40]} is not a whole number of ns >= 0"
    start, end = run.get("window_start_ns"), run.get("window_end_ns")
    if isinstance(start, int) and isinstance(end, int) and end <= start:
        return f"window_end_ns = {end} is not after window_start_ns = {start}"
    for key, kind in (("resources", dict), ("samples", list), ("urls", dict)):
        if run.get(key) is not None and not isinstance(run[key], kind):
            return f"{key} is not a JSON {'object' if kind is dict else 'list'}"
    return None


class _SimRows(JsonlRows):
    """The simulator's history rows the checker reads (:data:`SIM_EVENTS`), read again at each
    pass; a complete pass also notes the highest ``t_ns`` of every row, selected or not
    (:meth:`end_ns`), and keeps the few fault rows (:meth:`fault_rows`), so neither the
    end of the history nor the fault windows cost a pass of their own (a simulated week's
    history: 745,000 rows, 230 MB)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)  # the selection is __iter__'s: it notes more on the way
        self._end_ns: int | None = None
        self._faults: list[dict[str, Any]] | None = None
        self._broken: dict[str, Any] | None = None
        self._last: dict[str, Any] | None = None  # the last start or stop row
        self._malformed: dict[str, int] | None = None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        top = 0
        faults: list[dict[str, Any]] = []
        broken: list[dict[str, Any]] = []
        last: dict[str, Any] | None = None
        malformed: Counter[str] = Counter()

        def select(row: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal top, last
            t = _timed(row)["t_ns"]
            if t > top:
                top = t
            event = row.get("event")
            if event in ("start", "stop"):
                last = row
            if event == "recording_error":
                broken.append(row)
            elif event == "malformed" and row.get("kind") is not None:
                malformed[str(row["kind"])] += 1
            kept = row if event in SIM_EVENTS else None
            if kept is not None and event in FAULT_EVENTS:
                faults.append(kept)
            return kept

        yield from iter_jsonl(self.path, select)
        self._end_ns, self._faults = top, faults
        self._broken = broken[0] if broken else None
        self._last = last
        self._malformed = dict(sorted(malformed.items()))

    def _complete(self) -> None:
        if self._end_ns is None:
            for _row in self:
                pass

    def end_ns(self) -> int:
        """The last ``t_ns`` of the whole history (0 when empty): from the last complete
        pass, or a pass of its own when there was none."""
        self._complete()
        assert self._end_ns is not None
        return self._end_ns

    def last_start_or_stop(self) -> dict[str, Any] | None:
        """The history's last ``start`` or ``stop`` row (None when it has none): from the
        last complete pass, or a pass of its own."""
        self._complete()
        return self._last

    def recording_error(self) -> str | None:
        """Why the simulator's streamed recording ended early (its ``recording_error``
        row), or None: from the last complete pass, or a pass of its own."""
        self._complete()
        if self._broken is None:
            return None
        return (f"the simulator's recording ended early, after {self._broken.get('blocks')} "
                f"blocks ({self._broken.get('error')}): the run replayed less than planned")

    def malformed(self) -> dict[str, int]:
        """The malformed items the simulator injected, by kind (its ``malformed`` rows):
        from the last complete pass, or a pass of its own."""
        self._complete()
        assert self._malformed is not None
        return self._malformed

    def fault_rows(self) -> list[dict[str, Any]]:
        """The ``fault_start`` and ``fault_stop`` rows, in file order: from the last
        complete pass, or a pass of its own when there was none."""
        self._complete()
        assert self._faults is not None
        return self._faults


def _stamped(monitor_rows: Iterable[dict[str, Any]]) -> bool:
    """Whether the monitor may have stamped its trades' latency stages: not when every
    ``start`` row's settings say ``latency_stages`` is off (older histories without the
    setting: maybe)."""
    starts = [r for r in monitor_rows if r.get("event") == "start"]
    return not starts or any(
        not isinstance(r.get("settings"), dict)
        or r["settings"].get("latency_stages") is not False for r in starts)


def _latency_stages(sim_rows: Iterable[dict[str, Any]], monitor_rows: list[dict[str, Any]],
                    det_rows: Iterable[dict[str, Any]], resources: dict[str, Any] | None
                    ) -> dict[str, Any] | None:
    """The latency budget (:mod:`experiments.latency_budget`) when the detections carry
    stage stamps, with what the harness adds as its own lines; else None. A monitor that
    did not stamp costs no pass over the histories."""
    if not _stamped(monitor_rows):
        return None
    out = budget(trade_stages(sim_rows, det_rows))
    if out is not None:
        out["overhead"] = overheads(sim_rows, monitor_rows, resources)
    return out


def summaries_frame(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """The run's scenario summaries as one table (one row per scenario)."""
    rows = []
    for s in summaries:
        row = {k: v for k, v in s.items() if k not in ("api_calls", "faults", "thresholds",
                                                        "latency_stages", "latency_bounds")}
        verdicts = [t.get("passed") for t in s.get("thresholds") or []]
        row["thresholds_passed"] = sum(1 for v in verdicts if v is True)
        row["thresholds_failed"] = sum(1 for v in verdicts if v is False)
        row["thresholds_unknown"] = sum(1 for v in verdicts if v is None)
        rows.append(row)
    return pd.DataFrame(rows)


def trades_by(outcomes: pd.DataFrame, keys: str | list[str]) -> pd.DataFrame:
    """``outcomes`` (one row a trade or delivery, as :func:`outcomes_table` gives them)
    counted by ``keys`` as the summary counts them: ``trades`` are the detected, late,
    missed and duplicate rows (:data:`~experiments.checker.TRADE_OUTCOMES`), and the
    latency quantiles are theirs. A phantom or a retracted delivery is no trade: it is
    counted in its own column and its latency is in no quantile (counted as a trade, a
    wallet's phantoms made its trades and p95 disagree with the summary)."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    outcome = outcomes["outcome"]
    lat = outcomes["latency_s"].astype(float).where(outcome.isin(TRADE_OUTCOMES))
    frame = outcomes[keys].assign(
        trades=outcome.isin(TRADE_OUTCOMES).astype(int),
        detected=(outcome == "detected").astype(int), late=(outcome == "late").astype(int),
        missed=(outcome == "missed").astype(int),
        duplicates=(outcome == "duplicate").astype(int),
        phantoms=(outcome == "phantom").astype(int),
        retracted=(outcome == "retracted").astype(int), latency_s=lat)
    groups = frame.groupby(keys, dropna=False)
    table = groups[["trades", "detected", "late", "missed", "duplicates", "phantoms",
                    "retracted"]].sum()
    table["latency_p50_s"] = groups["latency_s"].median()
    table["latency_p95_s"] = groups["latency_s"].quantile(0.95)
    table["latency_max_s"] = groups["latency_s"].max()
    return table


def outcomes_table(run_dir: str | Path) -> pd.DataFrame:
    """Every scenario's outcomes of a stored run, with a ``scenario`` column. A table that
    cannot be read or lacks an outcome column is left out with a warning, as
    :func:`reports.load.load_run` leaves it out (and lists it among the scenario's
    problems): the notebook read it with a pyarrow traceback, or compared a table of
    other rows with the report's."""
    parts = []
    for path in sorted(Path(run_dir).glob("*/outcomes.parquet")):
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a damaged file
            log.warning("%s/outcomes.parquet left out: it could not be read (%s)",
                        path.parent.name, type(exc).__name__)
            continue
        missing = [c for c in OUTCOME_COLUMNS if c not in frame.columns]
        if missing:
            log.warning("%s/outcomes.parquet left out: it lacks columns %s",
                        path.parent.name, ", ".join(missing))
            continue
        frame.insert(0, "scenario", path.parent.name)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else _empty(["scenario",
                                                                      *OUTCOME_COLUMNS])
