"""Randomised fault schedules in virtual time: a search for the schedule that breaks the
monitor (``python -m experiments chaos``).

The default matrix and the soak hold hand-written schedules: each fault kind alone or in
a known company, at known phases. A defect that needs two faults at once in an order
nobody wrote (a reorg inside a logs-only silence while the HTTP node lags, an explorer
outage during a fallback that a refused handshake started) is found only by trying such
schedules. Each run here is one simulated stretch of the default profile with 4 to 14
faults drawn from every kind the simulator knows (:data:`simulator.faults.FAULTS`), each
with random timing and parameters, all inside the measured window and ending early
enough for a correct monitor to recover before the run stops. A run breaks the
invariants when it has a miss, a duplicate, a phantom or a harness error; its
``scenario.toml`` in the run store replays it exactly (``python -m experiments run
RUN/<name>/scenario.toml --clock virtual``), and ``python -m reports build RUN`` renders
the lot.

Each schedule also draws the monitor's configuration among what a user may set
(:func:`chaos_monitor`: polling or WebSocket, a partial rollout, several small shards,
heartbeat, fallback, backoff, dedup and backfill settings) and the chain (the profiles of
:data:`CHAIN_PROFILES`, 2-s to 1.5-s blocks). Settings the scenario's ``[monitor]`` table
cannot carry yet (:data:`UNCARRIED`) are drawn all the same and dropped, so a schedule
stays the same when they become settable.

What a poller cannot survive is not asked of it (:func:`poller_can_survive`): pure polling
(``mode = "polling"``, or the wallets a ``websocket_share`` below 100 leaves on polling)
never retracts a trade, so a reorg of a block the explorer already indexed stands as a
phantom; and a trade the explorer indexes more than ``explorer_overlap_blocks`` behind
its head is never read. Schedules with polled wallets draw neither a reorg nor an explorer
lag past the overlap: both are documented limits of the baseline, not defects.

Schedules are a pure function of the seed (:func:`chaos_scenario`): the same ``--seed``
and ``--runs`` give the same schedules and, in virtual time, the same results.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.scenario import MonitorSpec, Scenario, scenario_from_dict

__all__ = ["CHAIN_PROFILES", "CHAOS_WALLETS", "GENERATORS", "MONITOR_KNOBS", "RESTART_ODDS",
           "UNCARRIED", "WALLET_CHANGE_MAX", "WALLET_CHANGE_ODDS", "ChaosResult", "broken",
           "chaos_faults", "chaos_monitor", "chaos_restarts", "chaos_scenario", "chaos_storm",
           "judge_websocket_wallets", "judged_wallets", "mixed_reorgs", "poller_can_survive",
           "run_chaos", "wallet_changes"]

Params = dict[str, Any]
#: kind -> (target or None, whether it takes a duration, params drawn from the generator)
Generator = tuple[str | None, bool, Callable[[random.Random], Params]]


def _seeded(params: Callable[[random.Random], Params]) -> Callable[[random.Random], Params]:
    def draw(rng: random.Random) -> Params:
        return {**params(rng), "seed": rng.randrange(1 << 31)}
    return draw


def _garbage(rng: random.Random) -> Params:
    return {"share": rng.choice([0.1, 0.3, 0.6]), "max_items": rng.choice([1, 5, 30])}


#: one entry per fault kind: a kind added to the simulator without one fails a test
GENERATORS: dict[str, Generator] = {
    "ws_drop": ("ws", False, lambda rng: {}),
    "ws_close": ("ws", False, lambda rng: {"code": rng.choice([1000, 1001, 1011, 1012, 1013])}),
    "ws_refuse": ("ws", True, lambda rng: {"mode": rng.choice(["503", "reset"]),
                                           "drop_existing": rng.random() < 0.8}),
    "ws_stall": ("ws", True, lambda rng: {}),
    "ws_silent": ("ws", True, lambda rng: {
        "subscription": rng.choice(["all", "logs", "newHeads"])}),
    "ws_latency": ("ws", True, _seeded(lambda rng: {
        "delay_ms": rng.choice([50.0, 500.0, 3000.0]), "jitter_ms": rng.choice([0.0, 300.0])})),
    "ws_loss": ("ws", True, _seeded(lambda rng: {"share": rng.choice([0.05, 0.2, 0.5])})),
    "ws_dup": ("ws", True, _seeded(lambda rng: {"share": rng.choice([0.05, 0.2, 0.5])})),
    "max_subscriptions": ("ws", True, lambda rng: {"n": rng.choice([0, 1])}),
    "reorg": ("chain", False, _seeded(lambda rng: {
        "depth": rng.choice([1, 1, 2, 3, 5, 8, 16, 32, 64])})),
    "rpc_errors": ("rpc_http", True, _seeded(lambda rng: {"share": rng.choice([0.3, 1.0])})),
    "rpc_lag": ("rpc_http", True, lambda rng: {"blocks": rng.choice([1, 2, 4, 8])}),
    "explorer_rate_limit": ("explorer", True, lambda rng: {"rate": rng.choice([0.2, 1.0])}),
    "explorer_lag": ("explorer", True, lambda rng: {"extra_s": rng.choice([10.0, 60.0,
                                                                           120.0])}),
    "explorer_down": ("explorer", True, lambda rng: {"mode": rng.choice(["html502",
                                                                         "timeout"])}),
    "ws_garbage": ("ws", True, _seeded(_garbage)),
    "bad_log": ("rpc", True, _seeded(_garbage)),
    "head_jump": ("ws", True, _seeded(lambda rng: {"share": rng.choice([0.2, 0.5]),
                                                   "max_items": rng.choice([1, 3])})),
    "rpc_garbage": ("rpc_http", True, _seeded(_garbage)),
    "explorer_garbage": ("explorer", True, _seeded(_garbage)),
}

#: simulated seconds left after the last fault ends, for a correct monitor to recover
#: (reconnect backoff up to 60 s, a fallback poll every 15 s, an index a minute or two
#: behind), before the measured window closes
RECOVERY_S = 420.0
FIRST_FAULT_S = 60.0
MAX_FAULT_S = 240.0
#: one schedule in STORM_ODDS also gets a storm (:func:`chaos_storm`): 8 to 20 more
#: faults, all inside one 10-minute stretch
STORM_ODDS = 4
STORM_S = 600.0
STORM_FAULTS = (8, 20)
#: a partial rollout (websocket_share below 100) is, one time in MIXED_REORG_ODDS, given
#: reorgs all the same, and then judged on its WebSocket wallets alone
#: (:func:`judged_wallets`): a poller never retracts, but the shards beside it must
MIXED_REORG_ODDS = 2
#: one schedule in RESTART_ODDS also restarts the monitor mid-run (:func:`chaos_restarts`:
#: killed or stopped, down a while, started again on its state), 1 to RESTARTS_MAX times
RESTART_ODDS = 3
RESTARTS_MAX = 3
#: how long a restarted monitor stays down (simulated s): at once, a supervisor's quick
#: restart, a deploy, an outage that the explorer fallback and the backfill must cover
RESTART_DOWN_S = (0.0, 5.0, 30.0, 120.0)
#: the wallets a schedule's first monitor watches
CHAOS_WALLETS = 20
#: one restart in WALLET_CHANGE_ODDS also changes the wallet list (:func:`chaos_restarts`:
#: the restarted monitor watches 1 to WALLET_CHANGE_MAX wallets more, fewer, or both)
WALLET_CHANGE_ODDS = 2
WALLET_CHANGE_MAX = 3
#: the chains a schedule runs on -> block interval (s): the chain is made this long, plus
#: a margin. The shipped default (2 s, V1 + V2), today's (1.75 s, V2 only), the everyday
#: and the busy 2026-03-31 rates (hundreds of fills a block), and the planned 1.5 s
CHAIN_PROFILES: dict[str, float] = {"default": 2.0, "today": 1.75, "steady": 2.0,
                                    "busy": 2.0, "steady-1.75s": 1.75, "steady-1.5s": 1.5}
#: the blocks the explorer polls read again (the monitor's default
#: ``explorer_overlap_blocks``): a poller loses a trade indexed later than this
_OVERLAP_BLOCKS = 64
#: the explorer's own index lag at its 95th percentile, and a margin (simulated s)
_INDEX_LAG_S = 10.0 + 10.0

#: monitor setting -> the values a schedule draws it from, the first the shipped default
#: (drawn half the time); each is a value a user may set (monitor/config.py)
MONITOR_KNOBS: dict[str, tuple[Any, ...]] = {
    "max_wallets_per_filter": (500, 3, 5, 7, 10),
    "subscription_mode": ("auto", "filtered", "firehose"),
    "reconcile_interval": (30.0, 0.0, 10.0, 120.0),
    "dedup_capacity": (200_000, 200, 50),
    "dedup_retention_blocks": (10_000, 1024),
    "fallback_after": (30.0, 10.0, 20.0),
    "fallback_polling_interval": (15.0, 5.0, 30.0),
    "heartbeat_interval": (30.0, 5.0, 10.0),
    "heartbeat_timeout": (10.0, 3.0, 30.0),
    "head_lag_blocks": (3, 0, 1, 10),
    "explorer_overlap_blocks": (_OVERLAP_BLOCKS, 128, 200),
    "backfill_chunk_blocks": (1000, 3, 10, 50),
    "staleness_blocks": (10, 3, 30),
    "backoff_initial": (1.0, 0.5, 3.0),
    "backoff_max": (60.0, 5.0, 20.0),
}
#: drawn, but the scenario's [monitor] table cannot carry them yet
#: (experiments.scenario.MonitorSpec): dropped from the scenario
UNCARRIED = frozenset(k for k in MONITOR_KNOBS if k not in MonitorSpec.model_fields)


def poller_can_survive(fault: dict[str, Any], overlap_blocks: int,
                       block_s: float) -> bool:
    """Is ``fault`` one a pure poller survives? Not a reorg (a poller never retracts what
    it delivered from an orphaned block), nor an explorer lag past the blocks a poll reads
    again (``overlap_blocks``; the trade is indexed below every later poll's window)."""
    if fault["name"] == "reorg":
        return False
    if fault["name"] == "explorer_lag":
        extra = float(fault.get("params", {}).get("extra_s", 0.0))
        return extra + _INDEX_LAG_S < overlap_blocks * block_s
    return True


def chaos_faults(rng: random.Random, duration_s: float,
                 keep: Callable[[dict[str, Any]], bool] | None = None
                 ) -> list[dict[str, Any]]:
    """4 to 14 faults of random kinds, times and parameters, each inside
    ``[FIRST_FAULT_S, duration_s - RECOVERY_S]`` (no I/O). ``keep``: a fault it refuses
    is drawn again (the draws stay a pure function of ``rng``)."""
    last = duration_s - RECOVERY_S
    if last <= FIRST_FAULT_S + 1:
        raise ValueError(f"a chaos run needs more than {FIRST_FAULT_S + RECOVERY_S + 1:.0f} "
                         f"simulated seconds, got {duration_s:g}")
    out: list[dict[str, Any]] = []
    for _ in range(rng.randint(4, 14)):
        while True:
            fault = _one_fault(rng, last)
            if keep is None or keep(fault):
                break
        out.append(fault)
    return sorted(out, key=lambda f: f["at"])


def chaos_storm(rng: random.Random, duration_s: float,
                keep: Callable[[dict[str, Any]], bool] | None = None
                ) -> list[dict[str, Any]]:
    """A fault storm (no I/O): :data:`STORM_FAULTS` faults of random kinds, every one
    starting and ending inside one stretch of :data:`STORM_S` (so most overlap), itself
    inside ``[FIRST_FAULT_S, duration_s - RECOVERY_S]``. The spread-out schedules of
    :func:`chaos_faults` rarely put more than two or three faults at once."""
    last = duration_s - RECOVERY_S
    begin = round(rng.uniform(FIRST_FAULT_S, max(FIRST_FAULT_S, last - STORM_S)), 1)
    end = min(last, begin + STORM_S)
    out: list[dict[str, Any]] = []
    for _ in range(rng.randint(*STORM_FAULTS)):
        while True:
            fault = _one_fault(rng, end, first=begin)
            if keep is None or keep(fault):
                break
        out.append(fault)
    return out


def _one_fault(rng: random.Random, last: float, first: float = FIRST_FAULT_S
               ) -> dict[str, Any]:
    kind = rng.choice(sorted(GENERATORS))
    target, timed, params = GENERATORS[kind]
    at = round(rng.uniform(first, last - 1), 1)
    fault: dict[str, Any] = {"name": kind, "at": at}
    if target is not None:
        fault["target"] = target
    if timed:
        longest = min(MAX_FAULT_S, last - at)
        fault["duration"] = round(rng.choice([rng.uniform(1.0, min(30.0, longest)),
                                              rng.uniform(1.0, longest)]), 1)
    drawn = params(rng)
    if drawn:
        fault["params"] = drawn
    return fault


def chaos_monitor(rng: random.Random, block_s: float) -> dict[str, Any]:
    """The monitor's ``[monitor]`` table of one schedule (no I/O): polling one time in
    eight, else WebSocket with, one time in four, part of the wallets left on polling;
    each knob of :data:`MONITOR_KNOBS` its default half the time, else one of its other
    values. Every knob is drawn whatever is kept (a pure function of ``rng``)."""
    mode = "polling" if rng.random() < 0.125 else "websocket"
    share = rng.choice([100.0, 100.0, 100.0, 30.0, 50.0, 80.0])
    polling_interval = rng.choice([15.0, 5.0, 30.0])
    drawn: dict[str, Any] = {}
    for name, values in MONITOR_KNOBS.items():
        drawn[name] = values[0] if rng.random() < 0.5 else rng.choice(values[1:])
    if drawn["backoff_max"] < drawn["backoff_initial"]:
        drawn["backoff_max"] = drawn["backoff_initial"]
    monitor: dict[str, Any] = {"mode": mode, "block_interval": block_s}
    if mode == "polling":
        monitor["polling_interval"] = polling_interval
        for name in ("dedup_capacity", "dedup_retention_blocks", "explorer_overlap_blocks"):
            monitor[name] = drawn[name]
    else:
        monitor["websocket_share"] = share
        if share < 100:
            monitor["polling_interval"] = polling_interval
        monitor.update(drawn)
    return {k: v for k, v in monitor.items() if k not in UNCARRIED}


def mixed_reorgs(seed: int, monitor: dict[str, Any]) -> bool:
    """Does the schedule of ``seed`` (its ``[monitor]`` table given) draw reorgs beside
    polled wallets, and so judge its WebSocket wallets alone? Only a partial rollout, one
    time in :data:`MIXED_REORG_ODDS` (its own generator: the other draws stay)."""
    if monitor["mode"] != "websocket" or monitor.get("websocket_share", 100.0) >= 100:
        return False
    return random.Random(f"chaos-mixed:{seed}").randrange(MIXED_REORG_ODDS) == 0


def _mixed_reorg(rng: random.Random, duration_s: float) -> dict[str, Any]:
    target, _, params = GENERATORS["reorg"]
    assert target is not None
    return {"name": "reorg", "target": target, "params": params(rng),
            "at": round(rng.uniform(FIRST_FAULT_S, duration_s - RECOVERY_S - 1), 1)}


def chaos_restarts(seed: int, duration_s: float, wallets: int = CHAOS_WALLETS
                   ) -> list[dict[str, Any]]:
    """The ``[[restarts]]`` of the schedule of ``seed`` (no I/O): none, but one time in
    :data:`RESTART_ODDS` 1 to :data:`RESTARTS_MAX` restarts, each a kill or a clean stop,
    down one of :data:`RESTART_DOWN_S`, inside ``[FIRST_FAULT_S, duration_s -
    RECOVERY_S]`` and one after the other (a draw that would overlap the one before is
    left out). One restart in :data:`WALLET_CHANGE_ODDS` also changes the wallet list of
    the ``wallets`` first watched (:func:`_wallet_changes`). Generators of their own: the
    schedules' other draws, and the restarts' times and kinds, stay as they were."""
    rng = random.Random(f"chaos-restarts:{seed}")
    if rng.randrange(RESTART_ODDS) != 0:
        return []
    last = duration_s - RECOVERY_S
    drawn: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, RESTARTS_MAX)):
        down = rng.choice(RESTART_DOWN_S)
        at = round(rng.uniform(FIRST_FAULT_S, max(FIRST_FAULT_S, last - down - 1)), 1)
        drawn.append({"at": at, "kind": rng.choice(["kill", "stop"]), "down_s": down})
    out: list[dict[str, Any]] = []
    for r in sorted(drawn, key=lambda r: r["at"]):
        if out and r["at"] <= out[-1]["at"] + out[-1]["down_s"] + 1:
            continue
        out.append(r)
    return _wallet_changes(seed, out, wallets)


