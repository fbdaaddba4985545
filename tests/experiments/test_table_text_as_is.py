"""What the experiments CLI prints from a run store is printed as it is: a stored run's
text read as rich markup (``"[/x]"``) was a MarkupError traceback, and a number where a
scenario's name or mode belongs a NotRenderableError one, after the run or the analysis
had been written."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from experiments.matrix import summary_table
from tests.cli_checks import ROOT, copy_of_run, quick_virtual_run

SCENARIO = "websocket_clean"


def _rendered(summaries: list[dict[str, object]], title: str = "") -> str:
    out = io.StringIO()
    Console(file=out, width=250).print(summary_table(summaries, title=title))
    return out.getvalue()


@pytest.mark.parametrize("value", ["[/x]", "[bold", -1, 1e308, True, float("nan")])
def test_the_summary_table_prints_any_stored_value_as_it_is(value: object) -> None:
    text = _rendered([{"scenario": value, "mode": value, "status": value, "speed": value,
                       "trades": value, "thresholds": [value, {"expr": value,
                                                              "passed": False}]}],
                     title=f"run {value}")
    assert str(value) in text or f"{value:.2f}" in text  # type: ignore[str-format]


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quick_virtual_run(tmp_path_factory.mktemp("results"), SCENARIO)


@pytest.mark.parametrize("value", [-1, True, "[/x]"])
def test_analyze_of_a_run_json_whose_name_is_no_name_prints_its_table(
        value: object, stored_run: Path, tmp_path: Path) -> None:
    """Before: NotRenderableError / MarkupError tracebacks (exit 1) once the summary was
    written."""
    run = copy_of_run(stored_run, tmp_path)
    path = run / SCENARIO / "run.json"
    doc = json.loads(path.read_text())
    doc["scenario"] = doc["mode"] = value
    path.write_text(json.dumps(doc))
    res = subprocess.run([sys.executable, "-m", "experiments", "analyze", str(run)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode in (0, 1), res.stderr
    assert f"run directory: {run}" in res.stdout


def test_a_run_into_a_folder_named_with_brackets_prints_its_table(tmp_path: Path) -> None:
    """``--out 'results[/x]'``: the run was stored, then its last lines were a MarkupError
    traceback (exit 1)."""
    out = tmp_path / "results[/x]"
    run = quick_virtual_run(out, SCENARIO)
    assert run.parent == out
    res = subprocess.run([sys.executable, "-m", "experiments", "analyze", str(run)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert f"run directory: {run}" in res.stdout
