"""The latency budget: per-trade stages from the two histories, their quantiles and shares,
and the harness's own costs as separate lines. Pure: rows in, numbers out."""

from __future__ import annotations

from typing import Any

import pytest

from experiments.latency_budget import (
    STAGES,
    TradeStages,
    budget,
    overheads,
    quantile,
    trade_stages,
)

MS = 1_000_000


def published(h: str, t_ns: int, fanout_ns: int) -> dict[str, Any]:
    return {"event": "block_published", "t_ns": t_ns, "hash": h, "number": 1,
            "fanout_ns": fanout_ns}


def detection(h: str, recv_ns: int, offsets: list[int], tid: str = "0xa:0",
              source: str = "ws") -> dict[str, Any]:
    stages = dict(zip(("parse", "queue", "decode", "dedup", "persist", "deliver"), offsets,
                      strict=True))
    return {"t_ns": recv_ns + offsets[-1], "kind": "trade", "source": source,
            "trade": {"id": tid, "block_hash": h}, "stages": {"recv_ns": recv_ns, **stages}}


def test_a_trade_splits_into_stages_that_sum_to_its_latency() -> None:
    # 0: published; 0.2 ms: fanned out; 0.5 ms: frame received; then the monitor's steps
    sim = [published("0xB", 1_000_000_000, 200_000)]
    det = [detection("0xb", 1_000_500_000, [10, 30, 50, 60, 400_060, 500_000])]
    (t,) = trade_stages(sim, det)
    assert dict(zip(STAGES, t.stages, strict=True)) == {
        "serialise": 200_000, "socket": 300_000, "parse": 10, "queue": 20, "decode": 20,
        "dedup": 10, "persist": 400_000, "deliver": 99_940}
    assert sum(t.stages) == t.e2e_ns == 1_000_000


def test_rows_without_stamps_or_an_unknown_block_are_left_out() -> None:
    sim = [published("0xb", 0, 1)]
    no_stamps = {"t_ns": 5, "kind": "trade", "source": "backfill",
                 "trade": {"id": "0xc:0", "block_hash": "0xb"}}
    other_block = detection("0xdead", 10, [1, 2, 3, 4, 5, 6])
    retraction = {"t_ns": 9, "kind": "retraction", "trade_id": "0xa:0", "block_hash": "0xb"}
    old_sim_row = {"event": "block_published", "t_ns": 0, "hash": "0xdead", "number": 2}
    assert trade_stages([*sim, old_sim_row], [no_stamps, other_block, retraction]) == []
    assert budget([]) is None


def test_shares_describe_the_typical_trade_and_the_tail() -> None:
    # 99 trades of 1 ms spent in socket, one of 30 ms spent in persist
    trades = [TradeStages(f"t{i}", MS, (0, MS, 0, 0, 0, 0, 0, 0)) for i in range(99)]
    trades.append(TradeStages("slow", 30 * MS, (0, MS, 0, 0, 0, 0, 29 * MS, 0)))
    b = budget(trades)
    assert b is not None and b["trades"] == 100
    assert b["e2e_p50_ms"] == 1.0 and b["e2e_p99_ms"] == 30.0
    rows = {r["stage"]: r for r in b["stages"]}
    assert rows["socket"]["share_p50"] == 1.0 and rows["persist"]["share_p50"] == 0.0
    assert rows["persist"]["share_p99"] == pytest.approx(29 / 30)
    assert rows["persist"]["p50_ms"] == 0.0 and rows["persist"]["p99_ms"] == 29.0
    for key in ("share_p50", "share_p99"):
        assert sum(r[key] for r in b["stages"]) == pytest.approx(1.0)


def test_quantile_is_nearest_rank() -> None:
    xs = list(range(100))
    assert (quantile(xs, 0.5), quantile(xs, 0.99), quantile([7], 0.99)) == (50, 99, 7)


def test_the_harness_costs_are_lines_of_their_own() -> None:
    sim = [{"event": "stop", "history_write_ns": {"blocks": 10, "p50": 150_000,
                                                  "p99": 900_000, "max": 1_000_000}}]
    mon = [{"event": "stop", "metrics": {"pipeline": {"history_writes": 4,
                                                      "history_write_ns": 200_000}}}]
    res = {"runner_cpu_s": 0.6, "runner_wall_s": 60.0, "sample_interval_s": 0.25}
    lines = overheads(sim, mon, res)
    assert [x["name"].split(" ")[0] for x in lines] == ["simulator", "monitor", "runner"]
    assert (lines[0]["p50_ms"], lines[0]["p99_ms"]) == (0.15, 0.9)
    assert lines[1]["p50_ms"] == 0.05
    assert "1.0% of a core" in lines[2]["note"]
    assert overheads([], [], None) == []