def _wallet_changes(seed: int, restarts: list[dict[str, Any]], wallets: int
                    ) -> list[dict[str, Any]]:
    """``restarts``, one in :data:`WALLET_CHANGE_ODDS` given ``add_wallets``,
    ``remove_wallets`` or both (1 to :data:`WALLET_CHANGE_MAX` each), never removing every
    wallet watched then (a restart that changes none has neither key: it is the restart
    of before). Three draws a restart, whatever is kept."""
    rng = random.Random(f"chaos-wallets:{seed}")
    watched = wallets
    out = []
    for r in restarts:
        change = rng.randrange(WALLET_CHANGE_ODDS) == 0
        add = rng.randint(0, WALLET_CHANGE_MAX)
        remove = min(rng.randint(0, WALLET_CHANGE_MAX), watched - 1)
        if change and (add or remove):
            r = {**r, **({"add_wallets": add} if add else {}),
                 **({"remove_wallets": remove} if remove else {})}
            watched += add - remove
        out.append(r)
    return out


def wallet_changes(scenario: Scenario) -> str:
    """What the restarts of ``scenario`` change of its wallet list, said ("" for none):
    ``+2 -1 wallets at 410 s``, one entry a restart that changes it."""
    return ", ".join(f"{_signed(r.add_wallets, r.remove_wallets)} wallets at {r.at:g} s"
                     for r in scenario.restarts if r.changes_wallets)


