"""Run one scenario: the simulator and the monitor as separate processes, then the checker.

Timeline of one run (real time; ``speed`` compresses the simulated one)::

    synth/load recording, pick wallets, write configs
    simulator serve --paused --port 0 -> READY {"ws": ..., "http": ..., "explorer": ...}
    monitor run --ws-url ...        -> READY
    POST /_sim/start                -> t0               window_start = t0 (block 0 due)
    ... sim_duration_s / speed ...                      window_end
    ... grace_s / speed ...         (late deliveries still count, as late)
    SIGINT monitor (SIGTERM, SIGKILL after timeouts), then the simulator
    run.json + analysis (truth, checker, Parquet, summary.json)

Only trades whose block became visible inside [window_start, window_end] are judged. The
replay starts when the monitor is up, so every speed sees the chain from the same phase.

A harness failure (a process that does not start, dies, never prints READY, or must be
killed) gives status ``harness_error`` with the stderr tail, never results.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import tomli_w

from experiments.analysis import RUN_FILE, analyze_scenario_dir
from experiments.orphans import die_with_parent
from experiments.scenario import Scenario, ScenarioError, load_scenario

__all__ = [
    "INTERRUPTED",
    "HarnessError",
    "Progress",
    "RunnerOptions",
    "pick_wallets",
    "restart_wallets",
    "run_scenario",
    "run_scenario_sync",
    "wallet_counts",
]

_NS = 1_000_000_000
API_KEY = "experiments-key"
#: the error of a run stopped by Ctrl-C or SIGTERM (its run.json must not say "running")
INTERRUPTED = "run interrupted (Ctrl-C or SIGTERM) before it ended: nothing measured"
_OK_EXIT = {0, 130, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGTERM}


class HarnessError(RuntimeError):
    """The harness itself failed (not the monitor's measured behaviour)."""


@dataclass(slots=True)
class Progress:
    """What the progress bar shows for one scenario."""

    scenario: str
    phase: str = "preparing"
    sim_s: float = 0.0
    sim_total_s: float = 0.0
    trades_seen: int = 0


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    cache_dir: Path
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 15.0
    sample_interval_s: float = 0.25
    on_progress: Callable[[Progress], None] | None = field(default=None)
    #: virtual time: a synthesised chain rendered by a helper process on a spare core
    #: (:mod:`simulator.render_ahead`); the same blocks either way
    render_ahead: bool = False


# -- recording and wallets -----------------------------------------------------------------

def synth_cache_name(profile: str, seed: int, blocks: int) -> str:
    """The cache's file stem of what ``synth`` writes for (profile, seed, blocks): with a
    digest of the profile's settings and of the synthesiser's source, so a cache written
    before either changed (a recalibrated profile, a new renderer) is not taken for the
    chain this version would synthesise. Keyed by name, seed and blocks alone, it was."""
    from simulator import profiles, synth
    from simulator.profiles import get_profile

    try:
        params: Any = get_profile(profile).params()
    except KeyError:  # an unknown profile: synth says so, naming the ones there are
        params = None
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for module in (synth, profiles):
        with contextlib.suppress(OSError, TypeError):
            digest.update(Path(str(module.__file__)).read_bytes())
    return f"{profile}-{digest.hexdigest()[:12]}-s{seed}-b{blocks}"


def _synth(profile: str, seed: int, blocks: int, cache_dir: Path) -> Path:
    """``python -m simulator synth`` into the cache (once per profile version, seed and
    blocks: :func:`synth_cache_name`)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{synth_cache_name(profile, seed, blocks)}.jsonl.gz"
    if path.exists():
        return path
    tmp = cache_dir / f".{profile}-{os.getpid()}-{time.monotonic_ns()}.jsonl.gz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "synth", "--profile", profile, "--seed", str(seed),
         "--blocks", str(blocks), "--out", str(tmp)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _SYNTHS.add(proc)
    try:
        # ~1.5 ms a block on this machine: a simulated week (400,000 blocks) takes minutes
        out, err = proc.communicate(timeout=600 + blocks // 200)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    finally:
        _SYNTHS.discard(proc)
    if proc.returncode != 0 or not tmp.exists():
        tmp.unlink(missing_ok=True)
        tail = "\n".join((err or out).strip().splitlines()[-10:])
        raise HarnessError(f"simulator synth --profile {profile} failed "
                           f"(exit {proc.returncode}): {tail}")
    os.replace(tmp, path)
    return path


#: ``synth`` processes running (in worker threads): an interrupted run stops them
_SYNTHS: set[subprocess.Popen[str]] = set()


def stop_synths() -> None:
    """Terminate the ``synth`` processes still running: a run interrupted while its
    recording was synthesised (a thread waiting on the process) otherwise waited for the
    whole synthesis (minutes for a simulated day or week) before it could exit."""
    for proc in list(_SYNTHS):
        with contextlib.suppress(OSError):
            proc.terminate()


def resolve_recording(scenario: Scenario, cache_dir: Path) -> Path:
    """The recording file the simulator will replay (synthesised once into the cache)."""
    if scenario.profile is not None:
        return _synth(scenario.profile, scenario.seed, scenario.synth_blocks(), cache_dir)
    assert scenario.recording is not None
    from simulator import synth

    if scenario.recording in synth.SHIPPED_RECORDINGS:  # "default", "today", ...
        path = Path(synth.shipped_recording_path(scenario.recording))
        if path.exists():
            return path
        profile, blocks, seed = synth.SHIPPED_RECORDINGS[scenario.recording]
        return _synth(profile, seed, blocks, cache_dir)
    path = Path(scenario.recording)
    if not path.exists():
        raise HarnessError(f"recording {scenario.recording}: no such file")
    return path


def trades_by_wallet(recording: Path) -> dict[str, int]:
    """OrderFilled logs per maker wallet in a recording (default exchanges only).

    Remembered in a sidecar file beside the recording (``.<name>.wallets.json``, keyed by
    the recording's size and mtime), so a day-long recording is read once, not per run."""
    from polyvocab import DEFAULT_EXCHANGES, ORDER_FILLED_TOPICS
    from simulator.recording import RecordedBlock, iter_recording

    st = recording.stat()
    key = f"{st.st_size}:{st.st_mtime_ns}"
    sidecar = recording.with_name(f".{recording.name}.wallets.json")
    try:
        cached = json.loads(sidecar.read_text(encoding="utf-8"))
        if cached.get("key") == key and isinstance(cached.get("counts"), dict):
            return {str(w): int(n) for w, n in cached["counts"].items()}
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    counts: dict[str, int] = {}
    for block in iter_recording(recording):
        if not isinstance(block, RecordedBlock):
            continue
        for log in block.logs:
            topics = log.get("topics") or []
            if (len(topics) == 4 and str(topics[0]).lower() in ORDER_FILLED_TOPICS
                    and str(log.get("address", "")).lower() in DEFAULT_EXCHANGES):
                wallet = "0x" + str(topics[2])[-40:].lower()
                counts[wallet] = counts.get(wallet, 0) + 1
    with contextlib.suppress(OSError):  # a read-only folder: no cache, same answer
        tmp = sidecar.with_name(sidecar.name + f".{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "counts": counts}), encoding="utf-8")
        os.replace(tmp, sidecar)
    return counts


def planned_trades_by_wallet(profile: str, seed: int, blocks: int,
                             cache_dir: Path) -> dict[str, int]:
    """What :func:`trades_by_wallet` counts in the recording ``synth`` would write for
    (profile, seed, blocks), from the block plans alone: no block is rendered, so a
    simulated week is counted in seconds and never written (one maker wallet per
    OrderFilled log: the makers' fills and the taker's own). Remembered in
    ``cache_dir`` (``<synth_cache_name>.wallets.json``)."""
    from simulator.profiles import get_profile
    from simulator.synth import Planner, build_universe

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{synth_cache_name(profile, seed, blocks)}.wallets.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(cached, dict):
            return {str(w): int(n) for w, n in cached.items()}
    except (OSError, ValueError, TypeError):
        pass
    prof = get_profile(profile)
    planner = Planner(prof, seed, build_universe(prof, seed))
    counts: dict[str, int] = {}
    for _ in range(blocks):
        for trade in planner.next().trades:
            for wallet in (trade.taker, *(m.wallet for m in trade.makers)):
                w = wallet.lower()
                counts[w] = counts.get(w, 0) + 1
    with contextlib.suppress(OSError):  # a read-only folder: no cache, same answer
        tmp = path.with_name(path.name + f".{os.getpid()}")
        tmp.write_text(json.dumps(counts), encoding="utf-8")
        os.replace(tmp, path)
    return counts


def pick_wallets(counts: dict[str, int], count: int, pick: str) -> list[str]:
    """``count`` wallets from per-wallet trade counts, deterministically.

    ``active``: the most active first (ties by address). ``mix``: half of them the most
    active, the rest the rarest wallets that traded at least once.
    """
    ranked = sorted(((n, w.lower()) for w, n in counts.items() if n > 0),
                    key=lambda x: (-x[0], x[1]))
    if len(ranked) < count:
        raise HarnessError(f"wallets.count = {count} but the recording has only "
                           f"{len(ranked)} wallets with trades")
    if pick == "active":
        return [w for _, w in ranked[:count]]
    n_active = (count + 1) // 2
    chosen = [w for _, w in ranked[:n_active]]
    rare = sorted(ranked[n_active:], key=lambda x: (x[0], x[1]))
    chosen += [w for _, w in rare[:count - n_active]]
    return chosen


def choose_wallets(scenario: Scenario, recording: Path | None,
                   cache_dir: Path | None = None) -> list[str]:
    """The scenario's wallets; ``recording`` None: a profile's chain that is synthesised
    while it is replayed (counted from its plans, see :func:`planned_trades_by_wallet`)."""
    if scenario.wallets.list is not None:
        return list(scenario.wallets.list)
    assert scenario.wallets.count is not None
    return pick_wallets(wallet_counts(scenario, recording, cache_dir), scenario.wallets.count,
                        scenario.wallets.pick)


def wallet_counts(scenario: Scenario, recording: Path | None,
                  cache_dir: Path | None = None) -> dict[str, int]:
    """Trades per wallet of the scenario's chain (as :func:`choose_wallets` ranks them)."""
    if recording is None:
        assert scenario.profile is not None and cache_dir is not None
        counts = planned_trades_by_wallet(scenario.profile, scenario.seed,
                                          scenario.synth_blocks(), cache_dir)
    else:
        from simulator.recording import RecordingError

        try:
            counts = trades_by_wallet(recording)
        except RecordingError as exc:  # a defective file: the run cannot be what was meant
            raise HarnessError(f"recording: {exc}") from None
    return counts


def restart_wallets(scenario: Scenario, wallets: list[str], counts: dict[str, int]
                    ) -> list[tuple[list[str], list[str]]]:
    """What each ``[[restarts]]`` entry changes in the watched list, in order: the wallets
    it adds and those it removes. ``add_wallets`` are picked as ``[wallets]`` picks
    (:func:`pick_wallets`, ``pick``) among the wallets of ``counts`` no monitor of the run
    watched yet (none comes back once removed); ``remove_wallets`` are drawn from those
    watched then, seeded by the scenario's seed and the restart's number. Deterministic:
    the same scenario, seed and chain give the same lists."""
    import random

    watched = list(wallets)
    ever = set(watched)
    plan: list[tuple[list[str], list[str]]] = []
    for i, r in enumerate(scenario.restarts):
        removed: list[str] = []
        if r.remove_wallets:
            if r.remove_wallets > len(watched):
                raise HarnessError(f"restarts[{i}].remove_wallets: only {len(watched)} "
                                   f"wallets are watched then, got {r.remove_wallets}")
            drawn = set(random.Random(f"{scenario.seed}:restart{i + 1}:remove").sample(
                watched, r.remove_wallets))
            removed = [w for w in watched if w in drawn]
        added: list[str] = []
        if r.add_wallets:
            fresh = {w.lower(): n for w, n in counts.items() if w.lower() not in ever}
            if sum(1 for n in fresh.values() if n > 0) < r.add_wallets:
                raise HarnessError(f"restarts[{i}].add_wallets = {r.add_wallets} but the "
                                   f"chain has only {sum(1 for n in fresh.values() if n > 0)} "
                                   "wallets with trades that no monitor of the run watched")
            added = pick_wallets(fresh, r.add_wallets, scenario.wallets.pick)
        watched = [w for w in watched if w not in set(removed)] + added
        if not watched:
            raise HarnessError(f"restarts[{i}].remove_wallets: no wallet would be watched")
        ever.update(added)
        plan.append((added, removed))
    return plan


# -- processes -----------------------------------------------------------------------------

def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass(slots=True)
class _Proc:
    name: str
    proc: asyncio.subprocess.Process
    stderr_path: Path
    stdout_path: Path
    drain: asyncio.Task[None] | None = None

    def describe_failure(self, what: str) -> str:
        tail = _tail(self.stderr_path) or _tail(self.stdout_path)
        return f"{self.name} {what}" + (f"; stderr tail:\n{tail}" if tail else "")


def _monitor_secrets(urls: dict[str, str]) -> dict[str, str]:
    """Secrets reach the monitor through its environment, never its argv (``ps``): the
    explorer key (``EXPERIMENTS_EXPLORER_API_KEY`` or a fixed test key), and, when
    ``EXPERIMENTS_TELEGRAM_TOKEN`` is set, a bot token for the simulator's Telegram
    stand-in."""
    env = {"EXPLORER_API_KEY": os.environ.get("EXPERIMENTS_EXPLORER_API_KEY", API_KEY)}
    token = os.environ.get("EXPERIMENTS_TELEGRAM_TOKEN")
    if token:
        env.update(TELEGRAM_TOKEN=token, TELEGRAM_CHAT_ID="1001",
                   TELEGRAM_API_URL=urls.get("telegram", ""))
    return env


async def _spawn(name: str, argv: list[str], sdir: Path,
                 extra_env: dict[str, str] | None = None) -> _Proc:
    stderr_path = sdir / f"{name}_stderr.log"
    stdout_path = sdir / f"{name}_stdout.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra_env or {}))
    with open(stderr_path, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=err, env=env, start_new_session=True,
            preexec_fn=functools.partial(_default_sigint, os.getpid()))
    return _Proc(name, proc, stderr_path, stdout_path)


def _default_sigint(parent: int | None = None) -> None:
    """In the child, before exec: SIGINT back to its default. A runner started with SIGINT
    ignored (a background job of a non-interactive shell) passed that on, so the SIGINT
    :func:`_stop` stops a child with was ignored: 5 s lost per child before SIGTERM. The
    child is in a session of its own, so no terminal's Ctrl-C reaches it either way; it
    gets SIGTERM when the runner ``parent`` dies (:func:`die_with_parent`)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if parent is not None:
        die_with_parent(parent)


async def _wait_ready(p: _Proc, timeout_s: float) -> str:
    """Read stdout until a line starting with READY; then keep draining it to a file."""
    assert p.proc.stdout is not None
    out = open(p.stdout_path, "ab")  # noqa: SIM115 - closed by the drain task
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError(p.describe_failure(f"printed no READY line within "
                                                      f"{timeout_s:.0f} s"))
            try:
                line = await asyncio.wait_for(p.proc.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                await p.proc.wait()
                out.close()
                raise HarnessError(p.describe_failure(
                    f"exited with code {p.proc.returncode} before READY"))
            out.write(line)
            text = line.decode("utf-8", errors="replace").strip()
            if text.startswith("READY"):
                break
    except BaseException:
        if not out.closed:
            out.close()
        raise

    async def drain() -> None:
        assert p.proc.stdout is not None
        try:
            while chunk := await p.proc.stdout.read(65536):
                out.write(chunk)
        finally:
            out.close()

    p.drain = asyncio.create_task(drain())
    return text


async def _start_replay(urls: dict[str, str], timeout_s: float) -> int:
    """``POST /_sim/start`` on a ``--paused`` simulator; returns the replay's t0 (ns)."""
    base = urls.get("status", "").removesuffix("/_sim/status")
    if not base:
        raise HarnessError("simulator READY line has no status URL to start the replay")
    try:
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as http, \
                http.post(base + "/_sim/start") as resp:
            body = await resp.json()
        return int(body["t0_ns"])
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"could not start the replay: {type(exc).__name__}: {exc}") from None


async def _stop(p: _Proc, timeout_s: float) -> str:
    """SIGINT, then SIGTERM, then SIGKILL; returns how it ended (clean/terminated/killed)."""
    how = "clean"
    if p.proc.returncode is None:
        for sig, label, wait in ((signal.SIGINT, "clean", timeout_s),
                                 (signal.SIGTERM, "terminated", 5.0),
                                 (signal.SIGKILL, "killed", 10.0)):
            how = label
            with contextlib.suppress(ProcessLookupError):
                p.proc.send_signal(sig)
            try:
                await asyncio.wait_for(p.proc.wait(), wait)
                break
            except TimeoutError:
                continue
    if p.drain is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(p.drain, 5.0)
    return how


class _Sampler:
    """psutil samples of one process: CPU seconds and peak RSS."""

    def __init__(self, pid: int) -> None:
        try:
            self._p: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            self._p = None
        self.cpu_s: float | None = None
        self.rss_peak: int | None = None

    def sample(self) -> None:
        if self._p is None:
            return
        try:
            with self._p.oneshot():
                t = self._p.cpu_times()
                rss = self._p.memory_info().rss
        except psutil.Error:
            return
        self.cpu_s = t.user + t.system
        self.rss_peak = max(self.rss_peak or 0, rss)


class _LineCounter:
    """Counts trade rows of a growing detections file without re-reading it."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.trades, self._rest = path, 0, 0, b""

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return self.trades
        self.offset += len(data)
        data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        self.trades += sum(1 for ln in lines if b'"kind":"trade"' in ln.replace(b" ", b""))
        return self.trades


# -- one scenario --------------------------------------------------------------------------

def _write_toml(path: Path, doc: dict[str, Any]) -> None:
    path.write_bytes(tomli_w.dumps(doc).encode("utf-8"))


_OUTPUTS = ("sim_history.jsonl", "monitor_history.jsonl", "detections.jsonl",
            "monitor_state.sqlite", "monitor_state.sqlite-wal", "monitor_state.sqlite-shm")


def prepare_scenario_dir(scenario: Scenario, sdir: Path, cache_dir: Path,
                         run: dict[str, Any], *, stream_synth: bool = False
                         ) -> tuple[Path | None, list[str]]:
    """What every clock does before a run: the scenario as written to ``scenario.toml``
    checked (what the analysis reads back), the recording and the wallets (into ``run``),
    the simulator and monitor configs, and no output left from an earlier run.

    ``stream_synth``: a profile's recording is not synthesised into a file first; the
    recording comes back as None and the simulator synthesises the chain as it replays
    it (:class:`simulator.source.SynthSource`, the same blocks ``synth`` writes)."""
    try:  # what the analysis will read back: refused now, not after a run of hours
        load_scenario(sdir / "scenario.toml")
    except ScenarioError as exc:  # a Scenario built in code is not validated (model_copy)
        raise HarnessError(f"the scenario is not valid, nothing was run: {exc}") from None
    for name in _OUTPUTS:
        (sdir / name).unlink(missing_ok=True)
    recording: Path | None = None
    if stream_synth and scenario.profile is not None:
        where = (f"synthesised while replayed: profile {scenario.profile}, seed "
                 f"{scenario.seed}, {scenario.synth_blocks()} blocks")
    else:
        recording = resolve_recording(scenario, cache_dir)
        where = str(recording)
    wallets = choose_wallets(scenario, recording, cache_dir)
    run.update(recording=where, wallets=wallets)
    _write_toml(sdir / "sim_config.toml", scenario.simulator_config())
    settings = scenario.monitor.settings()
    settings.pop("mode", None)
    _write_toml(sdir / "monitor_config.toml", settings)
    return recording, wallets


def stamp_stages(scenario: Scenario) -> bool:
    """Does the monitor stamp the latency stages (the budget) this run? As the scenario
    says; unset: only a WebSocket scenario at speed 1, where latency claims are made."""
    if scenario.monitor.latency_stages is not None:
        return False  # given: it is in the monitor's config file already
    return scenario.mode == "websocket" and scenario.speed == 1


def _base_run(scenario: Scenario) -> dict[str, Any]:
    return {
        "scenario": scenario.name, "description": scenario.description,
        "era": scenario.era,
        "mode": scenario.mode, "speed": scenario.speed, "seed": scenario.seed,
        "sim_duration_s": scenario.sim_duration_s, "grace_s": scenario.grace_s,
        "actionable_window_s": scenario.actionable_window_s,
        "thresholds": list(scenario.thresholds), "wallets": [], "status": "running",
        "error": None,
    }


async def run_scenario(scenario: Scenario, sdir: Path, options: RunnerOptions,
                       ) -> dict[str, Any]:
    """Run ``scenario`` into ``sdir`` and return its summary (never raises for harness
    failures: they come back as ``status: harness_error``)."""
    sdir.mkdir(parents=True, exist_ok=True)
    _write_toml(sdir / "scenario.toml", scenario.to_toml_dict())
    run = _base_run(scenario)
    progress = Progress(scenario.name, sim_total_s=scenario.sim_duration_s)
    notify = options.on_progress or (lambda _p: None)
    procs: list[_Proc] = []
    try:
        notify(progress)
        if scenario.restarts:
            raise HarnessError(REAL_TIME_RESTARTS)
        recording, wallets = await asyncio.to_thread(prepare_scenario_dir, scenario, sdir,
                                                     options.cache_dir, run)
        assert recording is not None  # a file: `serve --recording` streams it

        progress.phase = "starting simulator"
        notify(progress)
        sim = await _spawn("simulator", [
            sys.executable, "-m", "simulator", "serve", "--recording", str(recording),
            "--speed", repr(scenario.speed), "--host", "127.0.0.1", "--port", "0",
            "--history", str(sdir / "sim_history.jsonl"),
            "--config", str(sdir / "sim_config.toml"), "--paused"], sdir)
        procs.append(sim)
        ready = await _wait_ready(sim, options.ready_timeout_s)
        try:
            urls = json.loads(ready.removeprefix("READY").strip())
            ws_url, http_url, explorer_url = urls["ws"], urls["http"], urls["explorer"]
        except (ValueError, KeyError, TypeError):
            raise HarnessError(f"simulator READY line is not the contract's JSON: "
                               f"{ready[:200]!r}") from None
        run["urls"] = {"ws": ws_url, "http": http_url, "explorer": explorer_url}

        progress.phase = "starting monitor"
        notify(progress)
        argv = [sys.executable, "-m", "monitor", "run", "--mode", scenario.mode,
                "--ws-url", ws_url, "--rpc-url", http_url, "--explorer-url", explorer_url,
                "--db", str(sdir / "monitor_state.sqlite"),
                "--detections", str(sdir / "detections.jsonl"),
                "--history", str(sdir / "monitor_history.jsonl"),
                "--speed", repr(scenario.speed), "--config", str(sdir / "monitor_config.toml")]
        if stamp_stages(scenario):
            argv += ["--latency-stages", "true"]
        for w in wallets:
            argv += ["--wallet", w]
        mon = await _spawn("monitor", argv, sdir, _monitor_secrets(urls))
        procs.append(mon)
        await _wait_ready(mon, options.ready_timeout_s)

        # The replay starts only now, so that every speed sees the chain from the same
        # phase relative to the monitor's start (its first poll, its first subscription).
        start_ns = await _start_replay(urls, options.ready_timeout_s)
        end_ns = start_ns + int(scenario.sim_duration_s * _NS / scenario.speed)
        stop_at_ns = end_ns + int(scenario.grace_s * _NS / scenario.speed)
        run.update(window_start_ns=start_ns, window_end_ns=end_ns)
        sampler = _Sampler(mon.proc.pid)
        counter = _LineCounter(sdir / "detections.jsonl")
        own_cpu0, own_wall0 = time.process_time(), time.monotonic()  # what sampling costs
        progress.phase = "running"
        while (now := time.monotonic_ns()) < stop_at_ns:
            for p in procs:
                if p.proc.returncode is not None:
                    raise HarnessError(p.describe_failure(
                        f"died during the run with exit code {p.proc.returncode}"))
            sampler.sample()
            progress.sim_s = min(scenario.sim_duration_s,
                                 (now - start_ns) * scenario.speed / _NS)
            progress.phase = "running" if now < end_ns else "grace"
            progress.trades_seen = counter.poll()
            notify(progress)
            wait = min(options.sample_interval_s, (stop_at_ns - now) / _NS)
            await asyncio.sleep(max(wait, 0.0))  # pacing the sampler, not synchronisation

        progress.phase = "stopping"
        notify(progress)
        sampler.sample()
        run["resources"] = {"cpu_s": sampler.cpu_s, "rss_peak_bytes": sampler.rss_peak,
                            "source": "psutil",
                            "runner_cpu_s": time.process_time() - own_cpu0,
                            "runner_wall_s": time.monotonic() - own_wall0,
                            "sample_interval_s": options.sample_interval_s}
        stopped = {}
        for p in (mon, sim):
            stopped[p.name] = await _stop(p, options.stop_timeout_s)
        procs.clear()
        run["stopped"] = stopped
        run["exit_codes"] = {mon.name: mon.proc.returncode, sim.name: sim.proc.returncode}
        for p in (mon, sim):
            if stopped[p.name] == "killed":
                raise HarnessError(p.describe_failure("did not stop on SIGINT/SIGTERM and "
                                                      "was killed"))
            if p.proc.returncode not in _OK_EXIT:
                raise HarnessError(p.describe_failure(
                    f"exited with code {p.proc.returncode} when stopped"))
        progress.trades_seen = counter.poll()
        run["status"] = "ok"
    except HarnessError as exc:
        run["status"], run["error"] = "harness_error", str(exc)
    except Exception as exc:  # the harness's own bug must not look like a result
        run["status"] = "harness_error"
        run["error"] = f"harness failure: {type(exc).__name__}: {exc}"
    except BaseException:  # Ctrl-C, SIGTERM: run.json said "running" for good
        run["status"], run["error"] = "harness_error", INTERRUPTED
        stop_synths()
        raise
    finally:
        for p in procs:
            with contextlib.suppress(Exception):
                await asyncio.shield(_stop(p, 5.0))
        (sdir / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    progress.phase = "analysing"
    notify(progress)
    summary = await asyncio.to_thread(analyze_scenario_dir, sdir)
    progress.phase = summary["status"]
    notify(progress)
    return summary


#: why a real-time run refuses a scenario's ``[[restarts]]`` (the command line says it
#: before anything runs; the runner again, for a caller that skipped it)
REAL_TIME_RESTARTS = ("restarts: the monitor's [[restarts]] run in virtual time only "
                      "(--clock virtual); a real-time run does not restart the monitor")


def run_scenario_sync(scenario: Scenario, sdir: Path, options: RunnerOptions,
                      ) -> dict[str, Any]:
    """:func:`run_scenario` in its own event loop (for thread/process/Dask executors)."""
    return asyncio.run(run_scenario(scenario, sdir, options))
