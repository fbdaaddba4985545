"""Found by ``python -m experiments chaos`` (seed 111, 900 s): a reorg while the feed is
down and the explorer fallback polls, deep enough to replace blocks the feed delivered
just before it went down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.runner import RunnerOptions
from experiments.scenario import scenario_from_dict
from experiments.virtual import run_scenario_virtual


def _scenario(duration_s: float) -> Any:
    return scenario_from_dict({
        "name": "fallback_reorg", "profile": "steady-1.5s", "seed": 111,
        "blocks": int(duration_s / 1.5) + 200, "sim_duration_s": duration_s,
        "speed": 1, "grace_s": 60,
        "wallets": {"count": 20, "pick": "active"},
        "chain": {"window_blocks": 408},
        "monitor": {"mode": "websocket", "backoff_initial": 3.0, "block_interval": 1.5},
        "faults": [
            {"name": "ws_refuse", "target": "ws", "at": 92.4, "duration": 163.1,
             "params": {"mode": "reset", "drop_existing": True}},
            {"name": "reorg", "target": "chain", "at": 159.9,
             "params": {"depth": 64, "seed": 184456897}},
        ],
    }, where="test")


def test_a_reorg_during_the_fallback_retracts_what_the_feed_delivered_below_its_floor(
        tmp_path: Path) -> None:
    """The feed delivered the trades of blocks N and N+1 live, went down (the explorer
    took over 30 s later and moved the cursor on), and a 64-block reorg replaced blocks
    from N while it was down. The reconnect's check looks 128 blocks below the cursor
    the poller had moved, the fallback's check only from the cursor where polling
    started: nothing judged N and N+1 again. Their trades stood (phantoms) and the new
    chain's trades of those blocks were never fetched (missed)."""
    sc = _scenario(420.0)
    summary = run_scenario_virtual(sc, tmp_path / sc.name, RunnerOptions(cache_dir=tmp_path))
    assert summary["status"] == "ok", summary["error"]
    assert summary["retracted"] > 100  # the reorg replaced what the feed had delivered
    assert (summary["missed"], summary["duplicates"], summary["phantoms"]) == (0, 0, 0)
