"""The monitor's API calls the checker only counts are counted as the history is read, not
kept (experiments.checker.CountedRows): the measures are those of every row, and a week's
~300,000 rpc_http rows no longer sit in the analysis's memory."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from experiments.analysis import _read_monitor_rows
from experiments.checker import CheckerError, CheckParams, CountedRows, monitor_metrics

_NS = 1_000_000_000
WINDOW = (100 * _NS, 900 * _NS)
PARAMS = CheckParams(speed=1.0, window_start_ns=WINDOW[0], window_end_ns=WINDOW[1],
                     wallets=("0xa", "0xb"))


def _history(seed: int, *, first_call: bool, last_call: bool) -> list[dict[str, Any]]:
    """A monitor history: API calls of every kind (some outside the window), feed,
    fallback and state changes, a start and a stop; optionally opening or ending with an
    rpc_http call."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    if first_call:
        rows.append({"t_ns": 0, "event": "api_call", "kind": "rpc_http", "method": "x",
                     "ok": True})
    rows.append({"t_ns": 1, "event": "start", "settings": {}})
    rows.append({"t_ns": 2, "event": "subscription_mode", "connections": 2})
    t = 3
    for _ in range(400):
        t += rng.randrange(1, 3 * _NS)
        pick = rng.random()
        if pick < 0.6:
            kind = rng.choice(["rpc_http", "rpc_ws", "explorer", 7])
            rows.append({"t_ns": t, "event": "api_call", "kind": kind, "method": "m",
                         "ok": rng.random() < 0.7})
        elif pick < 0.75:
            rows.append({"t_ns": t, "event": "feed", "healthy": rng.random() < 0.6,
                         "conn": rng.choice(["ws0", "ws1"])})
        elif pick < 0.9:
            rows.append({"t_ns": t, "event": "fallback", "active": rng.random() < 0.5,
                         "cause": rng.choice(["ws0: stale heads", "ws1: closed"])})
        else:
            rows.append({"t_ns": t, "event": "state", "conn": "ws0",
                         "to": rng.choice(["CONNECTED", "RECONNECTING"])})
    if last_call:
        rows.append({"t_ns": t + 5, "event": "stop", "cpu_s": 1.5})
        rows.append({"t_ns": t + 6, "event": "api_call", "kind": "rpc_http", "ok": False})
    else:
        rows.append({"t_ns": t + 5, "event": "stop", "cpu_s": 1.5})
    return rows


def _counted(rows: list[dict[str, Any]], window: tuple[int, int] = WINDOW) -> CountedRows:
    counted = CountedRows(window)
    for row in rows:
        counted.add(row)
    return counted.close()


@pytest.mark.parametrize("first_call", [False, True])
@pytest.mark.parametrize("last_call", [False, True])
@pytest.mark.parametrize("mode", ["websocket", "polling"])
def test_the_measures_of_the_counted_rows_are_those_of_every_row(
        first_call: bool, last_call: bool, mode: str) -> None:
    for seed in range(5):
        rows = _history(seed, first_call=first_call, last_call=last_call)
        params = CheckParams(speed=1.0, window_start_ns=WINDOW[0], window_end_ns=WINDOW[1],
                             wallets=("0xa",), mode=mode)
        counted = _counted(rows)
        assert monitor_metrics(counted, params) == monitor_metrics(rows, params)
        assert counted[0] is rows[0] and counted[-1] is rows[-1]


def test_only_the_explorer_calls_are_kept() -> None:
    rows = _history(1, first_call=False, last_call=False)
    counted = _counted(rows)
    calls = [r for r in counted if r["event"] == "api_call"]
    assert calls and all(r["kind"] == "explorer" for r in calls)
    assert [r for r in rows if r["event"] != "api_call" or r["kind"] == "explorer"] == counted


def test_rows_counted_for_another_window_are_refused() -> None:
    counted = _counted(_history(2, first_call=False, last_call=False), (0, 5 * _NS))
    with pytest.raises(CheckerError, match="another window"):
        monitor_metrics(counted, PARAMS)


def test_the_analysis_reads_the_monitor_history_counted(tmp_path: Path) -> None:
    """The analysis's read keeps what the checker reads and counts the rest (before: every
    row was kept, and the function took no window)."""
    rows = _history(3, first_call=True, last_call=True)
    path = tmp_path / "monitor_history.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    kept, counts = _read_monitor_rows(path, WINDOW)
    assert isinstance(kept, CountedRows)
    assert sum(1 for r in kept if r["event"] == "api_call" and r["kind"] != "explorer") == 2
    assert monitor_metrics(kept, PARAMS) == monitor_metrics(rows, PARAMS)
    assert counts["restarts"] == 0
