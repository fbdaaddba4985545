"""Ctrl-C (SIGINT) in a run of two scenarios after the first had finished: the run's
summary keeps the finished one's results, the other says 'run interrupted', the runner
exits 130 with nothing of it left running, and the report is INCONCLUSIVE naming the
interrupted scenario only. Before, every scenario was listed 'run interrupted', and the
report called the finished one's own summary a data problem ('the run's summary.json
says status = harness_error, the scenario's says ok')."""

from __future__ import annotations

import json
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

from reports.load import load_run
from tests.cli_checks import ROOT, run_module


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


@pytest.mark.slow
def test_ctrl_c_after_one_scenario_finished_keeps_its_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = _scenario(tmp_path / "short.toml", "short", 30)
    second = _scenario(tmp_path / "day.toml", "day", 86_400)
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments", "run", str(first), str(second), "--clock",
         "virtual", "--jobs", "1", "--no-progress", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    kids: dict[int, psutil.Process] = {}
    try:
        _until(lambda: list(out.glob("*/short/summary.json"))
               and list(out.glob("*/day/sim_config.toml")))
        kids.update((k.pid, k) for k in psutil.Process(proc.pid).children(recursive=True))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(
            k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids.values()):
        time.sleep(0.05)
    left = [k.pid for k in kids.values()
            if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
    for k in kids.values():
        try:
            k.kill()
        except psutil.Error:
            pass
    assert left == []
    run_dir = (out / "latest").resolve()
    listed = {s["scenario"]: s for s in
              json.loads((run_dir / "summary.json").read_text())["scenarios"]}
    assert listed["short"]["status"] == "ok"
    assert listed["short"]["trades"] == json.loads(
        (run_dir / "short" / "summary.json").read_text())["trades"]
    assert listed["day"]["status"] == "harness_error"
    assert listed["day"]["error"] == "run interrupted"
    run = load_run(run_dir)
    assert run.scenario("short").problems == ()
    assert run.scenario("short").ok
    res = run_module("reports", "build", str(run_dir), "--exit-code")
    assert res.returncode == 4, res.stdout + res.stderr
    assert "Scenario day has no usable results: harness error (run interrupted)" in res.stdout
    assert "Scenario short has no usable results" not in res.stdout
