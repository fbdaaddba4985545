"""A live monitor's history is large (a week of per-call rows: 2 GB of small JSON lines):
the report reads it as a stream and holds only what its sections read, so its memory is
that of the rows it keeps, not of the file."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_run

import reports.load as load_mod
from reports.load import load_run
from reports.reliability import reliability_rows

#: rows appended: ~8 MB of history, held whole ~60 MB as dicts and a frame
ROWS = 40_000


def _append_many(path: Path) -> None:
    api = json.dumps({"t_ns": 1, "event": "api_call", "kind": "rpc_http",
                      "method": "eth_getLogs", "ok": True, "elapsed_s": 0.01}) + "\n"
    bad = json.dumps({"t_ns": 2, "event": "bad_input", "kind": "ws_not_json",
                      "detail": "x" * 40}) + "\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write((api + bad) * (ROWS // 2))


def test_a_large_history_is_read_as_a_stream(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    run = build_run(tmp_path)
    _append_many(run / "ws_drop" / "monitor_history.jsonl")
    peaks: dict[str, int] = {}
    read = load_mod._read_history

    def measured(path: Path, *args: Any, **kwargs: Any) -> Any:
        tracemalloc.reset_peak()  # the summary's read buffer went before
        base = tracemalloc.get_traced_memory()[0]
        try:
            return read(path, *args, **kwargs)
        finally:
            peaks[f"{path.parent.name}/{path.name}"] = tracemalloc.get_traced_memory()[1] - base

    monkeypatch.setattr(load_mod, "_read_history", measured)
    tracemalloc.start()
    try:
        loaded = load_run(run)
    finally:
        tracemalloc.stop()
    more = peaks["ws_drop/monitor_history.jsonl"]
    assert more < 5_000_000, f"{more / 1e6:.0f} MB to read an 8-MB history"
    sc = loaded.scenario("ws_drop")
    assert sc.monitor_history is not None and len(sc.monitor_history) < 100
    # the rows are counted as they pass: the reliability section says every one
    row = {r.scenario: r for r in reliability_rows(loaded)}["ws_drop"]
    assert sc.reliability is None  # the fixture's store: counted from the histories
    assert row.rejected.get("ws_not_json") == ROWS // 2


def test_every_event_is_there_for_exploring(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    path = run / "ws_drop" / "monitor_history.jsonl"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"t_ns": 1, "event": "api_call", "method": "eth_getLogs"}) + "\n")
    sc = load_run(run, every_event=True).scenario("ws_drop")
    assert sc.monitor_history is not None
    assert "api_call" in set(sc.monitor_history["event"])
    assert "api_call" not in set(load_run(run).scenario("ws_drop").monitor_history["event"])


def test_the_outcomes_are_read_by_the_columns_the_report_reads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A column of outcomes.parquet no section reads (a raw answer kept per trade: 20 MB
    here) was read whole with the rest."""
    import pandas as pd

    run = build_run(tmp_path)
    path = run / "ws_drop" / "outcomes.parquet"
    df = pd.read_parquet(path)
    rows = pd.concat([df] * (20_000 // len(df) + 1), ignore_index=True).iloc[:20_000]
    rows = rows.assign(trade_id=[f"0x{i:064x}:0" for i in range(len(rows))],
                       raw=[f"{i:08d}" + "x" * 1000 for i in range(len(rows))])
    rows.to_parquet(path, index=False)
    peaks: dict[str, int] = {}
    read = load_mod._read_outcomes

    def measured(path: Path, *args: Any, **kwargs: Any) -> Any:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            return read(path, *args, **kwargs)
        finally:
            peaks[path.parent.name] = tracemalloc.get_traced_memory()[1] - base

    monkeypatch.setattr(load_mod, "_read_outcomes", measured)
    tracemalloc.start()
    try:
        sc = load_run(run).scenario("ws_drop")
    finally:
        tracemalloc.stop()
    assert sc.outcomes is not None and "raw" not in sc.outcomes.columns
    assert len(sc.outcomes) == 20_000
    assert peaks["ws_drop"] < 12_000_000, f"{peaks['ws_drop'] / 1e6:.0f} MB"