def _signed(add: int, remove: int) -> str:
    return " ".join(([f"+{add}"] if add else []) + ([f"-{remove}"] if remove else []))


def judged_wallets(scenario: Scenario, wallets: Sequence[str]) -> list[str]:
    """The wallets whose outcomes a chaos run of ``scenario`` is judged on: every one,
    but for a schedule of :func:`mixed_reorgs` only those its rollout puts on the
    WebSocket feed (a polled wallet's trade of an orphaned block stands: a documented
    limit of polling, not a defect)."""
    from monitor.cores import assign_source

    monitor = scenario.monitor.settings()
    if scenario.seed is None or not mixed_reorgs(scenario.seed, monitor):
        return list(wallets)
    share = float(monitor["websocket_share"])
    return [w for w in wallets if assign_source(w, share) == "websocket"]


def chaos_scenario(seed: int, duration_s: float = 3600.0) -> Scenario:
    """The chaos run of ``seed``: a chain of :data:`CHAIN_PROFILES`, 20 wallets, the
    monitor of :func:`chaos_monitor`, :func:`chaos_faults` (those a poller survives when
    wallets are polled, bar the reorgs of :func:`mixed_reorgs`), and one time in
    :data:`STORM_ODDS` a :func:`chaos_storm` (no I/O). The storm and the mixed reorgs
    draw from generators of their own: a schedule without them is the one it was before
    they existed."""
    rng = random.Random(f"chaos:{seed}")
    profile = rng.choice(sorted(CHAIN_PROFILES))
    block_s = CHAIN_PROFILES[profile]
    pick = rng.choice(["active", "active", "mix"])
    monitor = chaos_monitor(rng, block_s)
    polled = monitor["mode"] == "polling" or monitor.get("websocket_share", 100.0) < 100
    overlap = int(monitor.get("explorer_overlap_blocks", _OVERLAP_BLOCKS))
    keep: Callable[[dict[str, Any]], bool] | None = None
    if monitor["mode"] == "polling":  # the rest reach nothing a poller uses
        keep = lambda f: (str(f["name"]).startswith("explorer_")  # noqa: E731
                          and poller_can_survive(f, overlap, block_s))
    elif mixed_reorgs(seed, monitor):
        keep = lambda f: (f["name"] == "reorg"  # noqa: E731
                          or poller_can_survive(f, overlap, block_s))
    elif polled:
        keep = lambda f: poller_can_survive(f, overlap, block_s)  # noqa: E731
    faults = chaos_faults(rng, duration_s, keep)
    storm = random.Random(f"chaos-storm:{seed}")
    extra = ""
    if storm.randrange(STORM_ODDS) == 0:
        more = chaos_storm(storm, duration_s, keep)
        faults = sorted(faults + more, key=lambda f: f["at"])
        extra = f", a storm of {len(more)} faults in {STORM_S / 60:.0f} minutes"
    if mixed_reorgs(seed, monitor):  # at least one reorg, whatever chaos_faults drew
        more = [_mixed_reorg(random.Random(f"chaos-mixed:{seed}:{i}"), duration_s)
                for i in range(random.Random(f"chaos-mixed:{seed}").randint(1, 3))]
        faults = sorted(faults + more, key=lambda f: f["at"])
        extra += ", reorgs beside polled wallets (judged on the WebSocket wallets)"
    restarts = chaos_restarts(seed, duration_s)
    if restarts:
        extra += ", the monitor restarted (" + ", ".join(
            f"{'killed' if r['kind'] == 'kill' else 'stopped'} at {r['at']:g} s for "
            f"{r['down_s']:g} s" + (
                f", {_signed(r.get('add_wallets', 0), r.get('remove_wallets', 0))} wallets"
                if r.get("add_wallets") or r.get("remove_wallets") else "")
            for r in restarts) + ")"
    kinds = sorted({str(f["name"]) for f in faults})
    knobs = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in monitor.items()
                      if k != "mode" and v != MONITOR_KNOBS.get(k, (None,))[0])
    return scenario_from_dict({
        "name": f"chaos_{seed}",
        "description": f"chaos seed {seed}: {profile} chain, {monitor['mode']} monitor "
                       f"({knobs}), {len(faults)} random faults ({', '.join(kinds)}){extra}",
        "profile": profile, "seed": seed,
        "blocks": int(duration_s / block_s) + 200, "sim_duration_s": duration_s,
        "speed": 1, "grace_s": 120,
        "thresholds": list(_JUDGED_THRESHOLDS),
        "wallets": {"count": CHAOS_WALLETS, "pick": pick},
        "monitor": monitor,
        "faults": faults,
        **({"restarts": restarts} if restarts else {}),
    }, where=f"chaos seed {seed}")


