"""``python -m experiments``: run, analyze, validate and list scenarios.

    python -m experiments run [SCENARIO ...] [--quick] [--jobs N] [--out results/]
    python -m experiments analyze RUN
    python -m experiments validate [SCENARIO ...]
    python -m experiments list
    python -m experiments chaos [--runs N] [--seed S] [--duration S] [--jobs N]

A scenario is a name from ``experiments/scenarios`` or a path; none = the default matrix.
User mistakes print one ``error: ...`` line and exit 2. A completed ``run`` or ``analyze``
exits 0 even when some scenario is a harness error or inconclusive: that is recorded in
the store (and the report shows it as INCONCLUSIVE), and named in the last line printed.
An ``analyze`` that fails on a scenario whose earlier analysis had succeeded (a file damaged
since) writes nothing for it, keeps its earlier results, says so and exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from experiments.scenario import MAX_JOBS, MAX_SEEDS, Scenario
from polyvocab.cli_args import PlainParser, missing_harness, reader_gone
from polyvocab.small_files import file_error_text, is_special
from polyvocab.version import package_version

__all__ = ["CliError", "main"]


class CliError(Exception):
    """A user mistake: one line, exit code 2."""


def _count(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An integer of at least ``minimum`` (and at most ``maximum``) (argparse type)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text!r}")
        if maximum is not None and n > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}, got {text!r}")
        return n
    return parse


def _seconds(*, positive: bool = False, signed: bool = False) -> Callable[[str], float]:
    """A finite number (argparse type): >= 0 by default, > 0 with ``positive``, any sign
    with ``signed``."""
    def parse(text: str) -> float:
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if positive and x <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
        if not signed and x < 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
        return x
    return parse


def _path(text: str) -> str:
    """A file or folder path that names something (argparse type): ``''`` is the current
    folder to ``pathlib``, and a run store written there by accident is not what was meant."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = PlainParser(prog="python -m experiments",
                         description="Run the monitor against the simulator under scenarios.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=PlainParser)
    run = sub.add_parser("run", help="run scenarios (default: the whole default matrix)")
    run.add_argument("scenarios", nargs="*", type=_path, metavar="SCENARIO",
                     help="scenario names (experiments/scenarios) or TOML paths "
                          "(default: the whole default matrix)")
    run.add_argument("--quick", action="store_true",
                     help="shrink every scenario (fewer simulated seconds, higher speed) "
                          "(default: off)")
    run.add_argument("--jobs", type=_count(1, MAX_JOBS), default=1, metavar="N",
                     help="scenarios run in parallel (default: %(default)s)")
    run.add_argument("--out", type=_path, default="results", metavar="DIR",
                     help="run store directory (default: %(default)s)")
    run.add_argument("--executor", default="local", metavar="EXECUTOR",
                     help="local (default), dask (a local Dask cluster of --jobs workers) "
                          "or dask://HOST:PORT (an existing Dask scheduler; workers must "
                          "see --out at the same path)")
    run.add_argument("--clock", choices=("real", "virtual"), default="real",
                     help="real: simulator and monitor as processes at the scenario's "
                          "speed (default); virtual: both in one process on a virtual "
                          "clock, speed 1, protocol latency only (CPU time is zero)")
    run.add_argument("--seeds", type=_count(1, MAX_SEEDS), default=None, metavar="N",
                     help="run every scenario under seeds 1..N and pool them (default: the "
                          "scenario's own seed, once)")
    run.add_argument("--no-progress", action="store_true",
                     help="no live progress bar (default: the bar on a terminal)")
    ana = sub.add_parser("analyze", help="re-run truth and checker on a stored run")
    ana.add_argument("run", type=_path, metavar="RUN", help="results/<run-id> or results/latest")
    val = sub.add_parser("validate", help="validate scenario files")
    val.add_argument("scenarios", nargs="*", type=_path, metavar="SCENARIO",
                     help="scenario names or TOML paths (default: the default matrix)")
    sub.add_parser("list", help="list the default matrix")
    cha = sub.add_parser("chaos", help="random fault schedules in virtual time: a search for "
                                       "one that makes the monitor miss, repeat or invent a "
                                       "trade (exit 1 when one does)")
    cha.add_argument("--runs", type=_count(1, MAX_SEEDS), default=20, metavar="N",
                     help="schedules to try (default: %(default)s)")
    cha.add_argument("--seed", type=_count(0), default=1, metavar="S",
                     help="seed of the first schedule; the runs take S..S+N-1 "
                          "(default: %(default)s)")
    cha.add_argument("--duration", type=_seconds(positive=True), default=3600.0, metavar="S",
                     help="simulated seconds a run (at least 500) (default: %(default)s)")
    cha.add_argument("--jobs", type=_count(1, MAX_JOBS), default=1, metavar="N",
                     help="runs in parallel (default: %(default)s)")
    cha.add_argument("--out", type=_path, default="results/chaos", metavar="DIR",
                     help="run store directory (default: %(default)s)")
    cha.add_argument("--no-progress", action="store_true",
                     help="no live progress bar (default: the bar on a terminal)")
    rec = sub.add_parser("reconcile", help="a live pilot's store -> a run (truth from the chain)")
    rec.add_argument("store", type=_path, metavar="STORE", help="the pilot's --store directory")
    rec.add_argument("--rpc-url", metavar="URL",
                     help="JSON-RPC HTTP URL for the truth (required: this flag, or in the "
                          "environment RPC_URL_FILE, a file whose first line is the URL, "
                          "or RPC_URL; a URL with a key in it belongs in the file, not in "
                          "argv, which every user of the machine sees)")
    rec.add_argument("--out", type=_path, default="results", metavar="DIR",
                     help="run store directory (default: %(default)s)")
    rec.add_argument("--finality-depth", type=_count(0), default=32, metavar="N",
                     help="blocks behind the head counted as final (default: %(default)s)")
    rec.add_argument("--chunk-blocks", type=_count(1), default=500, metavar="N",
                     help="blocks per eth_getLogs call (default: %(default)s)")
    rec.add_argument("--rate", type=_seconds(positive=True), default=5.0, metavar="X",
                     help="eth_getLogs calls per second (default: %(default)s)")
    rec.add_argument("--wait", type=_seconds(), default=600.0, metavar="S",
                     help="seconds to wait for finality (default: %(default)s)")
    rec.add_argument("--grace", type=_seconds(), default=120.0, metavar="S",
                     help="blocks of the pilot's last GRACE seconds are not judged "
                          "(default: %(default)s)")
    rec.add_argument("--actionable-window", type=_seconds(positive=True), default=5.0, metavar="S",
                     help="a delivery later than this after the block is late "
                          "(default: %(default)s)")
    rec.add_argument("--timestamp-offset-s", type=_seconds(signed=True), default=0.0, metavar="S",
                     help="seconds to add to block timestamps (0 on a live chain; a replay) "
                          "(default: %(default)s)")
    rec.add_argument("--end-block", type=_count(0), metavar="N",
                     help="last block judged, at most the last head the pilot saw "
                          "(default: its last head seen GRACE seconds before its end)")
    return parser


