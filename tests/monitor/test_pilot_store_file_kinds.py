"""A folder or a FIFO where one of the pilot store's files belongs (events.jsonl,
sightings.jsonl, a path's history.jsonl) is a setting to fix, as an unwritable --store
folder is: exit 2, which the systemd unit does not restart (RestartPreventExitStatus=2).
It was exit 1, and the unit restarted the pilot into the same error every 5 s."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitor.pilot import PilotStore

ROOT = Path(__file__).resolve().parents[2]
WALLET = "0x" + "11" * 20


def _started_store(directory: Path) -> Path:
    """A store whose pilot has started once (its start block kept: no node is asked)."""
    s = PilotStore(directory)
    s.set_meta("start_block", 100)
    s.set_meta("wallets", [WALLET])
    s.end_session(s.new_session(time.time_ns(), 0), time.time_ns())
    s.close()
    return directory


@pytest.mark.parametrize("name", ["events.jsonl", "sightings.jsonl",
                                  "websocket/history.jsonl"])
@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_store_file_that_is_no_file_is_a_setting_exit_2(
        name: str, kind: str, tmp_path: Path) -> None:
    store = _started_store(tmp_path / "store")
    bad = store / name
    bad.parent.mkdir(parents=True, exist_ok=True)
    if kind == "folder":
        bad.mkdir()
    else:
        os.mkfifo(bad)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MONITOR_", "EXPLORER_", "RPC_", "WEBSOCKET_"))}
    env["EXPLORER_API_KEY"] = "k"
    res = subprocess.run(
        [sys.executable, "-m", "monitor", "pilot", "--store", str(store), "--wallet", WALLET,
         "--ws-url", "ws://127.0.0.1:9/", "--rpc-url", "http://127.0.0.1:9/",
         "--explorer-url", "http://127.0.0.1:9/api", "--block-interval", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL)
    assert "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and str(bad) in errors[0], res.stderr[-2000:]
    assert "not a regular file" in errors[0] or "is a directory" in errors[0], errors
    assert res.returncode == 2, res.stderr[-2000:]