def broken(summary: dict[str, Any]) -> list[str]:
    """What a run's summary breaks of the invariants: not run cleanly, or a trade missed,
    repeated or invented."""
    if summary.get("status") != "ok":
        return [f"status {summary.get('status')}: {str(summary.get('error') or '')[:200]}"]
    return [f"{summary.get(k)} {k}" for k in ("missed", "duplicates", "phantoms")
            if summary.get(k)]


@dataclass(frozen=True, slots=True)
class ChaosResult:
    run_dir: Path
    #: each run's summary as judged: missed, duplicates and phantoms those of its
    #: WebSocket wallets for a schedule of :func:`mixed_reorgs` (``judged_on`` says so,
    #: ``all_wallets`` keeps every wallet's counts); ``wallet_changes`` says what its
    #: restarts changed of the wallet list (:func:`wallet_changes`), when they did
    summaries: list[dict[str, Any]]
    failures: list[tuple[str, list[str]]]  # (scenario name, what broke)


def run_chaos(seeds: Sequence[int], *, out: Path, duration_s: float = 3600.0,
              jobs: int = 1, command: list[str] | None = None, console: Any = None,
              progress: bool = True) -> ChaosResult:
    """Run the chaos schedules of ``seeds`` in virtual time into ``out/<run-id>/``."""
    from experiments.matrix import run_matrix

    scenarios = [chaos_scenario(s, duration_s) for s in seeds]
    result = run_matrix(scenarios, out=out, command=command or [], quick=False, jobs=jobs,
                        console=console, progress=progress, clock="virtual")
    by_name = {sc.name: sc for sc in scenarios}
    failures = []
    judged = []
    for summary in result.summaries:
        name = str(summary.get("scenario"))
        sc = by_name.get(name)
        if sc is not None and summary.get("status") == "ok" and sc.seed is not None \
                and mixed_reorgs(sc.seed, sc.monitor.settings()):
            summary = judge_websocket_wallets(summary, sc, result.run_dir / name)
        if sc is not None and (changes := wallet_changes(sc)):
            summary = {**summary, "wallet_changes": changes}
        judged.append(summary)
        if why := broken(summary):
            failures.append((name, why))
    return ChaosResult(result.run_dir, judged, failures)


