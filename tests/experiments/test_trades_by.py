"""experiments.analysis.trades_by counts trades as the summary does (the notebook's tables)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from experiments.analysis import trades_by
from experiments.checker import OUTCOME_COLUMNS, outcome_counts

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "analysis.ipynb"


def _row(i: int, wallet: str, outcome: str, latency: float | None,
         fault: str | None = None) -> dict[str, object]:
    return {"trade_id": f"0x{i:064x}:0", "wallet": wallet, "block_number": 100 + i,
            "visible_t_ns": 1, "delivered_t_ns": None if latency is None else 2,
            "latency_s": latency, "outcome": outcome, "deliveries": 0 if latency is None else 1,
            "source": "ws", "in_fault": fault is not None, "fault": fault}


def _outcomes() -> pd.DataFrame:
    rows = [_row(i, "0xa", "detected", 1.0 + i) for i in range(10)]
    rows += [_row(10, "0xa", "missed", None), _row(11, "0xa", "late", 40.0, "ws_drop")]
    # a wallet whose only deliveries are a phantom and a retraction (reorged away): it
    # made no trade, and their latencies (600 s) belong to no quantile
    rows += [_row(12, "0xb", "phantom", 600.0, "reorg"), _row(13, "0xb", "retracted", 600.0)]
    rows += [_row(14, "0xa", "phantom", 900.0), _row(15, "0xa", "duplicate", 2.0)]
    frame = pd.DataFrame(rows)
    assert list(frame.columns) == OUTCOME_COLUMNS
    return frame


def test_trades_by_counts_and_quantiles_as_the_summary() -> None:
    outcomes = _outcomes()
    table = trades_by(outcomes.assign(run="r"), "run")
    summary = outcome_counts(outcomes)
    row = table.loc["r"]
    for key in ("trades", "detected", "late", "missed", "duplicates", "phantoms", "retracted"):
        assert row[key] == summary[key], key
    assert row["latency_p95_s"] == summary["latency_p95_s"]
    assert row["latency_p50_s"] == summary["latency_p50_s"]
    assert row["latency_max_s"] == summary["latency_max_s"] == 40.0  # not the phantom's 900


def test_a_wallet_with_only_phantoms_has_no_trades_and_no_latency() -> None:
    table = trades_by(_outcomes(), ["wallet"])
    b = table.loc["0xb"]
    assert (b["trades"], b["phantoms"], b["retracted"]) == (0, 1, 1)
    assert pd.isna(b["latency_p95_s"])
    assert table.loc["0xa", "trades"] == 13


def test_by_fault_keeps_trades_outside_faults() -> None:
    frame = _outcomes()
    frame["fault_kind"] = frame["fault"].fillna("none")
    table = trades_by(frame, ["fault_kind"])
    assert table.loc["none", "trades"] == 12 and table.loc["ws_drop", "trades"] == 1
    assert table.loc["reorg", "trades"] == 0 and table.loc["reorg", "phantoms"] == 1


def test_the_notebook_tables_use_trades_by() -> None:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "trades_by(trades, [\"scenario\", \"wallet\"])" in code
    assert "trades_by(trades, [\"mode\", \"fault_kind\"])" in code
    assert "\"trade_id\", \"size\"" not in code  # every row counted as a trade
