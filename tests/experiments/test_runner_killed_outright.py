"""The runner killed outright (SIGKILL: no handler runs) takes what it started with it:
the simulator and monitor of a real-clock run (each in a session of its own) and the pool
workers of a virtual run get SIGTERM from the kernel (PR_SET_PDEATHSIG). Before, both
ran on for good after the runner was gone (the monitor never ends by itself), and a
virtual worker ran its simulated day to the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.cli_checks import ROOT, scenario_file, still_running, until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="PR_SET_PDEATHSIG is Linux's")


def _kill_runner_and_check(args: list[str], started: Callable[[list[psutil.Process]], bool]
                           ) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "experiments", "run", *args,
                             "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    kids: list[psutil.Process] = []
    try:
        def ready() -> bool:
            kids[:] = psutil.Process(proc.pid).children(recursive=True)
            return started(kids)
        until(ready)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert still_running(kids, timeout=30) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for k in kids:
            try:
                k.kill()
            except psutil.Error:
                pass


def _named(kids: list[psutil.Process], *words: str) -> bool:
    lines = []
    for k in kids:
        try:
            lines.append(" ".join(k.cmdline()))
        except psutil.Error:
            pass
    return all(any(w in line for line in lines) for w in words)


def test_a_real_clock_runner_killed_takes_its_simulator_and_monitor(tmp_path: Path) -> None:
    path = scenario_file(tmp_path / "long.toml", name="long", sim_duration_s=600, grace_s=5)
    _kill_runner_and_check(
        [str(path), "--out", str(tmp_path / "out")],
        lambda kids: _named(kids, "simulator serve", "monitor run")
        and any((tmp_path / "out").glob("*/long/monitor_history.jsonl")))


def test_a_virtual_runner_killed_takes_its_workers(tmp_path: Path) -> None:
    a = scenario_file(tmp_path / "a.toml", name="a", sim_duration_s=86_400, grace_s=5)
    b = scenario_file(tmp_path / "b.toml", name="b", sim_duration_s=86_400, grace_s=5)
    out = tmp_path / "out"
    _kill_runner_and_check(
        [str(a), str(b), "--clock", "virtual", "--jobs", "2", "--out", str(out)],
        lambda kids: len(list(out.glob("*/*/sim_config.toml"))) >= 2
        and (_named(kids, "spawn_main") or _named(kids, "forkserver")))
