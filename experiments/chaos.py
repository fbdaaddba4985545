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

Schedules are a pure function of the seed (:func:`chaos_scenario`): the same ``--seed``
and ``--runs`` give the same schedules and, in virtual time, the same results.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.scenario import Scenario, scenario_from_dict

__all__ = ["GENERATORS", "ChaosResult", "broken", "chaos_faults", "chaos_scenario",
           "run_chaos"]

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
#: the default profile's block interval (s): the chain is made this long, plus a margin
_BLOCK_S = 2.0


def chaos_faults(rng: random.Random, duration_s: float) -> list[dict[str, Any]]:
    """4 to 14 faults of random kinds, times and parameters, each inside
    ``[FIRST_FAULT_S, duration_s - RECOVERY_S]`` (no I/O)."""
    last = duration_s - RECOVERY_S
    if last <= FIRST_FAULT_S + 1:
        raise ValueError(f"a chaos run needs more than {FIRST_FAULT_S + RECOVERY_S + 1:.0f} "
                         f"simulated seconds, got {duration_s:g}")
    out = []
    for _ in range(rng.randint(4, 14)):
        kind = rng.choice(sorted(GENERATORS))
        target, timed, params = GENERATORS[kind]
        at = round(rng.uniform(FIRST_FAULT_S, last - 1), 1)
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
        out.append(fault)
    return sorted(out, key=lambda f: f["at"])


def chaos_scenario(seed: int, duration_s: float = 3600.0) -> Scenario:
    """The chaos run of ``seed``: the default profile, 20 active wallets, a WebSocket
    monitor with its explorer fallback, and :func:`chaos_faults` (no I/O)."""
    rng = random.Random(f"chaos:{seed}")
    faults = chaos_faults(rng, duration_s)
    kinds = sorted({str(f["name"]) for f in faults})
    return scenario_from_dict({
        "name": f"chaos_{seed}",
        "description": f"chaos seed {seed}: {len(faults)} random faults ({', '.join(kinds)})",
        "profile": "default", "seed": seed,
        "blocks": int(duration_s / _BLOCK_S) + 200, "sim_duration_s": duration_s,
        "speed": 1, "grace_s": 120,
        "thresholds": ["missed == 0", "duplicates == 0", "phantoms == 0"],
        "wallets": {"count": 20, "pick": "active"},
        "monitor": {"mode": "websocket", "fallback_after": rng.choice([10, 20, 30]),
                    "fallback_polling_interval": 15},
        "faults": faults,
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
    failures = [(str(s.get("scenario")), why) for s in result.summaries
                if (why := broken(s))]
    return ChaosResult(result.run_dir, result.summaries, failures)
