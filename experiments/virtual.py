"""Run one scenario in virtual time: the simulator and the real monitor in one process, on
one asyncio event loop whose clock jumps to the next timer whenever nothing is ready
(``looptime``). They talk over real loopback sockets and the code paths are production's.

What changes against :func:`experiments.runner.run_scenario` (real time, two processes):

- one clock: :class:`monitor.clock.LoopClock` is passed to the monitor and its
  ``now_ns`` to the simulator (replay, faults, explorer lag, history). Nothing is patched;
- ``speed`` is 1: virtual time needs no compression, so every interval is the production
  one (simulated seconds = loop seconds);
- computing costs no time: latency here is protocol and fault latency (backoff,
  heartbeats, fallback, polling intervals, index lag), never CPU. Resources (CPU, RSS) are
  not measured in this mode (``None``), and the report says so;
- deterministic: the same scenario and seed give byte-identical detections and outcomes
  (faults with jitter draw from seeded generators; no threads: a thread would make the
  loop step in real time);
- streamed: a profile's chain is synthesised while it is replayed and a recording file is
  read as it is replayed, with a window of recent blocks in memory, so a simulated week
  is never held whole (the wallets are counted from the block plans beforehand). When
  the run has a core to itself (:func:`render_ahead_wanted`), a helper process renders
  the chain (:mod:`simulator.render_ahead`): the same blocks, built on the other core;
  the simulator and the monitor still share this process and its loop.

The run store files are the same (``run.json`` with ``"clock": "virtual"``), and the same
analysis reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from experiments.analysis import RUN_FILE, analyze_scenario_dir
from experiments.runner import (
    API_KEY,
    INTERRUPTED,
    HarnessError,
    RunnerOptions,
    _base_run,
    _write_toml,
    prepare_scenario_dir,
    restart_wallets,
    wallet_counts,
)
from experiments.scenario import Scenario
from simulator.render_ahead import AheadSynthSource
from simulator.source import BlockSource, FileSource, SynthSource

__all__ = ["VIRTUAL_EPOCH_NS", "render_ahead_wanted", "run_scenario_virtual"]

log = logging.getLogger("experiments.virtual")

_NS = 1_000_000_000
VIRTUAL_EPOCH_NS = 1_767_225_600 * _NS  # wall clock of loop time 0 (2026-01-01T00:00Z)


def _noop_cycles(text: str | None) -> int:
    """``EXPERIMENTS_NOOP_CYCLES``: a whole number >= 0; anything else is said and 0."""
    if text is None or not text.strip():
        return 0
    try:
        value = int(text)
        if value < 0:
            raise ValueError
    except ValueError:
        log.warning("EXPERIMENTS_NOOP_CYCLES=%r is not a whole number >= 0: using 0",
                    text[:40])
        return 0
    return value


#: looptime's extra idle checks before the clock jumps. With 0 the clock still jumps only
#: after two polls of the sockets in a row found nothing to run (looptime always runs one
#: idle cycle); each extra check is one more loop turn per jump. 4 gave the same bytes on
#: the default matrix and the soak and cost ~10 % more CPU (a soak's 6 hours: 14.9 s user
#: against 13.4 s); the test pins that the results do not depend on it.
NOOP_CYCLES = _noop_cycles(os.environ.get("EXPERIMENTS_NOOP_CYCLES"))
_READY_S = 30.0  # virtual seconds the monitor gets to connect before the replay starts


def run_scenario_virtual(scenario: Scenario, sdir: Path, options: RunnerOptions
                         ) -> dict[str, Any]:
    """Run ``scenario`` into ``sdir`` in virtual time and return its summary (harness
    failures come back as ``status: harness_error``, never as results)."""
    import looptime

    scenario = scenario.model_copy(update={"speed": 1.0})
    sdir.mkdir(parents=True, exist_ok=True)
    _write_toml(sdir / "scenario.toml", scenario.to_toml_dict())
    run = _base_run(scenario)
    run["clock"] = "virtual"
    try:
        recording, wallets = prepare_scenario_dir(scenario, sdir, options.cache_dir, run,
                                                  stream_synth=True)
        plan: list[tuple[list[str], list[str]]] | None = None
        if any(r.changes_wallets for r in scenario.restarts):
            plan = restart_wallets(scenario, wallets,
                                   wallet_counts(scenario, recording, options.cache_dir))
            # every wallet some monitor of the run watched: the truth's (run["watch"]
            # says when each was watched)
            run["wallets"] = [*wallets, *(w for added, _ in plan for w in added)]
        loop = looptime.new_event_loop(noop_cycles=NOOP_CYCLES, _enabled=True)
        try:
            with _logs_to(sdir / LOG_FILE):
                loop.run_until_complete(_run(scenario, sdir, recording, wallets, run,
                                             render_ahead=options.render_ahead,
                                             plan=plan))
        finally:
            loop.close()
        run["status"] = "ok"
    except HarnessError as exc:
        run["status"], run["error"] = "harness_error", str(exc)
    except Exception as exc:  # the harness's own bug must not look like a result
        run["status"] = "harness_error"
        run["error"] = f"harness failure (virtual time): {type(exc).__name__}: {exc}"
    except BaseException:  # Ctrl-C, SIGTERM: run.json said "running" for good
        run["status"], run["error"] = "harness_error", INTERRUPTED
        raise
    finally:
        (sdir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    return analyze_scenario_dir(sdir, second_process=options.render_ahead)


#: the monitor's and the simulator's log of a virtual run, in its scenario folder (a
#: real-time run has each process's stderr there)
LOG_FILE = "run.log"
_LOG_BYTES = 64 << 20  # then one older file: a week's warnings stay bounded
#: the loggers a virtual run's two sides write to
_RUN_LOGGERS = ("monitor", "simulator", "polyvocab", "asyncio")


@contextlib.contextmanager
def _logs_to(path: Path) -> Iterator[None]:
    """The monitor's and the simulator's log records go to ``path`` for the run, not to
    the console: with both sides in this process, their warnings (every reconnect, alert
    and malformed frame of a fault scenario, thousands a simulated day) were printed
    through the progress bar, where a real-time run keeps them in its processes' stderr
    files. The loggers' levels and handlers are restored after."""
    import logging.handlers

    handler = logging.handlers.RotatingFileHandler(path, maxBytes=_LOG_BYTES, backupCount=1,
                                                   encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in _RUN_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.level))
        logger.addHandler(handler)
        logger.propagate = False
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, propagate, level in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)
        handler.close()


