"""examples/bot_integration.py: the bot's executor gets every trade and retraction exactly
once, across a SIGKILL and restart, with a reorg in the run."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from monitor_sim import PY, ROOT, read_jsonl, spawn, start_sim, top_wallets, truth, wait_for

pytestmark = pytest.mark.slow


def test_executor_gets_each_event_once_across_a_restart(tmp_path: Path) -> None:
    rec = tmp_path / "busy.jsonl.gz"
    subprocess.run([PY, "-m", "simulator", "synth", "--profile", "busy", "--blocks", "60",
                    "--seed", "5", "--out", str(rec)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    wallets = top_wallets(rec, 8)
    from simulator.recording import load_recording

    first = load_recording(rec).first_block
    sim = start_sim(rec, tmp_path, speed=10.0)
    state = tmp_path / "bot"
    args = [PY, str(ROOT / "examples" / "bot_integration.py"), "--state", str(state),
            "--ws-url", sim.urls["ws"], "--rpc-url", sim.urls["http"], "--explorer-url",
            sim.urls["explorer"], "--speed", "10", "--start-block", str(first),
            *[x for w in wallets for x in ("--wallet", w)]]
    log = state / "executor.jsonl"
    try:
        # the first life SIGKILLs itself inside the executor's 3rd call, after it acted:
        # the outbox and the sink's keys carry over, and that event comes again marked
        # uncertain (the executor looks before acting again)
        bot = spawn([*args, "--die-inside-callback", "3"], tmp_path / "bot1.err")
        assert bot.proc.wait(timeout=120) == -signal.SIGKILL
        assert len(read_jsonl(log)) == 3
        bot = spawn(args, tmp_path / "bot2.err")
        bot.wait_ready()
        # a reorg after the restart: retractions reach the executor once too
        # (a reorg right before the kill can leave orphaned trades standing: see the
        # report of issue 12, a monitor defect outside this test)
        def standing() -> set[str]:
            state_: dict[str, bool] = {}
            for r in read_jsonl(log):
                state_[r["trade_id"]] = r["action"] == "copy"
            return {t for t, s in state_.items() if s}

        # the executor has the chain so far before the reorg (which may come after the
        # replay's last block on a loaded machine: it reorgs the last blocks all the same),
        # or the reorged blocks may be ones the monitor had not delivered yet: nothing to
        # retract, and nothing here would show a retraction reaching the executor once
        so_far = truth(sim.history, wallets)
        wait_for(lambda: standing() >= so_far, 90, "the chain so far copied")
        sim.fault("reorg", "chain", {"depth": 3, "seed": 2, "move_share": 0.5,
                                     "vanish_share": 0.5})
        sim.wait_exhausted(120)
        want = truth(sim.history, wallets)

        wait_for(lambda: standing() >= want, 90, "every canonical trade copied")
        assert bot.terminate() == 0
    finally:
        sim.stop()
    rows = read_jsonl(log)
    keys = Counter(r["key"] for r in rows)
    assert not [k for k, n in keys.items() if n > 1], "an event reached the executor twice"
    assert standing() == want  # nothing phantom, nothing missed
    assert any(r["action"] == "undo" for r in rows), "the reorg retracted a trade"
