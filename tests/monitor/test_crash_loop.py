"""Crash loops: the monitor killed with SIGKILL at random moments of a faulty run, and the
node killed and restarted under a running monitor. Both as processes over loopback.

After every kill the monitor restarts on the same state (SQLite, detections file,
history). At the end: every canonical trade delivered exactly once, nothing phantom, the
cursor never moved back more than the deepest reorg, ``PRAGMA integrity_check`` ok.
``make test`` runs 5 kills; ``make soak`` runs 20.
"""

from __future__ import annotations

import random
import socket
import sqlite3
from pathlib import Path

import pytest
from monitor_sim import (
    PY,
    Sim,
    assert_exactly_once,
    read_jsonl,
    start_monitor,
    start_sim,
    synth_busy,
    top_wallets,
    wait_all_detected,
    wait_for,
)

SPEED = 10.0
BLOCKS = 150
REORG_DEPTH = 2
FAST = ["--staleness-blocks", "5", "--heartbeat-interval", "10", "--heartbeat-timeout", "4",
        "--backoff-initial", "1", "--backoff-max", "5", "--reconcile-interval", "10",
        "--fallback-after", "6", "--fallback-polling-interval", "4"]
# ws drops, reorgs, a provider outage (socket refused, HTTP errors) and an explorer outage
FAULTS = f"""
[lag]
median_s = 2.0
p95_s = 4.0

[[faults]]
name = "ws_drop"
target = "ws"
at = 20
every = 45

[[faults]]
name = "reorg"
at = 30
every = 40
seed = 3
params = {{ depth = {REORG_DEPTH} }}

[[faults]]
name = "ws_refuse"
target = "ws"
at = 120
duration = 30

[[faults]]
name = "rpc_errors"
target = "rpc_http"
at = 120
duration = 30
params = {{ share = 1.0 }}

[[faults]]
name = "explorer_down"
at = 200
duration = 20
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_busy(tmp_path_factory.mktemp("rec"), BLOCKS, seed=8, timeout=300)


def min_cursor(db: Path) -> int | None:
    with sqlite3.connect(db) as con:
        row = con.execute("SELECT MIN(block) FROM cursors").fetchone()
    return row[0] if row else None


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])


def crash_loop(recording: Path, tmp: Path, kills: int, seed: int) -> None:
    from simulator.recording import load_recording
    first = load_recording(recording).first_block
    wallets = top_wallets(recording, 20)
    sim = start_sim(recording, tmp, speed=SPEED, config=FAULTS)
    rng = random.Random(seed)
    # kill moments: distinct published-block counts spread over the run
    moments = sorted(rng.sample(range(8, BLOCKS - 10), kills))
    extra = [*FAST, "--start-block", str(first)]
    cursors: list[int] = []
    try:
        mon = start_monitor(sim, tmp, wallets, speed=SPEED, extra=extra, tag="mon0")
        for i, at in enumerate(moments, 1):
            sim.wait_published(at, timeout=120)
            mon.proc.kill9()
            assert integrity(mon.db) == "ok"
            cur = min_cursor(mon.db)
            if cur is not None:
                if cursors:  # never back past the deepest reorg (+1 for the fork's parent)
                    assert cur >= max(cursors) - (REORG_DEPTH + 1), (cursors, cur)
                cursors.append(cur)
            mon = start_monitor(sim, tmp, wallets, speed=SPEED, extra=extra, tag=f"mon{i}")
        try:
            want = wait_all_detected(mon, sim, wallets, timeout=240)
        finally:
            assert mon.proc.terminate() == 0
        assert_exactly_once(mon, want)
        assert len(want) > 50
        assert integrity(mon.db) == "ok"
        starts = [r for r in read_jsonl(mon.history) if r["event"] == "start"]
        assert len(starts) == kills + 1
    finally:
        sim.stop()


@pytest.mark.slow
def test_monitor_killed_5_times_in_a_faulty_run_loses_and_duplicates_nothing(
        recording: Path, tmp_path: Path) -> None:
    crash_loop(recording, tmp_path, kills=5, seed=1)


@pytest.mark.soak
def test_monitor_killed_20_times_in_a_faulty_run_loses_and_duplicates_nothing(
        recording: Path, tmp_path: Path) -> None:
    crash_loop(recording, tmp_path, kills=20, seed=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sim_on(recording: Path, tmp: Path, port: int, tag: str) -> Sim:
    import json

    from monitor_sim import spawn
    hist = tmp / f"{tag}_history.jsonl"
    p = spawn([PY, "-m", "simulator", "serve", "--recording", str(recording), "--port",
               str(port), "--speed", str(SPEED), "--history", str(hist)], tmp / f"{tag}.err")
    urls = json.loads(p.wait_ready().split(" ", 1)[1])
    return Sim(p, urls, hist)


@pytest.mark.slow
def test_node_killed_and_restarted_under_a_running_monitor(recording: Path,
                                                           tmp_path: Path) -> None:
    """The node dies (SIGKILL) mid-run and comes back on the same port replaying the same
    chain from its start: the monitor reconnects, re-checks, and delivers each trade once."""
    from simulator.recording import load_recording
    first = load_recording(recording).first_block
    wallets = top_wallets(recording, 20)
    port = free_port()
    sim = start_sim_on(recording, tmp_path, port, "sim1")
    extra = [*FAST, "--start-block", str(first)]
    mon = start_monitor(sim, tmp_path, wallets, speed=SPEED, extra=extra)
    sim2: Sim | None = None
    try:
        sim.wait_published(40, timeout=120)
        sim.proc.kill9()
        sim2 = start_sim_on(recording, tmp_path, port, "sim2")
        want = wait_all_detected(mon, sim2, wallets, timeout=240)
        wait_for(lambda: mon.proc.proc.poll() is None, 5, "monitor alive")
    finally:
        assert mon.proc.terminate() == 0
        if sim2 is not None:
            sim2.stop()
    assert_exactly_once(mon, want)
    hist = read_jsonl(mon.history)
    assert any(r["event"] == "state" and r["to"] == "RECONNECTING" for r in hist)
    assert integrity(mon.db) == "ok"
