"""A virtual run's monitor and simulator log to its scenario folder, not to the console."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from experiments.cli import main

SCENARIO = """
name = "drop_log"
profile = "default"
seed = 3
blocks = 260
sim_duration_s = 420
speed = 1
grace_s = 60

[wallets]
count = 5
pick = "active"

[monitor]
mode = "websocket"

[[faults]]
name = "ws_drop"
target = "ws"
at = 120
"""


def test_a_virtual_runs_alerts_go_to_its_log_not_through_the_progress_bar(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both sides share the run's process in virtual time: every reconnect, alert and
    malformed frame of a fault scenario was printed on the console, through the progress
    bar (thousands of lines a simulated day)."""
    path = tmp_path / "drop_log.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    levels = {n: logging.getLogger(n).level for n in ("monitor", "simulator")}
    assert main(["run", str(path), "--clock", "virtual", "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    said = capsys.readouterr()
    assert "ALERT" not in said.err + said.out and "[ws0]" not in said.err + said.out
    log = (tmp_path / "out" / "latest" / "drop_log" / "run.log").read_text(encoding="utf-8")
    assert "ALERT disconnected" in log and "monitor started" in log
    assert {n: logging.getLogger(n).level for n in levels} == levels  # restored
    assert logging.getLogger("monitor").propagate
