"""A scenario pooled over seeds (``run --seeds N``) whose seed folders were damaged after
the analysis: the pooled numbers stand on seeds/<s>/, of which only the first seed's files
are copied beside the pooled summary. Before, a later seed's folder deleted, its summary
gone or its detections cut left the report's scenario usable (a GO could stand on it),
where the same damage to a scenario of one seed is a data problem."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w

from reports.load import load_run
from tests.cli_checks import copy_of_run, run_module


@pytest.fixture(scope="module")
def pooled_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run --seeds 2 --clock virtual`` of a 40-block chain, both seeds ok."""
    tmp = tmp_path_factory.mktemp("pooled")
    path = tmp / "tiny.toml"
    path.write_bytes(tomli_w.dumps({
        "name": "tiny", "profile": "default", "seed": 3, "blocks": 40,
        "sim_duration_s": 30, "grace_s": 5, "speed": 1, "wallets": {"count": 20}}).encode())
    res = run_module("experiments", "run", str(path), "--seeds", "2", "--clock", "virtual",
                     "--no-progress", "--out", str(tmp / "out"))
    assert res.returncode == 0, res.stderr
    return (tmp / "out" / "latest").resolve()


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "seed_folder_gone": (lambda s: shutil.rmtree(s / "seeds" / "2"), "seeds/2/ is missing"),
    "every_seed_gone": (lambda s: shutil.rmtree(s / "seeds"), "seeds/1/ is missing"),
    "seed_summary_gone": (lambda s: (s / "seeds" / "2" / "summary.json").unlink(),
                          "seeds/2/summary.json is missing"),
    "seed_summary_garbage": (lambda s: (s / "seeds" / "2" / "summary.json").write_text("{"),
                             "seeds/2/summary.json could not be read"),
    "seed_detections_cut": (lambda s: _cut(s / "seeds" / "2" / "detections.jsonl"),
                            "seed 2's files changed after they were analysed "
                            "(detections.jsonl was"),
    "seed_run_json_gone": (lambda s: (s / "seeds" / "2" / "run.json").unlink(),
                           "seed 2's files changed after they were analysed (run.json is "
                           "gone)"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_seed_of_a_pool_is_a_data_problem(pooled_run: Path, tmp_path: Path,
                                                     damage: str) -> None:
    run_dir = copy_of_run(pooled_run, tmp_path)
    assert load_run(run_dir).scenario("tiny").problems == ()  # intact: nothing said
    do, said = DAMAGE[damage]
    do(run_dir / "tiny")
    problems = load_run(run_dir).scenario("tiny").problems
    assert any(said in p for p in problems), problems


def test_the_report_of_a_pool_with_a_seed_gone_is_inconclusive_naming_it(
        pooled_run: Path, tmp_path: Path) -> None:
    run_dir = copy_of_run(pooled_run, tmp_path)
    shutil.rmtree(run_dir / "tiny" / "seeds" / "2")
    res = run_module("reports", "build", str(run_dir), "--exit-code")
    assert res.returncode == 4, res.stdout + res.stderr
    assert "Scenario tiny has no usable results: data problem: seeds/2/ is missing" \
        in res.stdout


def test_analyze_names_the_failed_seed_once(pooled_run: Path, tmp_path: Path) -> None:
    """Before: 'tiny: seed 2: 2: analysis failed: ...; its earlier results are kept; its
    earlier results are kept' (the seed's folder name and the ending twice)."""
    run_dir = copy_of_run(pooled_run, tmp_path)
    _cut(run_dir / "tiny" / "seeds" / "2" / "sim_history.jsonl")
    res = run_module("experiments", "analyze", str(run_dir))
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    line = next(x for x in res.stderr.splitlines() if x.startswith("error: tiny:"))
    assert line.startswith("error: tiny: seed 2: analysis failed: "), line
    assert line.count("its earlier results are kept") == 1, line
    # and the report on what analyze kept says the seed's files changed
    assert any("seed 2's files changed" in p
               for p in load_run(run_dir).scenario("tiny").problems)
