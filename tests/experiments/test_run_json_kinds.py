"""The runner's record (run.json) with a field of the wrong kind is an inconclusive
analysis naming the file and the field, as a list field of the wrong kind already was.
Before, a status the runner never writes ('weird', 5, 'running') was analysed as ok,
sim_duration_s = -1 and actionable_window_s = "x" went into the summary as they were,
and a window of "abc" was a ValueError's text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from experiments.analysis import analyze_scenario_dir
from tests.experiments.exp_helpers import make_scenario_dir

CASES: list[tuple[str, Any, str]] = [
    ("status", "weird", "status 'weird' is not one the runner writes (ok, harness_error)"),
    ("status", 5, "status '5' is not one the runner writes"),
    ("status", "running", "status 'running' is not one the runner writes"),
    ("speed", True, "speed = True is not a number > 0"),
    ("sim_duration_s", -1, "sim_duration_s = -1 is not a number > 0"),
    ("actionable_window_s", "x", "actionable_window_s = x is not a number > 0"),
    ("window_start_ns", "abc", "window_start_ns = abc is not a whole number of ns >= 0"),
    ("window_end_ns", 0, "window_end_ns = 0 is not after window_start_ns"),
    ("resources", [1], "resources is not a JSON object"),
]


@pytest.mark.parametrize(("key", "value", "said"), CASES, ids=[f"{k}={v}" for k, v, _ in CASES])
def test_a_run_json_field_of_the_wrong_kind_is_said(tmp_path: Path, key: str, value: Any,
                                                    said: str) -> None:
    sdir = make_scenario_dir(tmp_path)
    assert analyze_scenario_dir(sdir)["status"] == "ok"
    path = sdir / "run.json"
    run = json.loads(path.read_text())
    run[key] = value
    path.write_text(json.dumps(run))
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "inconclusive"
    assert said in summary["error"], summary["error"]
    assert "run.json" in summary["error"]


def test_a_harness_error_record_is_still_a_harness_error(tmp_path: Path) -> None:
    sdir = make_scenario_dir(tmp_path, status="harness_error")
    assert analyze_scenario_dir(sdir)["status"] == "harness_error"