def _load(names: Sequence[str]) -> list[Scenario]:
    from experiments.scenario import list_default_scenarios, load_scenario, resolve_scenario

    paths = [resolve_scenario(n) for n in names] if names else list_default_scenarios()
    if not paths:
        raise CliError("no scenarios found")
    scenarios = [load_scenario(p) for p in paths]
    for path, s in zip(paths, scenarios, strict=True):
        _check_recording(path, s)
    return scenarios


def _check_recording(path: Path, scenario: Scenario) -> None:
    """A scenario's recording file (not a shipped one) exists and is a file: one that
    did not, or a folder, validated and then made each run a harness error, after the
    scenarios before it in the matrix had run. Checked here, not in the scenario itself:
    a stored run's scenario.toml is read again by ``analyze`` after the file may be gone.
    A relative path is the runner's: from the current folder."""
    from simulator.synth import SHIPPED_RECORDINGS

    if scenario.recording is None or scenario.recording in SHIPPED_RECORDINGS:
        return
    rec = Path(scenario.recording)
    where = f"{path}: recording: {scenario.recording}"
    if not rec.exists():
        raise CliError(f"{where}: no such file" + (
            f" (a relative path is read from the current folder, {Path.cwd()})"
            if not rec.is_absolute() else ""))
    if rec.is_dir():
        raise CliError(f"{where}: a folder, not a recording file (.jsonl or .jsonl.gz)")
    if is_special(rec):  # a FIFO: the simulator's open would wait for a writer
        raise CliError(f"{where}: not a regular file")


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    from experiments.matrix import run_matrix, summary_table

    scenarios = _load(args.scenarios)
    restarting = [s.name for s in scenarios if s.restarts]
    if restarting and args.clock != "virtual":
        from experiments.runner import REAL_TIME_RESTARTS

        raise CliError(f"{', '.join(restarting)}: {REAL_TIME_RESTARTS}")
    out = _run_store(args.out)
    result = run_matrix(scenarios, out=out, command=[sys.executable, "-m", "experiments",
                                                    *sys.argv[1:]],
                        quick=args.quick, jobs=args.jobs, executor=args.executor,
                        console=console, progress=not args.no_progress, clock=args.clock,
                        seeds=list(range(1, args.seeds + 1)) if args.seeds else None)
    console.print(summary_table(result.summaries, title=f"run {result.run_dir.name}"))
    console.print(f"run directory: {result.run_dir}", markup=False, highlight=False)
    _say_not_measured(result.summaries, console)
    return 0


