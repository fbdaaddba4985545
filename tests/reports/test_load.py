"""Reading a run store: what the report and the notebook are given."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from reports.load import all_outcomes, load_run


def test_a_first_block_due_at_time_zero_still_places_trades_in_time(
        make_run: Callable[..., Path]) -> None:
    """Every virtual-time run starts its clock at 0: ``if t0`` took 0 for unknown, and the
    report's "at (s)" column and the notebook's per-minute tables came out empty."""
    run = make_run()
    path = run / "ws_drop" / "sim_history.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    shift = rows[0]["t0_ns"]
    for row in rows:
        row["t_ns"] -= shift
        if row["event"] == "start":
            row["t0_ns"] = 0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sc = load_run(run).scenario("ws_drop")
    assert sc.t0_ns == 0
    frame = all_outcomes(load_run(run))
    ws_drop = frame[frame["scenario"] == "ws_drop"]
    assert ws_drop["t_s"].notna().all() and (ws_drop["t_s"] > 0).all()
