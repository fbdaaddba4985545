"""Hostile input to ``python -m experiments``, run as a user runs it (a subprocess): a
damaged run store or scenario is one ``error: ...`` line and no traceback, never a hang
(a timeout), and the earlier results stay."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli_checks import DEEP, copy_of_run, error_line, quick_virtual_run, run_module

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "websocket_clean"


def experiments(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_module("experiments", *args, timeout=timeout)


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quick_virtual_run(tmp_path_factory.mktemp("results"), SCENARIO)


@pytest.fixture
def run_copy(stored_run: Path, tmp_path: Path) -> Path:
    return copy_of_run(stored_run, tmp_path)


@pytest.mark.parametrize("name", ["manifest.json", f"{SCENARIO}/run.json",
                                  f"{SCENARIO}/monitor_history.jsonl",
                                  f"{SCENARIO}/sim_history.jsonl",
                                  f"{SCENARIO}/scenario.toml"])
def test_analyze_a_file_nested_too_deep(name: str, run_copy: Path) -> None:
    """[[[[...]]]] in a run's JSON or TOML was a RecursionError traceback."""
    path = run_copy / name
    before = (run_copy / SCENARIO / "summary.json").read_text()
    if name.endswith(".toml"):
        path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    elif name.endswith(".jsonl"):
        path.write_text(DEEP + "\n" + path.read_text())
    else:
        path.write_text(DEEP)
    res = experiments("analyze", str(run_copy))
    if name == "manifest.json":  # only the order of the scenarios is read from it
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        return
    line = error_line(res, code=1)  # a scenario that analysed before: kept, exit 1
    assert SCENARIO in line and "nested too deep" in line and "earlier results are kept" \
        in line
    assert json.loads((run_copy / SCENARIO / "summary.json").read_text())["status"] == "ok"
    assert (run_copy / SCENARIO / "summary.json").read_text() == before


@pytest.mark.parametrize("name", ["manifest.json", f"{SCENARIO}/run.json",
                                  f"{SCENARIO}/detections.jsonl",
                                  f"{SCENARIO}/outcomes.parquet"])
def test_analyze_a_fifo_in_the_run_is_refused_not_waited_on(name: str,
                                                            run_copy: Path) -> None:
    """A FIFO in place of a run file hung analyze (to read, or to write the parquet)."""
    path = run_copy / name
    path.unlink()
    os.mkfifo(path)
    line = error_line(experiments("analyze", str(run_copy), timeout=60))
    assert str(path) in line and "not a regular file" in line


def test_a_scenario_that_is_a_fifo_or_nested_too_deep(tmp_path: Path) -> None:
    """``validate`` of a FIFO hung; of a TOML nested too deep, a traceback."""
    fifo = tmp_path / "s.toml"
    os.mkfifo(fifo)
    assert "not a regular file" in error_line(experiments("validate", str(fifo), timeout=60))
    deep = tmp_path / "deep.toml"
    deep.write_text('name = "x"\nfoo = ' + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deep" in error_line(experiments("validate", str(deep)))


def test_a_scenario_slower_than_the_simulator_can_run_is_refused(tmp_path: Path) -> None:
    """speed = 1e-300 validated; the simulator then failed each run at start."""
    text = (ROOT / "experiments" / "scenarios" / f"{SCENARIO}.toml").read_text()
    slow = tmp_path / "slow.toml"
    slow.write_text(text.replace("speed = 30", "speed = 1e-300"))
    line = error_line(experiments("validate", str(slow)))
    assert "speed" in line and "at least 0.001" in line