def _run_store(path: str, *, make: bool = True) -> Path:
    """``--out``, checked and made before anything runs (``run`` and ``chaos``); checked
    only with ``make`` False (``reconcile``: it makes it once the pilot's store has been
    read, so a damaged or missing store leaves no empty run store behind)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out}: not a directory")
    latest = out / "latest"
    if latest.exists() and not latest.is_symlink():
        # replaced by the link to this run at its end: a folder there ended the run (or
        # a chaos search of hours), after it had run, with "error: Is a directory:
        # .latest-<pid>" and no table
        raise CliError(f"--out {out}: {latest} is a "
                       f"{'folder' if latest.is_dir() else 'file'}, not the link to the "
                       "newest run that each run replaces; move it away")
    for cache in (out / ".cache", out / ".cache" / "recordings"):
        if cache.exists() and not cache.is_dir():  # made every run a harness error
            raise CliError(f"--out {out}: {cache} is a file, not the folder of the "
                           "recordings' cache; move it away")
    if not make:  # where it would be made: under a folder this user may write in
        parent = out
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise CliError(f"--out {out}: cannot make the run store there ({parent} is "
                           f"{'not a folder' if not parent.is_dir() else 'not writable'})")
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # /proc, under a file, no permission: before anything runs
        raise CliError(f"--out {out}: cannot make the run store there "
                       f"({exc.strerror or exc})") from None
    return out


def _cmd_chaos(args: argparse.Namespace, console: Console) -> int:
    from experiments.chaos import FIRST_FAULT_S, RECOVERY_S, run_chaos
    from experiments.matrix import summary_table

    if args.duration < FIRST_FAULT_S + RECOVERY_S + 20:
        raise CliError(f"--duration must be at least {FIRST_FAULT_S + RECOVERY_S + 20:.0f} "
                       f"simulated seconds (faults from {FIRST_FAULT_S:.0f} s, "
                       f"{RECOVERY_S:.0f} s to recover), got {args.duration:g}")
    out = _run_store(args.out)
    result = run_chaos(range(args.seed, args.seed + args.runs), out=out,
                       duration_s=args.duration, jobs=args.jobs,
                       command=[sys.executable, "-m", "experiments", *sys.argv[1:]],
                       console=console, progress=not args.no_progress)
    console.print(summary_table(_as_judged(result.summaries),
                                title=f"chaos run {result.run_dir.name}"))
    for s in result.summaries:
        if s.get("judged_on"):
            every = s.get("all_wallets") or {}
            console.print(f"  {s.get('scenario')} (ws wallets): miss, dup and phan counted "
                          f"on its {s['judged_on']} (polled wallets never retract a reorged "
                          f"trade); all wallets: {every.get('missed')} missed, "
                          f"{every.get('duplicates')} duplicates, {every.get('phantoms')} "
                          "phantoms", markup=False, highlight=False)
    for s in result.summaries:
        if s.get("wallet_changes"):
            console.print(f"  {s.get('scenario')} (wallets changed): its restarts change the "
                          f"wallet list ({s['wallet_changes']}); each wallet judged inside "
                          "its watch interval", markup=False, highlight=False)
    console.print(f"run directory: {result.run_dir}", markup=False, highlight=False)
    if not result.failures:
        console.print(f"{args.runs} random schedule(s): no trade missed, repeated or "
                      "invented")
        return 0
    console.print(f"[red]{len(result.failures)} of {args.runs} schedule(s) broke the "
                  "invariants[/]")
    for name, why in result.failures:
        console.print(f"  {name}: {'; '.join(why)}; replay: python -m experiments run "
                      f"{result.run_dir / name / 'scenario.toml'} --clock virtual",
                      markup=False, highlight=False)
    return 1


def _as_judged(summaries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The chaos table's rows: as the runs are judged, a run judged on its WebSocket
    wallets alone (``judged_on``) labelled so by its name, and a run whose restarts change
    the wallet list (``wallet_changes``) too."""
    return [{**s, "scenario": str(s.get("scenario"))
             + (" (ws wallets)" if s.get("judged_on") else "")
             + (" (wallets changed)" if s.get("wallet_changes") else "")}
            for s in summaries]


