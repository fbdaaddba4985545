"""A scenario summary's wallets that is not a count (a text, NaN, a list), and any count
that is Infinity, is a data problem of that scenario (INCONCLUSIVE, named in the report):
``reports build`` printed a ValueError traceback from the wallets claim, and an
OverflowError one from the summary's own check for Infinity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reports.load import summary_problems
from tests.cli_checks import ROOT, copy_of_run, quick_virtual_run

SCENARIO = "websocket_clean"


@pytest.mark.parametrize(("key", "value"), [
    ("wallets", "x"), ("wallets", float("nan")), ("wallets", -1), ("wallets", []),
    ("wallets", float("inf")), ("trades", float("inf")), ("missed", float("-inf"))])
def test_a_count_that_is_no_count_is_a_problem(key: str, value: object) -> None:
    summary = {"status": "ok", "mode": "websocket", key: value}
    assert any(f"{key} = " in p and "is not a count" in p for p in summary_problems(summary))


def test_whole_counts_are_no_problem() -> None:
    assert summary_problems({"status": "ok", "mode": "polling", "wallets": 10,
                             "trades": 3, "detected": 3, "late": 0, "missed": 0,
                             "duplicates": 0}) == []


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quick_virtual_run(tmp_path_factory.mktemp("results"), SCENARIO)


@pytest.mark.parametrize("value", ["x", float("inf")], ids=["text", "infinity"])
def test_reports_build_names_it_instead_of_a_traceback(value: object, stored_run: Path,
                                                       tmp_path: Path) -> None:
    run = copy_of_run(stored_run, tmp_path)
    path = run / SCENARIO / "summary.json"
    doc = json.loads(path.read_text())
    doc["wallets"] = value
    path.write_text(json.dumps(doc))
    res = subprocess.run([sys.executable, "-m", "reports", "build", str(run)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "INCONCLUSIVE" in res.stdout and "wallets = " in res.stdout, res.stdout
