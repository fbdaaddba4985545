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
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import tomli_w

from tests.cli_checks import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="PR_SET_PDEATHSIG is Linux's")


def _scenario(path: Path, name: str, sim_duration_s: float) -> Path:
    path.write_bytes(tomli_w.dumps({
        "name": name, "profile": "default", "seed": 3, "sim_duration_s": sim_duration_s,
        "grace_s": 5, "speed": 1, "wallets": {"count": 3}}).encode())
    return path


def _until(cond: Callable[[], object], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:100]}")
        except psutil.Error:
            pass
    return out


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
        _until(ready)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _alive(kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(kids) == []
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
    path = _scenario(tmp_path / "long.toml", "long", 600)
    _kill_runner_and_check(
        [str(path), "--out", str(tmp_path / "out")],
        lambda kids: _named(kids, "simulator serve", "monitor run")
        and any((tmp_path / "out").glob("*/long/monitor_history.jsonl")))


def test_a_virtual_runner_killed_takes_its_workers(tmp_path: Path) -> None:
    a = _scenario(tmp_path / "a.toml", "a", 86_400)
    b = _scenario(tmp_path / "b.toml", "b", 86_400)
    out = tmp_path / "out"
    _kill_runner_and_check(
        [str(a), str(b), "--clock", "virtual", "--jobs", "2", "--out", str(out)],
        lambda kids: len(list(out.glob("*/*/sim_config.toml"))) >= 2
        and _named(kids, "spawn_main"))