def _say_not_measured(summaries: Sequence[Mapping[str, Any]], console: Console) -> None:
    """The scenarios without results, each with why (the table has no room for it)."""
    bad = [s for s in summaries if s.get("status") != "ok"]
    if bad:
        names = ", ".join(str(s.get("scenario")) for s in bad)
        console.print(f"[yellow]not measured (harness error or inconclusive): "
                      f"{escape(names)}[/]")
    for s in bad:
        console.print(f"  {s.get('scenario')}: {str(s.get('error') or s.get('status'))[:300]}",
                      markup=False, highlight=False)


def _cmd_analyze(args: argparse.Namespace, console: Console) -> int:
    from experiments.analysis import AnalysisFailed
    from experiments.matrix import summary_table
    from experiments.store import load_run_summary, resolve_run, write_run_summary

    run_dir = resolve_run(args.run)
    _refuse_special_files(run_dir)
    try:
        order = [s["scenario"] for s in load_run_summary(run_dir)["scenarios"]]
    except (OSError, ValueError, KeyError, TypeError):
        order = []
    order += [n for n in _manifest_names(run_dir) if n not in order]
    dirs = {p.parent.name: p.parent for p in run_dir.glob("*/run.json")}
    # a scenario run under seeds whose pool failed (a seed's harness error) or was
    # interrupted has no run.json of its own, only seeds/<s>/: it was "no scenarios
    # stored" or "its folder is missing", and its stored seeds were not analysed
    dirs.update((p.name, p) for p in run_dir.iterdir()
                if p.name not in dirs and (p / "seeds").is_dir())
    seeds_of = _manifest_seeds(run_dir)
    names = [n for n in order if n in dirs] + sorted(set(dirs) - set(order))
    if not names:
        raise CliError(f"{args.run}: no scenarios stored in this run")
    from experiments.virtual import render_ahead_wanted

    spare = render_ahead_wanted(1)  # one scenario at a time: a second process may read
    summaries, failed = [], []
    for n in names:
        try:
            summaries.append(_analyze_stored(dirs[n], spare, seeds_of.get(n)))
        except AnalysisFailed as exc:  # a file damaged since: the good results stand
            summaries.append(exc.previous)
            failed.append(str(exc))
        except RecursionError:  # a run.json of [[[[...]]]]: was a traceback; nothing of it
            # was written yet, so its earlier results (if any) stand
            why = "a file of it is JSON nested too deep (damaged)"
            summaries.append(_previous(dirs[n]) or {"scenario": n, "status": "inconclusive",
                                                   "error": why})
            failed.append(f"{n}: {why}; its earlier results are kept")
    for n in order:
        if n not in dirs:  # listed, but its folder is gone: said, kept in the summary
            summaries.append({"scenario": n, "status": "missing",
                              "error": f"{n}/ is missing from the run directory"})
            failed.append(f"{n}: listed in the run but its folder {n}/ is missing")
    write_run_summary(run_dir, summaries)
    console.print(summary_table(summaries, title=f"run {run_dir.name} (re-analysed)"))
    console.print(f"run directory: {run_dir}", markup=False, highlight=False)
    _say_not_measured(summaries, console)
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failed else 0


def _previous(sdir: Path) -> dict[str, Any] | None:
    from experiments.analysis import previous_summary

    try:
        return previous_summary(sdir)
    except RecursionError:
        return None


#: how deep a run directory is walked for FIFOs: <run>/<scenario>/seeds/<seed>/<file>
_RUN_DEPTH = 4


def _refuse_special_files(run_dir: Path) -> None:
    """A FIFO (or a device, a socket) anywhere in a run directory is a :class:`CliError`
    before anything is read or written: opening one to read or to write waits for a
    partner, and ``analyze`` hung on it, signals and all."""
    for top, dirs, files in os.walk(run_dir):
        depth = len(Path(top).relative_to(run_dir).parts)
        if depth >= _RUN_DEPTH:
            dirs[:] = []
        for name in files:
            path = Path(top) / name
            if is_special(path):
                raise CliError(f"{path}: not a regular file (a FIFO or a device in the run "
                               "directory); nothing was analysed")


