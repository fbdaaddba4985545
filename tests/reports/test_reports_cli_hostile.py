"""Hostile input to ``python -m reports``, run as a user runs it (a subprocess): a bad
argument or criteria file is one ``python -m reports...: error: ...`` line, exit code 2;
a damaged run store is a report that says so (INCONCLUSIVE), never a traceback or a hang."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli_checks import DEEP, copy_of_run, error_line, quick_virtual_run, run_module

SCENARIO = "websocket_clean"


def reports(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_module("reports", *args, timeout=timeout)


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quick_virtual_run(tmp_path_factory.mktemp("results"), SCENARIO)


@pytest.fixture
def run_copy(stored_run: Path, tmp_path: Path) -> Path:
    return copy_of_run(stored_run, tmp_path)


@pytest.mark.parametrize("case", ["manifest nested too deep", "summary nested too deep",
                                  "history nested too deep", "manifest scenarios a number",
                                  "manifest a fifo", "summary a fifo", "history a fifo",
                                  "scenario.toml a fifo"])
def test_a_damaged_run_is_a_report_that_says_so(case: str, run_copy: Path,
                                                tmp_path: Path) -> None:
    """Each was a traceback (RecursionError, TypeError: 'int' object is not iterable) or
    a hang (a FIFO's open waits for a writer)."""
    sdir = run_copy / SCENARIO
    path = {"manifest nested too deep": run_copy / "manifest.json",
            "summary nested too deep": run_copy / "summary.json",
            "history nested too deep": sdir / "monitor_history.jsonl",
            "manifest scenarios a number": run_copy / "manifest.json",
            "manifest a fifo": run_copy / "manifest.json",
            "summary a fifo": sdir / "summary.json",
            "history a fifo": sdir / "sim_history.jsonl",
            "scenario.toml a fifo": sdir / "scenario.toml"}[case]
    if case.endswith("a fifo"):
        path.unlink()
        os.mkfifo(path)
    elif case == "manifest scenarios a number":
        path.write_text(json.dumps({"scenarios": 5, "seeds": "x", "clock": 7}))
    elif case == "history nested too deep":
        path.write_text(DEEP + "\n" + path.read_text())
    else:
        path.write_text(DEEP)
    out = tmp_path / "report.html"
    res = reports("build", str(run_copy), "--out", str(out), "--json", str(tmp_path / "v.json"),
                  timeout=90)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert out.exists()
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["verdict"] == "INCONCLUSIVE"


def test_criteria_nested_too_deep_or_a_fifo(stored_run: Path, tmp_path: Path) -> None:
    """A criteria file nested too deep was a RecursionError traceback; a FIFO hung."""
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    for criteria, words in ((deep, "nested too deep"), (fifo, "not a regular file")):
        res = reports("build", str(stored_run), "--criteria", str(criteria),
                      "--out", str(tmp_path / "r.html"), timeout=60)
        line = error_line(res)
        assert str(criteria) in line and words in line
        assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("flag", ["--json", "--out", "--criteria"])
def test_an_empty_path_is_refused(flag: str, stored_run: Path) -> None:
    """``--json ''`` wrote no verdict file and said nothing (exit 0); ``--out ''`` wrote
    the default file."""
    line = error_line(reports("build", str(stored_run), flag, ""))
    assert flag in line and "an empty path" in line
