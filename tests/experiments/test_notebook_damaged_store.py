"""The notebook's loading code (experiments.analysis.outcomes_table beside
reports.load.all_outcomes) on a run store with a damaged outcomes table: the table is left
out, as load_run leaves it out (and names it among the scenario's problems), instead of a
pyarrow traceback or the notebook's own check of the two tables failing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from experiments.analysis import outcomes_table
from experiments.checker import OUTCOME_COLUMNS
from reports.load import all_outcomes, load_run


def _good(n: int) -> pd.DataFrame:
    return pd.DataFrame([{
        "trade_id": f"0x{i:064x}:0", "wallet": "0xa", "block_number": 100 + i,
        "visible_t_ns": 1, "delivered_t_ns": 2, "latency_s": 1.0, "outcome": "detected",
        "deliveries": 1, "source": "ws", "in_fault": False, "fault": None}
        for i in range(n)], columns=OUTCOME_COLUMNS)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "no_latency_column", "empty"])
def test_a_damaged_outcomes_table_is_left_out_as_load_run_leaves_it_out(
        tmp_path: Path, damage: str) -> None:
    (tmp_path / "good").mkdir()
    _good(3).to_parquet(tmp_path / "good" / "outcomes.parquet")
    bad = tmp_path / "bad"
    bad.mkdir()
    path = bad / "outcomes.parquet"
    if damage == "garbage":
        path.write_bytes(b"PAR1" + b"\x00\xff" * 500)
    elif damage == "truncated":
        _good(5).to_parquet(path)
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "no_latency_column":
        _good(5).drop(columns=["latency_s"]).to_parquet(path)
    else:
        path.write_bytes(b"")

    raw = outcomes_table(tmp_path)  # was: ArrowInvalid / a table without latency_s

    assert list(raw["scenario"].unique()) == ["good"]
    assert list(raw.columns) == ["scenario", *OUTCOME_COLUMNS]
    run = load_run(tmp_path)
    assert len(all_outcomes(run)) == len(raw)  # the notebook's check of the two
    assert any("outcomes.parquet" in p for p in run.scenario("bad").problems)