def _manifest_names(run_dir: Path) -> list[str]:
    """The scenarios the run's manifest lists (``{"name": ...}`` entries), or none."""
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        entries = manifest.get("scenarios") or []
        return [e["name"] if isinstance(e, dict) else e for e in entries
                if isinstance(e, str) or (isinstance(e, dict) and isinstance(e.get("name"),
                                                                             str))]
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        return []


def _manifest_seeds(run_dir: Path) -> dict[str, list[int]]:
    """The seeds the run's manifest says each scenario was run under (``--seeds``)."""
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        seeds = manifest.get("seeds") or {}
        return {str(n): [int(k) for k in ss] for n, ss in seeds.items()
                if isinstance(ss, list) and all(isinstance(k, int) and not isinstance(k, bool)
                                                for k in ss)}
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        return {}


def _analyze_stored(sdir: Path, spare: bool,
                    planned: list[int] | None = None) -> dict[str, Any]:
    """One stored scenario analysed again: a scenario run under several seeds has each
    seed's run (``seeds/<seed>/``) analysed and pooled again; its own folder holds the
    pool and a copy of the first seed's files, which alone would replace the pool with
    seed 1's results. A seed the manifest ran (``planned``) without a run.json (the run
    interrupted) is a failed seed of the pool, not left out of it: a pool of the seeds
    that happened to finish read as the whole run."""
    from experiments.analysis import (
        AnalysisFailed,
        analyze_scenario_dir,
        empty_summary,
        previous_summary,
    )
    from experiments.scenario import ScenarioError, load_scenario
    from experiments.seeds import pool

    seeds_dir = sdir / "seeds"
    stored = {int(p.name) for p in seeds_dir.iterdir()
              if p.name.isdigit() and (p / "run.json").exists()} \
        if seeds_dir.is_dir() else set()
    seeds = sorted(stored | set(planned or ())) if seeds_dir.is_dir() else []
    if not seeds:
        return analyze_scenario_dir(sdir, second_process=spare, keep_previous=True)
    previous = previous_summary(sdir)
    toml = sdir / "scenario.toml"
    if not toml.exists():  # a pool that failed copies no seed's files up: any seed's
        toml = next((seeds_dir / str(k) / "scenario.toml" for k in seeds
                     if (seeds_dir / str(k) / "scenario.toml").exists()), toml)
    try:
        scenario = load_scenario(toml)  # (a seed's copy: its name, mode, thresholds)
    except ScenarioError as exc:
        if previous is not None:
            raise AnalysisFailed(sdir.name, str(exc), previous) from None
        raise CliError(f"{sdir.name}: {exc}") from None
    summaries = []
    for seed in seeds:
        if seed not in stored:
            summaries.append(empty_summary({
                "scenario": sdir.name, "status": "harness_error",
                "error": f"seed {seed} has no run.json (never run, or interrupted)"}))
            continue
        try:
            summaries.append(analyze_scenario_dir(seeds_dir / str(seed),
                                                  second_process=spare, keep_previous=True))
        except AnalysisFailed as exc:  # the pool stands as it was, whole
            raise AnalysisFailed(sdir.name, f"seed {seed}: {exc.error}",
                                 previous or exc.previous) from None
    return pool(scenario, sdir, seeds, summaries)


def _cmd_validate(args: argparse.Namespace, console: Console) -> int:
    scenarios = _load(args.scenarios)
    for s in scenarios:
        console.print(f"ok  {s.name}" + ("  (its [[restarts]] run with --clock virtual "
                                         "only)" if s.restarts else ""),
                      markup=False, highlight=False)
    return 0


def _cmd_list(console: Console) -> int:
    from experiments.scenario import list_default_scenarios, load_scenario

    for path in list_default_scenarios():
        s = load_scenario(path)
        console.print(f"{s.name:<24} {s.mode:<9} {s.sim_duration_s:>6.0f} sim s  "
                      f"x{s.speed:<5g} {s.description}", highlight=False)
    return 0


def _reconcile_rpc_url(flag: str | None, env: Mapping[str, str]) -> str:
    """The truth's RPC URL: ``--rpc-url``, else ``RPC_URL_FILE`` (a file), else
    ``RPC_URL`` (:func:`polyvocab.secret_url.http_url_from`)."""
    from polyvocab.secret_url import UrlSourceError, http_url_from

    try:
        return http_url_from(flag, env, flag_name="--rpc-url")
    except UrlSourceError as exc:
        raise CliError(str(exc)) from None


