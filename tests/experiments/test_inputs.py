"""experiments.inputs: an analysis records what it read; a later change to those files is
found (the report then says the stored results no longer describe them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from exp_helpers import make_scenario_dir

import experiments.analysis as analysis
from experiments.analysis import analyze_scenario_dir
from experiments.inputs import ANALYSED_FILES, changed_since, fingerprint
from experiments.store import create_run


def _scenario(tmp_path: Path) -> Path:
    return make_scenario_dir(create_run(tmp_path / "results", "r1"), "one")


def test_unchanged_files_are_not_a_change_and_every_change_is_named(tmp_path: Path) -> None:
    sdir = _scenario(tmp_path)
    recorded = fingerprint(sdir)
    assert set(recorded) == {n for n in ANALYSED_FILES if (sdir / n).exists()}
    assert changed_since(recorded, fingerprint(sdir)) is None
    assert changed_since(None, {}) is None  # an analysis that recorded nothing: not judged

    sim = sdir / "sim_history.jsonl"
    whole = sim.read_bytes()
    sim.write_bytes(whole[: len(whole) // 2])  # cut
    assert changed_since(recorded, fingerprint(sdir)) == (
        f"sim_history.jsonl was {len(whole):,} bytes, is {len(whole) // 2:,} bytes")
    sim.write_bytes(whole)
    toml = sdir / "scenario.toml"
    text = toml.read_text()
    toml.write_text(text.replace("a", "b", 1))  # same size, other thresholds say
    assert changed_since(recorded, fingerprint(sdir)) == "scenario.toml has other contents"
    toml.write_text(text)
    (sdir / "detections.jsonl").unlink()
    assert "detections.jsonl is gone" in (changed_since(recorded, fingerprint(sdir)) or "")
    os.mkfifo(sdir / "detections.jsonl")  # never opened: a read would block
    assert fingerprint(sdir)["detections.jsonl"] == {"bytes": 0, "regular": False}
    assert "detections.jsonl was" in (changed_since(recorded, fingerprint(sdir)) or "")


def test_the_analysis_records_its_inputs_and_refuses_files_that_change_under_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sdir = _scenario(tmp_path)
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "ok"
    assert summary["inputs"] == fingerprint(sdir)

    real = analysis.run_checker

    def checker_while_a_run_writes(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        with (sdir / "detections.jsonl").open("a") as fh:  # the run is still writing
            fh.write("\n")
        return out

    monkeypatch.setattr(analysis, "run_checker", checker_while_a_run_writes)
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "inconclusive"
    assert "changed while they were analysed (detections.jsonl was" in summary["error"]


def test_a_report_of_files_changed_since_their_analysis_is_inconclusive(
        tmp_path: Path) -> None:
    """``reports build`` takes the stored analysis as written. A history cut (or a
    scenario.toml edited) after it was analysed left the report showing the old results
    as if the files still said so; now the scenario is a data problem, naming the file."""
    from experiments.store import write_manifest, write_run_summary
    from reports.criteria import load_criteria
    from reports.load import load_run
    from reports.verdict import Verdict, evaluate

    run_dir = create_run(tmp_path / "results", "r1")
    sdir = make_scenario_dir(run_dir, "one")
    write_manifest(run_dir, scenarios=[], command=[], started="", quick=False, jobs=1)
    write_run_summary(run_dir, [analyze_scenario_dir(sdir)])
    assert not load_run(run_dir).scenarios[0].problems

    sim = sdir / "sim_history.jsonl"
    whole = sim.read_bytes()
    sim.write_bytes(whole[: len(whole) // 2])
    run = load_run(run_dir)
    assert any("its files changed after they were analysed (sim_history.jsonl was "
               f"{len(whole):,} bytes" in p and "experiments analyze" in p
               for p in run.scenarios[0].problems), run.scenarios[0].problems
    result = evaluate(run, load_criteria())
    assert result.verdict is Verdict.INCONCLUSIVE
    assert any("changed after they were analysed" in r for r in result.reasons), result.reasons