def judge_websocket_wallets(summary: dict[str, Any], scenario: Scenario,
                            sdir: Path) -> dict[str, Any]:
    """``summary`` with missed, duplicates and phantoms counted over the wallets of
    :func:`judged_wallets` alone (from the run's ``outcomes.parquet``)."""
    import pyarrow.parquet as pq

    path = sdir / "outcomes.parquet"
    if not path.is_file():
        return {**summary, "status": "harness_error",
                "error": f"{path} missing: the WebSocket wallets cannot be judged"}
    rows = pq.read_table(path, columns=["wallet", "outcome"]).to_pylist()
    wallets = {str(r["wallet"]).lower() for r in rows}
    judged = {w.lower() for w in judged_wallets(scenario, sorted(wallets))}
    counts = {k: 0 for k in ("missed", "duplicate", "phantom")}
    for r in rows:
        if str(r["wallet"]).lower() in judged and r["outcome"] in counts:
            counts[str(r["outcome"])] += 1
    from experiments.thresholds import evaluate_all

    out = {**summary, "missed": counts["missed"], "duplicates": counts["duplicate"],
           "phantoms": counts["phantom"],
           "judged_on": f"{len(judged & wallets)} WebSocket wallets of {len(wallets)}",
           "all_wallets": {k: summary.get(k) for k in ("missed", "duplicates", "phantoms")}}
    # the table's thresholds column, as judged (the schedule's are on these counts only)
    exprs = [str(t.get("expr")) for t in summary.get("thresholds") or []
             if isinstance(t, dict)]
    if exprs and all(e in _JUDGED_THRESHOLDS for e in exprs):
        out["thresholds"] = evaluate_all(exprs, out)
    return out


#: the thresholds of a chaos schedule (:func:`chaos_scenario`): on the judged counts
_JUDGED_THRESHOLDS = ("missed == 0", "duplicates == 0", "phantoms == 0")
