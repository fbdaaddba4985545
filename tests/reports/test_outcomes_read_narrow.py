"""``outcomes.parquet`` is read a batch of rows at a time, only the columns the report
reads kept, the few-valued texts as categories: ``reports build`` held every column of
a simulated day's table as strings (its peak RSS 272 MB, 240 MB after). The nanosecond
times stay exact (Int64: a float64 rounds them above 2**53), a problem in a later batch
is found as in the first, and ``all_outcomes`` gives the texts back as they were read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from experiments.checker import OUTCOME_COLUMNS
from reports import load
from reports.load import OUTCOMES_KEPT, all_outcomes, load_run

BIG_NS = 2**53 + 1  # the first integer a float64 cannot hold
SCENARIO = "ws_healthy"


def _table(n: int) -> pd.DataFrame:
    rows = [{"trade_id": f"0x{i:064x}", "wallet": f"0x{i % 3:040x}",
             "block_number": 2**40 + i, "visible_t_ns": BIG_NS + 2 * i,
             "delivered_t_ns": BIG_NS + 2 * i + 1, "latency_s": 1e-9,
             "outcome": "detected" if i % 2 else "late", "deliveries": 1, "source": "ws",
             "in_fault": False, "fault": None if i % 4 else "ws_drop"} for i in range(n)]
    return pd.DataFrame(rows, columns=OUTCOME_COLUMNS).astype({
        "trade_id": "string", "wallet": "string", "block_number": "Int64",
        "visible_t_ns": "Int64", "delivered_t_ns": "Int64", "latency_s": "Float64",
        "outcome": "string", "source": "string", "fault": "string"})


@pytest.mark.parametrize("batch_rows", [3, 65_536])
def test_nanoseconds_past_2_53_stay_exact(tmp_path: Path, batch_rows: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "OUTCOME_BATCH_ROWS", batch_rows)
    path = tmp_path / "outcomes.parquet"
    _table(10).to_parquet(path)
    problems: list[str] = []
    df = load._read_outcomes(path, problems)
    assert problems == [] and df is not None
    assert list(df.columns) == [c for c in OUTCOMES_KEPT if c != "seed"]
    assert str(df["visible_t_ns"].dtype) == "Int64"
    assert df["visible_t_ns"].tolist() == [BIG_NS + 2 * i for i in range(10)]
    assert int(df["visible_t_ns"].min()) == BIG_NS
    assert df["block_number"].tolist() == [2**40 + i for i in range(10)]
    # few-valued texts as categories, the same categories whatever the batches
    for c in ("wallet", "outcome", "source", "fault"):
        assert isinstance(df[c].dtype, pd.CategoricalDtype)
    assert list(df["wallet"].cat.categories) == [f"0x{i:040x}" for i in range(3)]
    assert df["outcome"].tolist() == ["late", "detected"] * 5
    assert df["fault"].isna().sum() == 7
    assert df["trade_id"].tolist() == [f"0x{i:064x}" for i in range(10)]


def test_a_damaged_value_in_a_later_batch_is_found(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "OUTCOME_BATCH_ROWS", 4)
    path = tmp_path / "outcomes.parquet"
    table = _table(10)
    table.loc[9, "latency_s"] = -2.0
    table.to_parquet(path)
    problems: list[str] = []
    assert load._read_outcomes(path, problems) is not None
    assert problems == ["outcomes.parquet holds 1 negative latencies"]
    table.loc[8, "delivered_t_ns"] = pd.NA
    table = table.astype({"delivered_t_ns": "Float64"})
    table.loc[9, "delivered_t_ns"] = float("inf")
    table.to_parquet(path)
    problems = []
    assert load._read_outcomes(path, problems) is None
    assert problems == ["outcomes.parquet holds numbers that are not finite in "
                        "delivered_t_ns"]


def test_the_run_keeps_exact_times_and_all_outcomes_gives_texts(run_dir: Path) -> None:
    path = run_dir / SCENARIO / "outcomes.parquet"
    table = pd.read_parquet(path)
    table["visible_t_ns"] = table["visible_t_ns"] + BIG_NS
    table.to_parquet(path)
    sc = load_run(run_dir).scenario(SCENARIO)
    assert sc.outcomes is not None and "deliveries" not in sc.outcomes.columns
    assert sc.outcomes["visible_t_ns"].tolist() == table["visible_t_ns"].tolist()
    frame = all_outcomes(load_run(run_dir))
    rows = frame[frame["scenario"] == SCENARIO]
    assert rows["visible_t_ns"].tolist() == table["visible_t_ns"].tolist()
    for c in ("wallet", "outcome", "source", "fault"):  # the texts as the table gives them
        pd.testing.assert_series_equal(rows[c].reset_index(drop=True), table[c])
