"""The monitor against a node whose history begins at the replay's first block N (the
simulator answers 4444 "pruned history unavailable" below it, as geth v1.16+ with pruned
history does: 17bdffd): a ``start_block`` below N. Real processes on loopback.

Polling (the explorer keeps all history): every trade once. WebSocket: every trade
once too (live), but the shard's sync asks eth_getLogs from start_block for as long as
the monitor runs ('sync failed (JSON-RPC error 4444: pruned history unavailable); retry
in 3.00s', a warning every 3 s, never an error or an alert) and the cursors stay below N:
a reconnect's or a restart's backfill from them fails the same way, so trades mined while
the feed was down are lost (unless the explorer fallback covers them). Not fixed here
(monitor/wallet_monitor.py is another helper's): strict xfail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from monitor_sim import (
    FAST,
    assert_exactly_once,
    read_jsonl,
    start_monitor,
    start_sim,
    synth_busy,
    top_wallets,
    wait_all_detected,
)

pytestmark = pytest.mark.slow

SPEED = 10.0
BLOCKS = 40


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_busy(tmp_path_factory.mktemp("rec"), BLOCKS, seed=7)


def _first_block(recording: Path) -> int:
    from simulator.recording import load_recording
    return load_recording(recording).first_block


def test_start_block_below_the_nodes_first_block_polls_every_trade(
        recording: Path, tmp_path: Path) -> None:
    """Polling: the explorer keeps all history."""
    wallets = top_wallets(recording, 10)
    sim = start_sim(recording, tmp_path, speed=SPEED)
    try:
        mon = start_monitor(sim, tmp_path, wallets, speed=SPEED, mode="polling",
                            extra=[*FAST, "--start-block", str(_first_block(recording) - 3)])
        try:
            want = wait_all_detected(mon, sim, wallets, timeout=60.0)
        finally:
            assert mon.proc.terminate() == 0
        assert_exactly_once(mon, want)
    finally:
        sim.stop()


def test_start_block_below_the_nodes_history_is_one_error_and_alert(
        recording: Path, tmp_path: Path) -> None:
    """WebSocket: the shard's sync asked eth_getLogs from start_block (4444) every 3 s for
    as long as the monitor ran, a warning each time, no error or alert saying why. Now one
    error and one ``pruned_history`` alert name it, and the sync asks again only at the
    longest back-off; the live trades are delivered meanwhile."""
    wallets = top_wallets(recording, 10)
    sim = start_sim(recording, tmp_path, speed=SPEED, paused=True)
    below = _first_block(recording) - 3
    try:
        mon = start_monitor(sim, tmp_path, wallets, speed=SPEED,
                            extra=[*FAST, "--start-block", str(below)])
        sim.start_replay()
        try:
            want = wait_all_detected(mon, sim, wallets, timeout=60.0)
        finally:
            assert mon.proc.terminate() == 0
        assert_exactly_once(mon, want)
        log = mon.proc.stderr_path.read_text()
        errors = [ln for ln in log.splitlines() if "has no history from block" in ln
                  and "ERROR monitor.wallets" in ln]
        assert len(errors) == 1, errors  # before: none (a warning every 3 s)
        assert f"block {below}" in errors[0] and "pruned history unavailable" in errors[0]
        assert log.count("pruned history unavailable); retry in") <= 3, log[-2000:]
        alerts = [r for r in read_jsonl(mon.history) if r["event"] == "alert"
                  and r.get("kind") == "pruned_history"]
        assert len(alerts) == 1, alerts
    finally:
        sim.stop()


def test_a_reorg_of_the_first_block_held_does_not_stall_the_sync(recording: Path,
                                                                 tmp_path: Path) -> None:
    """start_block = N, the replay's first block; a reorg (depth 3, heads 'each') once two
    blocks are out replaces blocks N and N + 1. Now: every trade once (live), but the
    shard's sync asks eth_getLogs from N - 1 (4444) at each retry until the monitor stops,
    its cursors left at N - 1."""
    wallets = top_wallets(recording, 10)
    first = _first_block(recording)
    sim = start_sim(recording, tmp_path, speed=SPEED, paused=True)
    try:
        mon = start_monitor(sim, tmp_path, wallets, speed=SPEED,
                            extra=[*FAST, "--start-block", str(first)])
        sim.start_replay()
        try:
            sim.wait_published(2)
            sim.fault("reorg", None, {"depth": 3, "seed": 2, "move_share": 0.5,
                                      "vanish_share": 0.5})
            want = wait_all_detected(mon, sim, wallets, timeout=60.0)
        finally:
            assert mon.proc.terminate() == 0
        assert_exactly_once(mon, want)
        with sqlite3.connect(mon.db) as db:
            cursors = [b for (b,) in db.execute("SELECT block FROM cursors")]
        assert cursors and min(cursors) >= first, (first, cursors)
    finally:
        sim.stop()
