"""An INCONCLUSIVE full matrix (not --quick) is not told to run "the full matrix" again,
which is what it was and would decide nothing new: it gets the command that adds seeds,
and the scenarios that need them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import SCENARIOS

from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import build_report
from reports.verdict import Verdict


def _few_trades() -> list[dict[str, Any]]:
    out = []
    for spec in SCENARIOS:
        spec = dict(spec)
        if spec["mode"] == "websocket":
            spec["n"], spec["special"] = 40, {}
        out.append(spec)
    return out


def _recommendation(make_run: Callable[..., Path], tmp_path: Path, **manifest: Any) -> str:
    run = make_run(scenarios=_few_trades())
    doc = json.loads((run / "manifest.json").read_text())
    doc.update(manifest)
    (run / "manifest.json").write_text(json.dumps(doc))
    report = build_report(load_run(run), load_criteria(), bench_dir=tmp_path / "no-bench")
    assert report.verdict.verdict is Verdict.INCONCLUSIVE
    return report.rollout.recommendation


def test_a_full_real_time_matrix_is_told_which_seeds_to_add(
        make_run: Callable[..., Path], tmp_path: Path) -> None:
    rec = _recommendation(make_run, tmp_path, quick=False, clock="real")
    assert "lack of trades" in rec
    assert "make experiment, not --quick" not in rec
    assert "`python -m experiments run --seeds 3`" in rec
    assert "ws_10w" in rec  # a scenario whose gate is undecided is named
    assert "--clock virtual takes minutes" in rec


def test_a_full_virtual_matrix_is_told_the_virtual_command(
        make_run: Callable[..., Path], tmp_path: Path) -> None:
    rec = _recommendation(make_run, tmp_path, quick=False, clock="virtual")
    assert "`python -m experiments run --seeds 3 --clock virtual`" in rec


@pytest.mark.parametrize("quick", [True, None, "yes"])
def test_a_quick_run_or_one_that_does_not_say_is_told_to_run_the_full_matrix(
        make_run: Callable[..., Path], tmp_path: Path, quick: Any) -> None:
    rec = _recommendation(make_run, tmp_path, quick=quick)
    assert "the full matrix (make experiment, not --quick)" in rec
