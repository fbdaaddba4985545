"""A scenario's monitor killed at once (``[[restarts]]`` at 0 s, before it handled any
head) and started again 20 s later on the same state: every trade of the measured window
is delivered once. Before the launch point was stored at start, the restart started at
its own first head and the trades of those 20 s were missed, in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.chaos import broken
from experiments.runner import RunnerOptions
from experiments.scenario import scenario_from_dict
from experiments.virtual import run_scenario_virtual


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["websocket", "polling"])
def test_a_monitor_killed_before_its_first_head_misses_no_trade_of_the_window(
        tmp_path: Path, mode: str) -> None:
    sc = scenario_from_dict({
        "name": f"launch_{mode}", "profile": "default", "seed": 7, "blocks": 200,
        "sim_duration_s": 60.0, "speed": 1, "grace_s": 60.0,
        "thresholds": ["missed == 0", "duplicates == 0", "phantoms == 0"],
        "wallets": {"count": 6, "pick": "active"}, "monitor": {"mode": mode},
        "restarts": [{"at": 0, "kind": "kill", "down_s": 20}]})
    summary = run_scenario_virtual(sc, tmp_path / sc.name,
                                   RunnerOptions(cache_dir=tmp_path / "cache"))
    assert summary["status"] == "ok", summary.get("error")
    assert summary["trades"] > 0
    assert broken(summary) == [], broken(summary)  # before: ['... missed']
