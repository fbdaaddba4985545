"""Output into a pipe whose reader is gone (``| head``) is no error and changes no exit
code. ``experiments list | head -1`` exited 1 without a word (rich's Console turned the
broken pipe into SystemExit(1)); ``reports compare | head -1`` said 'error: Broken pipe',
exit 2; ``reports build --exit-code`` gave 2 in place of its verdict's code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_checks import ROOT, quick_virtual_run

SCENARIO = "websocket_clean"


def _into_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m args`` whose stdout is a pipe nobody reads any more: every write fails
    with EPIPE (the read end is closed before the command starts)."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, stdout=w,
                              stderr=subprocess.PIPE, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
    finally:
        os.close(w)


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quick_virtual_run(tmp_path_factory.mktemp("results"), SCENARIO)


def test_experiments_list_into_a_closed_pipe_is_exit_0() -> None:
    res = _into_a_closed_pipe("experiments", "list")
    assert res.returncode == 0 and res.stderr == "", (res.returncode, res.stderr)


def test_experiments_analyze_into_a_closed_pipe_is_exit_0(stored_run: Path) -> None:
    res = _into_a_closed_pipe("experiments", "analyze", str(stored_run))
    assert res.returncode == 0 and "Traceback" not in res.stderr, (res.returncode, res.stderr)


def test_reports_compare_into_a_closed_pipe_is_exit_0(stored_run: Path,
                                                      tmp_path: Path) -> None:
    res = _into_a_closed_pipe("reports", "compare", str(stored_run), str(stored_run),
                              "--out", str(tmp_path / "c.html"))
    assert res.returncode == 0 and res.stderr == "", (res.returncode, res.stderr)


@pytest.mark.parametrize("json_out", [[], ["--json", "-"]], ids=["text", "json"])
def test_reports_build_exit_code_is_the_verdict_s_into_a_closed_pipe(
        json_out: list[str], stored_run: Path, tmp_path: Path) -> None:
    """The quick run's verdict is INCONCLUSIVE (4): a CI gate reading 0 would pass it."""
    res = _into_a_closed_pipe("reports", "build", str(stored_run), "--exit-code",
                              "--out", str(tmp_path / "r.html"), *json_out)
    assert res.returncode == 4 and "Traceback" not in res.stderr, (res.returncode,
                                                                   res.stderr)


def test_a_failed_analysis_still_exits_1_into_a_closed_pipe(stored_run: Path,
                                                            tmp_path: Path) -> None:
    """A scenario whose folder is gone: analyze's 1, not the 0 of a reader gone."""
    run = tmp_path / "run"
    shutil.copytree(stored_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["scenarios"].append({"name": "gone"})
    (run / "manifest.json").write_text(json.dumps(manifest))
    res = _into_a_closed_pipe("experiments", "analyze", str(run))
    assert res.returncode == 1 and "gone" in res.stderr, (res.returncode, res.stderr)
