"""A scenario pooled over seeds whose seed's own outcomes.parquet (the table the pool read
that seed's rows from) was deleted, replaced or cut after the pool: a named data problem
(INCONCLUSIVE), not a pooled result standing on a seed nothing holds any more."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from exp_helpers import make_scenario_dir

from experiments.analysis import analyze_scenario_dir
from experiments.scenario import load_scenario
from experiments.seeds import pool
from reports.criteria import load_criteria
from reports.load import load_run
from reports.verdict import Verdict, evaluate

SEEDS = (1, 2)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pooled_gone")
    run = tmp / "run"
    summaries = []
    for seed in SEEDS:
        staged = make_scenario_dir(tmp / f"stage{seed}", "hand_made")
        target = run / "hand_made" / "seeds" / str(seed)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, target)
        summaries.append(analyze_scenario_dir(target))
    sdir = run / "hand_made"
    out = pool(load_scenario(sdir / "seeds" / "1" / "scenario.toml"), sdir, list(SEEDS),
               summaries)
    assert out["status"] == "ok", out["error"]
    (run / "manifest.json").write_text(json.dumps({"run_id": "run"}))
    assert load_run(run).scenario("hand_made").ok
    return run


def _copy(pooled: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pooled, tmp_path / "run"))


def test_a_seeds_table_deleted_is_a_named_problem(pooled: Path, tmp_path: Path) -> None:
    run = _copy(pooled, tmp_path)
    (run / "hand_made" / "seeds" / "2" / "outcomes.parquet").unlink()
    loaded = load_run(run)
    problems = loaded.scenario("hand_made").problems
    assert "seeds/2/outcomes.parquet is missing: the results pooled from it cannot be " \
        "checked" in problems, problems
    assert evaluate(loaded, load_criteria()).verdict is Verdict.INCONCLUSIVE


def test_a_seeds_table_that_is_no_table_is_a_named_problem(pooled: Path,
                                                            tmp_path: Path) -> None:
    run = _copy(pooled, tmp_path)
    (run / "hand_made" / "seeds" / "1" / "outcomes.parquet").write_bytes(b"not parquet")
    problems = load_run(run).scenario("hand_made").problems
    assert any(p.startswith("seeds/1/outcomes.parquet could not be read") for p in problems), \
        problems


def test_a_seeds_table_cut_is_a_named_problem(pooled: Path, tmp_path: Path) -> None:
    run = _copy(pooled, tmp_path)
    path = run / "hand_made" / "seeds" / "2" / "outcomes.parquet"
    df = pd.read_parquet(path)
    df.iloc[:1].to_parquet(path, index=False)
    problems = load_run(run).scenario("hand_made").problems
    assert f"seeds/2/outcomes.parquet holds 1 row, the pooled outcomes.parquet {len(df):,} " \
        "of seed 2" in problems, problems
