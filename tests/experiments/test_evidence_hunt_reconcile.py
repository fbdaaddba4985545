"""Evidence hunt: a pilot whose clock was proven behind the chain's has no latency to
show. Its summary said so (latency, detected and late not measured), but outcomes.parquet
kept every trade's latency, clamped to 0 s: the report drew them in its latency figure
and listed its "slowest" trades by them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from test_reconcile_hunt import S, chain_log, make_store, node, opts, sight, ts

from experiments.reconcile import reconcile
from reports import figures
from reports.load import load_run
from reports.render import _worst_trades

__all__ = ["node"]  # the fixture, used by name


def test_a_clock_behind_the_chain_leaves_no_latency_in_the_outcomes(node, tmp_path: Path):
    state, url = node
    wall0 = ts(99) * S
    trades = [chain_log(n, tx=n) for n in (110, 120, 130)]
    state.head, state.logs = 200, trades
    store = make_store(tmp_path, start=100, head=150, wall0=wall0)
    for lg in trades:
        n = int(lg["blockNumber"], 16)
        for p, after in (("websocket", S // 2), ("polling", 8 * S)):
            wall = ts(n) * S + after - 10 * S  # this machine's clock 10 s behind
            sight(store, p, "trade", lg, wall_ns=wall, mono_ns=wall - wall0)
    run_dir = reconcile(store, opts(url, tmp_path / "out"), log=lambda _m: None)
    for p in ("websocket", "polling"):
        out = pd.read_parquet(run_dir / f"pilot_{p}" / "outcomes.parquet")
        assert len(out) == 3 and out["latency_s"].isna().all(), out["latency_s"].tolist()
    run = load_run(run_dir)
    assert _worst_trades(run)["latest"] == []
    fig = figures.latency_ecdf(run)
    assert not any(ax.get_legend() for ax in fig.axes)  # "no delivered trades with a latency"
