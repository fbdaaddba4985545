"""A scenario summary's time span or rate that is no number >= 0 (a text, Infinity, a
list: a damaged or hand-edited summary.json) is a data problem of that scenario, named in
the report: ``reports build`` printed a ValueError traceback (float('x')) from the claims
and from the scenario's details, whatever the scenario's status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reports.load import summary_problems
from tests.cli_checks import ROOT, copy_of_run, quick_virtual_run

SCENARIO = "websocket_clean"


@pytest.mark.parametrize("key", ["sim_duration_s", "speed", "explorer_calls_per_hour"])
@pytest.mark.parametrize("value", ["x", float("inf"), -1, []], ids=["text", "inf", "neg", "list"])
def test_a_span_or_rate_that_is_no_number_is_a_problem(key: str, value: object) -> None:
    problems = summary_problems({"status": "ok", "mode": "websocket", key: value})
    assert any(f"{key} = " in p and "is not a number >= 0" in p for p in problems), problems


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quick_virtual_run(tmp_path_factory.mktemp("results"), SCENARIO)


@pytest.mark.parametrize("status", ["ok", "inconclusive"])
def test_reports_build_of_a_text_duration_is_no_traceback(status: str, stored_run: Path,
                                                          tmp_path: Path) -> None:
    run = copy_of_run(stored_run, tmp_path)
    path = run / SCENARIO / "summary.json"
    doc = json.loads(path.read_text())
    doc["sim_duration_s"], doc["status"] = "x", status
    path.write_text(json.dumps(doc))
    res = subprocess.run([sys.executable, "-m", "reports", "build", str(run)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "INCONCLUSIVE" in res.stdout, res.stdout