def _cmd_reconcile(args: argparse.Namespace, console: Console) -> int:
    from experiments.matrix import summary_table
    from experiments.reconcile import ReconcileError, ReconcileOptions, reconcile
    from experiments.store import load_run_summary

    opts = ReconcileOptions(
        rpc_url=_reconcile_rpc_url(args.rpc_url, os.environ), out=_run_store(args.out, make=False),
        finality_depth=args.finality_depth,
        chunk_blocks=args.chunk_blocks, rate_per_s=args.rate, wait_s=args.wait,
        grace_s=args.grace, actionable_window_s=args.actionable_window,
        timestamp_offset_s=args.timestamp_offset_s, end_block=args.end_block)
    try:
        run_dir = reconcile(args.store, opts, command=[sys.executable, "-m", "experiments",
                                                      "reconcile", args.store],
                            log=lambda m: console.print(m, markup=False, highlight=False))
    except ReconcileError as exc:
        raise CliError(str(exc)) from None
    summaries = load_run_summary(run_dir)["scenarios"]
    console.print(summary_table(summaries, title=f"pilot reconciled: run {run_dir.name}"))
    console.print(f"run directory: {run_dir}", markup=False, highlight=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        with _stop_signals_as_interrupt() as received:
            code = _main(argv)
        if received and code == 130:  # stopped as on Ctrl-C, said as the signal it was
            return 128 + received[0]
        return code
    except ModuleNotFoundError as exc:  # a monitor-only install (pip install .)
        return missing_harness(exc, "python -m experiments")
    except KeyboardInterrupt:  # a Ctrl-C before the command's own handling (its imports)
        print("interrupted", file=sys.stderr)
        return 130


#: SIGTERM (``kill``, ``timeout``, a CI job cancelled) and SIGHUP (the terminal or the
#: ssh session closed; left alone when ignored, as under ``nohup``)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _stop_signals_as_interrupt() -> Iterator[list[int]]:
    """:data:`STOP_SIGNALS` stop a command as Ctrl-C does: the run's simulator and
    monitor (their own sessions, which a terminal's signals do not reach) are stopped,
    the run store gets its manifest and summary. By default either signal ended this
    process at once and left both running for good, and the run directory without a
    manifest. Under ``asyncio.run`` the loop's own SIGINT handler is called (it cancels
    the run, which stops the processes); elsewhere KeyboardInterrupt is raised. The list
    yielded holds the signals that came."""
    received: list[int] = []

    def on_stop(signum: int, frame: Any) -> None:
        received.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler) and handler is not signal.default_int_handler:
            handler(signal.SIGINT, frame)  # asyncio.Runner's: cancels the main task
            return
        raise KeyboardInterrupt

    previous: dict[int, Any] = {}
    try:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            # started with SIGINT ignored (a background job of a non-interactive shell,
            # a CI step): asyncio.run then installs no handler of its own, a stop signal
            # raised KeyboardInterrupt in the middle of the loop, and the run ended without
            # stopping its simulator and monitor. Python's own handler while the command runs
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, on_stop)
    except ValueError:  # not the main thread (a test calling main): nothing to install
        pass
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Console(Console):
    """rich's Console, but a reader gone (``| head``) only silences it: the command goes
    on and exits with its own code. rich's ``on_broken_pipe`` raised SystemExit(1), so
    ``experiments list | head -1`` exited 1 without a word, and ``analyze RUN | head``
    said "a re-analysis failed" by its exit code."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        reader_gone()


def _main(argv: Sequence[str] | None) -> int:
    from experiments.matrix import MatrixError
    from experiments.scenario import ScenarioError
    from experiments.store import StoreError

    args = build_parser().parse_args(argv)
    console = _Console(width=None if sys.stdout.isatty() else 200)
    try:
        if args.command == "run":
            return _cmd_run(args, console)
        if args.command == "analyze":
            return _cmd_analyze(args, console)
        if args.command == "validate":
            return _cmd_validate(args, console)
        if args.command == "reconcile":
            return _cmd_reconcile(args, console)
        if args.command == "chaos":
            return _cmd_chaos(args, console)
        return _cmd_list(console)
    except (CliError, ScenarioError, StoreError, MatrixError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (| head): not an error
        return reader_gone()
    except OSError as exc:  # a file or folder the command must write or read: one line
        print(f"error: {file_error_text(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

