"""Virtual time: simulated seconds per wall second, the simulator and the real monitor on
one looptime loop (``python -m experiments run --clock virtual``), on the default profile
and on a busy one, every fault kind of the soak scenario active.

Targets (issue 10): a simulated day in <= 1 minute (1,440 sim s per wall s), a simulated
week in <= 5 minutes (2,016 sim s per wall s). The figures are printed and recorded in
docs/BENCHMARKS.md. The chain is synthesised while it is replayed (nothing up front), so
the synthesis is inside the timing, as it is in a run; the wallet counts from the block
plans are not (cached beside the run). As a run alone gets it, the chain is rendered by
a helper process when a core is spare (``simulator.render_ahead``; its CPU is not in the
CPU figure). CPU seconds (user + sys of this process) are printed beside the wall time:
other jobs on the machine inflate wall time more than CPU.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from experiments.runner import RunnerOptions, planned_trades_by_wallet
from experiments.scenario import load_scenario
from experiments.virtual import render_ahead_wanted, run_scenario_virtual

ROOT = Path(__file__).resolve().parents[1]
SOAK = ROOT / "experiments" / "scenarios" / "soak" / "soak_day.toml"


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


@pytest.mark.slow
@pytest.mark.parametrize(("profile", "sim_s"), [("default", 7200.0), ("busy", 1800.0)])
def test_simulated_seconds_per_wall_second(benchmark: Any, tmp_path_factory: Any,
                                           capsys: Any, profile: str, sim_s: float) -> None:
    cache = tmp_path_factory.mktemp("cache")
    sc = load_scenario(SOAK)
    # a run shorter than the soak's hour: its fault schedule compressed to fit, so that
    # every kind still starts in it (one past the end is refused, and was never run)
    squeeze = min(1.0, sim_s / 3600.0)
    sc = sc.model_copy(update={
        "profile": profile, "sim_duration_s": sim_s, "grace_s": 30.0,
        "blocks": int((sim_s + 30) / 1.5) + 60,
        "faults": [f.model_copy(update={"at": f.at * squeeze}) if f.at is not None else f
                   for f in sc.faults]})
    assert sc.profile is not None
    planned_trades_by_wallet(sc.profile, sc.seed, sc.synth_blocks(), cache)  # untimed
    out = tmp_path_factory.mktemp("run")
    ahead = render_ahead_wanted(1)  # as a run alone gets it: on a spare core, if any
    walls: list[float] = []
    cpus: list[float] = []

    def one() -> dict[str, Any]:
        t0, c0 = time.perf_counter(), _cpu_s()
        summary = run_scenario_virtual(sc, out / f"{profile}-{len(walls)}",
                                       RunnerOptions(cache_dir=cache, render_ahead=ahead))
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu_s() - c0)
        return summary

    summary = benchmark.pedantic(one, rounds=1, iterations=1)
    assert summary["status"] == "ok" and summary["missed"] == 0
    assert not list(cache.glob("*.jsonl.gz"))  # streamed: no recording was written
    rate = sim_s / walls[0]
    hours = sim_s / 3600
    benchmark.extra_info.update(sim_s=sim_s, wall_s=walls[0], cpu_s=cpus[0],
                                sim_s_per_wall_s=rate, trades=summary["trades"],
                                render_ahead=ahead)
    with capsys.disabled():
        print(f"\nvirtual time, {profile} profile, every soak fault: {sim_s:.0f} sim s in "
              f"{walls[0]:.1f} wall s ({cpus[0]:.1f} CPU s) = {rate:,.0f} sim s per wall s; "
              f"per simulated hour {walls[0] / hours:.1f} wall s, {cpus[0] / hours:.1f} "
              f"CPU s (a day in {86400 / rate / 60:.1f} min, target <= 1; a week in "
              f"{604800 / rate / 60:.1f} min, target <= 5); {summary['trades']} trades; "
              f"chain rendered {'by a helper process' if ahead else 'in this process'}")
