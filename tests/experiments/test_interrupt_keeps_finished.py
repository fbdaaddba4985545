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
from pathlib import Path

import psutil
import pytest

from reports.load import load_run
from tests.cli_checks import ROOT, run_module, scenario_file, still_running, until


@pytest.mark.slow
def test_ctrl_c_after_one_scenario_finished_keeps_its_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = scenario_file(tmp_path / "short.toml", name="short", sim_duration_s=30, grace_s=5)
    second = scenario_file(tmp_path / "day.toml", name="day", sim_duration_s=86_400, grace_s=5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments", "run", str(first), str(second), "--clock",
         "virtual", "--jobs", "1", "--no-progress", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    kids: dict[int, psutil.Process] = {}
    try:
        until(lambda: list(out.glob("*/short/summary.json"))
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
    left = still_running(list(kids.values()), timeout=30)
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