#: a chain shorter than this is rendered in the run's own process: a helper's start
#: (~0.1-0.2 s) is worth it from about a simulated hour of blocks on
RENDER_AHEAD_MIN_BLOCKS = 1_500


def render_ahead_wanted(jobs: int) -> bool:
    """Whether virtual runs ``jobs`` at a time should render their chains in a helper
    process, and read their big files for the analysis in a second one: when a core is
    spare (``EXPERIMENTS_RENDER_AHEAD=0``/``1`` decides instead). Two runs on two cores
    have none: a helper would only add its pipe's cost."""
    forced = os.environ.get("EXPERIMENTS_RENDER_AHEAD", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        log.warning("EXPERIMENTS_RENDER_AHEAD=%r is neither 0 nor 1: deciding by the "
                    "spare cores", forced[:40])
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return jobs < cores


def _block_source(scenario: Scenario, recording: Path | None,
                  render_ahead: bool) -> BlockSource:
    """The simulator's blocks, streamed (a window of recent blocks in memory, never the
    whole recording): a profile's chain synthesised as it is replayed (by a helper
    process when ``render_ahead`` and the chain is long enough), or a file read as it is
    replayed, as ``serve --recording`` reads it in real time."""
    if recording is None:
        assert scenario.profile is not None
        blocks = scenario.synth_blocks()
        kind = (AheadSynthSource if render_ahead and blocks >= RENDER_AHEAD_MIN_BLOCKS
                else SynthSource)
        return kind(scenario.profile, seed=scenario.seed, blocks=blocks)
    return FileSource(recording)


async def _run(scenario: Scenario, sdir: Path, recording: Path | None, wallets: list[str],
               run: dict[str, Any], *, render_ahead: bool = False,
               plan: list[tuple[list[str], list[str]]] | None = None) -> None:
    source = _block_source(scenario, recording, render_ahead)
    try:
        await _run_on(source, scenario, sdir, wallets, run, plan=plan)
    finally:
        source.close()
        run["render_ahead"] = {"helper": isinstance(source, AheadSynthSource),
                               "helper_failures": getattr(source, "helper_failures", 0)}


async def _run_on(source: BlockSource, scenario: Scenario, sdir: Path, wallets: list[str],
                  run: dict[str, Any], *,
                  plan: list[tuple[list[str], list[str]]] | None = None) -> None:
    from monitor.clock import LoopClock
    from monitor.config import load_settings
    from monitor.errors import MonitorError
    from monitor.wallet_monitor import WalletMonitor
    from simulator.history import SimHistory
    from simulator.server import Simulator
    from simulator.settings import load_config

    # the loop given, not looked up at every read (~1 million reads a simulated day)
    clock = LoopClock(asyncio.get_running_loop(), epoch_ns=VIRTUAL_EPOCH_NS)
    sim = Simulator(source,
                    settings=load_config(sdir / "sim_config.toml"),
                    speed=1.0, history=SimHistory(sdir / "sim_history.jsonl",
                                                  clock_ns=clock.now_ns),
                    autostart=False, clock_ns=clock.now_ns)
    await sim.start()
    mon: WalletMonitor | None = None
    box: _Running | None = None
    try:
        urls = sim.urls
        run["urls"] = {"ws": urls["ws"], "http": urls["http"], "explorer": urls["explorer"]}
        cli: dict[str, Any] = {
            "mode": scenario.mode, "websocket_url": urls["ws"], "rpc_url": urls["http"],
            "explorer_url": urls["explorer"], "explorer_api_key": API_KEY,
            "wallets": wallets, "state_db": str(sdir / "monitor_state.sqlite"),
            "detections_path": str(sdir / "detections.jsonl"),
            "history_path": str(sdir / "monitor_history.jsonl"), "speed": 1.0,
            # no process crashes in virtual time, and an fsync costs real time only: the
            # crash-safe NORMAL keeps long runs fast without changing what is measured
            "state_synchronous": "NORMAL"}

        def settings_for(watched: list[str]) -> Any:
            try:
                return load_settings({**cli, "wallets": watched},
                                     config_file=sdir / "monitor_config.toml", environ={})
            except MonitorError as exc:
                raise HarnessError(f"monitor settings: {exc.message}") from None

        settings = settings_for(wallets)
        box = _Running(WalletMonitor(settings, clock=clock))
        mon = box.mon
        await mon.start()
        await mon.wait_connected(_READY_S)
        start_ns = clock.now_ns()
        sim.begin(start_ns)
        end_ns = start_ns + int(scenario.sim_duration_s * _NS)
        stop_at_ns = end_ns + int(scenario.grace_s * _NS)
        run.update(window_start_ns=start_ns, window_end_ns=end_ns)
        sampler = asyncio.create_task(_sample(box, scenario, sdir, clock, run))
        restarts = (asyncio.create_task(_restart(box, scenario, settings, clock, sim,
                                                 start_ns, run, plan=plan,
                                                 settings_for=settings_for))
                    if scenario.restarts else None)
        with _frozen_heap():
            await asyncio.sleep((stop_at_ns - clock.now_ns()) / _NS)
        sampler.cancel()
        if restarts is not None:
            if not restarts.done():  # validated to end inside the window: a restart hung
                restarts.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await restarts
                raise HarnessError(f"the monitor's restart {len(run['restarts'])} of "
                                   f"{len(scenario.restarts)} did not finish before the "
                                   "run's end")
            restarts.result()  # its failure is the harness's
        mon = box.mon
        if mon is not None and not mon.ready():
            dead = [k for k, v in mon.tasks_alive().items() if not v]
            run["tasks_dead_at_end"] = dead
    finally:
        mon = box.mon if box is not None else mon
        if mon is not None:
            await mon.stop()
        await sim.stop()
    run["resources"] = {"cpu_s": None, "rss_peak_bytes": None, "source": "virtual time: "
                        "not measured (computing costs no time on a virtual clock)"}
    run["pid"] = os.getpid()  # the process that ran it (one a unit under --jobs/--seeds)
    run["stopped"] = {"monitor": "stopped", "simulator": "stopped"}


class _Running:
    """The run's monitor: the one started last, None while a restart has it down."""

    def __init__(self, mon: Any) -> None:
        self.mon: Any = mon


#: the simulator history's fault name of each restart kind: the restart is a fault
#: window as the simulator's are (``fault_start`` when it goes down, ``fault_stop`` when
#: the new monitor has started), so the checker counts a trade it delayed as in a fault
#: and the summary's ``faults`` lists it
RESTART_FAULTS = {"kill": "monitor_kill", "stop": "monitor_stop"}


async def _restart(box: _Running, scenario: Scenario, settings: Any, clock: Any,
                   sim: Any, start_ns: int, run: dict[str, Any], *,
                   plan: list[tuple[list[str], list[str]]] | None = None,
                   settings_for: Any = None) -> None:
    """The scenario's ``[[restarts]]``: at each, the monitor stopped (``stop``) or killed
    (``kill``: :func:`_kill`), ``down_s`` simulated seconds with none, then a new
    monitor of the same settings started on the same state store, detections file and
    history (a new process's). ``run["restarts"]`` records each as done.

    ``plan`` (:func:`experiments.runner.restart_wallets`): the wallets each restart adds
    and removes; the new monitor's settings (``settings_for(wallets)``) watch the list so
    changed. The harness's own account of it, from the simulator (never the monitor):
    a removed wallet is judged up to the simulator's head as the old monitor was taken
    down (``stop_block``: every trade of its mined while it was watched is owed, and
    the new monitor delivers what the old one had not, :mod:`monitor.departed`), an
    added one from after the head as the new monitor starts (``launch_block``: its
    launch point, earlier trades never the bot's). The blocks published after
    ``stop_block`` while the old monitor stopped (up to ``removed_block``, the head
    once it was down) or while the new one started (up to ``started_block``, the head
    once it had started: the monitor reads its own launch point in between, and reads
    a removed wallet's owed trades up to there) are
    neither's to judge: such a trade of theirs is neither expected nor, delivered, a
    phantom. All go on the restart's ``fault_stop`` row (``added_wallets``,
    ``removed_wallets`` and the four heads), which the truth reads, and into
    ``run["watch"]``: each wallet's watch interval."""
    from monitor.wallet_monitor import WalletMonitor

    done: list[dict[str, Any]] = run.setdefault("restarts", [])
    watched = list(settings.wallets)
    watch: dict[str, dict[str, Any]] | None = None
    if plan is not None:
        watch = {w: _interval(w) for w in watched}
        run["watch"] = list(watch.values())
    for i, r in enumerate(scenario.restarts):
        added, removed = plan[i] if plan is not None else ([], [])
        due_ns = start_ns + int(r.at * _NS)
        await asyncio.sleep(max(0.0, (due_ns - clock.now_ns()) / _NS))
        mon, fid = box.mon, f"restart{i + 1}"
        down_ns = clock.now_ns()
        sim.history.record("fault_start", t_ns=down_ns, fault_id=fid,
                           name=RESTART_FAULTS[r.kind], target="monitor",
                           params={"down_s": r.down_s})
        sim.history.flush()
        stop_block = sim.chain.head_number  # the removed wallets' last block judged
        box.mon = None
        await (mon.stop() if r.kind == "stop" else _kill(mon))
        removed_block = sim.chain.head_number  # ... and the last one it could deliver
        removed_s = (clock.now_ns() - start_ns) / _NS
        await asyncio.sleep(max(0.0, (down_ns + int(r.down_s * _NS) - clock.now_ns()) / _NS))
        changes: dict[str, Any] = {}
        if added or removed:
            gone = set(removed)
            watched = [w for w in watched if w not in gone] + added
            settings = settings_for(watched)
            launch_block = sim.chain.head_number  # the added wallets' launch point
            changes = {"added_wallets": added, "removed_wallets": removed,
                       "launch_block": launch_block, "stop_block": stop_block,
                       "removed_block": removed_block}
        new = WalletMonitor(settings, clock=clock)
        await new.start()
        box.mon = new
        up_ns = clock.now_ns()
        if changes:  # the first block judged of the added wallets is the one after it
            changes["started_block"] = sim.chain.head_number
        sim.history.record("fault_stop", t_ns=up_ns, fault_id=fid,
                           name=RESTART_FAULTS[r.kind], **changes)
        sim.history.flush()
        record = {"at_s": (down_ns - start_ns) / _NS, "kind": r.kind,
                  "down_s": (up_ns - down_ns) / _NS}
        if changes:
            # the monitor's own launch points of the added wallets, beside the harness's
            # (told, not trusted: the truth takes launch_block)
            stored = new.store.launches() if new.store is not None else {}
            record.update(added=added, removed=removed,
                          **{k: changes[k] for k in _HEADS},
                          launches_stored={w: stored.get(w) for w in added})
        if watch is not None:
            up_s = (up_ns - start_ns) / _NS
            for w in removed:  # (its owed trades are read up to the new monitor's start)
                started = changes["started_block"]
                watch[w].update(to_s=removed_s, until_block=started)
                if started > stop_block:
                    watch[w]["unjudged_blocks"].append([stop_block + 1, started])
            for w in added:
                launch, started = changes["launch_block"], changes["started_block"]
                watch[w] = _interval(w, from_s=up_s, after_block=launch)
                if started > launch:
                    watch[w]["unjudged_blocks"].append([launch + 1, started])
            run["watch"] = list(watch.values())
        done.append(record)


#: the simulator's heads a restart that changes the wallet list records (in this order)
_HEADS = ("stop_block", "removed_block", "launch_block", "started_block")


def _interval(wallet: str, *, from_s: float | None = None, after_block: int | None = None
              ) -> dict[str, Any]:
    """One wallet's watch interval in ``run.json`` ``watch``: watched from ``from_s``
    (simulated s into the measured window; None: from the start) to ``to_s`` (None: to
    the end), its trades the bot's in the blocks after ``after_block`` (None: any) up to
    ``until_block`` (None: any), but for the ``unjudged_blocks`` ranges ([first, last]:
    published while a monitor stopped or started around the change)."""
    return {"wallet": wallet, "from_s": from_s, "to_s": None, "after_block": after_block,
            "until_block": None, "unjudged_blocks": []}


async def _kill(mon: Any) -> None:
    """Stop ``mon`` as a killed process stops (:meth:`WalletMonitor.abort`)."""
    await mon.abort()


_GC_THRESHOLDS = (50_000, 20, 10)  # young collections every 50,000 allocations, not 700


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """The objects of the start-up (modules, both sides' set-up) leave the cyclic garbage
    collector's view for the run (``gc.freeze``), so its full collections walk only what
    the run itself allocates, and young collections run less often (``_GC_THRESHOLDS``).
    Collections cost CPU only, which virtual time does not measure: full ones over the
    whole recording in memory were a fifth of a day's CPU; over a streamed week they were
    still 11 % (104 of 949 s) with the defaults. Nothing is freed differently: frozen
    objects were alive anyway, the unfreeze at the end hands them back, and the
    thresholds are restored."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


SAMPLE_EVERY_S = 3600.0  # virtual seconds between resource samples


async def _sample(box: Any, scenario: Scenario, sdir: Path, clock: Any,
                  run: dict[str, Any]) -> None:
    """Every simulated hour: what the process and the monitor hold (``run["samples"]``),
    so a soak can show that nothing grows from the first simulated day to the last. RSS
    and file descriptors are the whole process (the simulator is in it too); outbox,
    dedup entries, live queues and the state database are the monitor's own.

    Each sample starts with a full collection: with the run's spaced-out collections
    (``_GC_THRESHOLDS``) a full one came only every ~10 simulated hours, and the cyclic
    garbage of the hours between (exception tracebacks of aiohttp and websockets
    connections the faults break, ~0.5 MB a simulated hour of the soak) stood in the
    heap until then: ~5 MB of sawtooth in the samples, and the allocator's arenas grown
    to its peaks (a soak day: 76 pymalloc arenas, 72 with the hourly collection). The
    default thresholds a production monitor runs with collect it far sooner."""
    import psutil

    proc = psutil.Process()
    samples: list[dict[str, Any]] = run.setdefault("samples", [])
    start = clock.now_ns()
    while True:
        gc.collect()
        db = sdir / "monitor_state.sqlite"
        db_bytes = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal"))
                       if p.exists())
        # the run's monitor (a _Running: None while a restart has it down), or one given
        mon = box.mon if isinstance(box, _Running) else box
        samples.append({
            "t_s": (clock.now_ns() - start) / _NS,
            "rss_bytes": proc.memory_info().rss,
            "fds": proc.num_fds(),
            "outbox": (mon.store.outbox_size()
                       if mon is not None and mon.store is not None else None),
            "dedup_entries": (len(mon.pipeline.dedup)
                              if mon is not None and mon.pipeline is not None else None),
            "live_queue": (sum(sh._inbox.qsize() for sh in mon.shards)
                           if mon is not None else None),
            "state_db_bytes": db_bytes,
            "cpu_s": time.process_time(),  # the process's CPU so far (both sides)
        })
        await asyncio.sleep(SAMPLE_EVERY_S)
