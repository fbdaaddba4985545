"""``reconcile_interval = 0``: the heads move the cursor over blocks no eth_getLogs
fetched yet, and a sweep from ``_swept_to`` fetches them. The node's sweeps failing for
longer than ``dedup_retention_blocks`` while the feed stayed healthy, the pipeline's
prune dropped the dedup rows of the trades the feed delivered in the first of those
blocks: a sweep there would send them to the bot again, so they were left unswept
(585e05c, alert ``zero_mode_unswept``) and a trade the feed lost there was lost. The
prune now keeps the rows from the lowest block a sweep is still to read
(``WsShard.sweep_floor``, ``Pipeline.prune_hold``), down to the cursor less
``ZERO_MODE_HOLD_BLOCKS`` (the table bounded): the late sweep - the node's once it
answers, or the explorer's in a quota fill - delivers the lost trade, and no other
twice. Failing for longer than that, the blocks below are left unswept as before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode, explorer_from_logs, fail_get_logs, spend_quota
from monitor_helpers import order_filled
from test_reliability import (
    cursor_at_least,
    first_sync,
    history_rows,
    run_monitor,
    trade_ids,
    until,
)
from test_zero_mode_fill_swept import node_calls_once_the_quota_is_back

from monitor import config, wallet_monitor
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

KEEP = 100  # dedup_retention_blocks (the floor of 1024 lowered for a short test)


def _sweeps_fail_then(tmp_path: Path, then: str) -> dict[str, Any]:
    """First sync at 100; the node's eth_getLogs fail while heads go to 260 (the feed
    delivers block 105's and 107's trades live, and loses block 110's); the pipeline's
    prune runs; then the node answers again (``node_back``) or its quota is spent and
    the explorer fills (``quota_fill``, then the quota back)."""
    spent, broken = {"on": False}, {"on": False}
    out: dict[str, Any] = {}

    async def go() -> None:
        async with HostileNode() as node:
            asked: list[tuple[int, int]] = []
            spend_quota(node, spent, asked=asked)
            explorer_from_logs(node)
            fail_get_logs(node, broken)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                broken["on"] = True  # the node's sweeps fail from here
                live = order_filled(block=105, tx=5)
                newer = order_filled(block=107, tx=6)  # (105's id out of memory)
                lost = order_filled(block=110, tx=7)  # never notified: the feed lost it
                node.logs.extend([live, newer, lost])
                for n in range(101, 261):
                    node.head = n
                    await node.new_head(n)
                    if n == 106:
                        await node.notify("logs", live)
                        await until(lambda: len(sink.events) == 1, "the live trade")
                    if n == 108:
                        await node.notify("logs", newer)
                        await until(lambda: len(sink.events) == 2, "the newer trade")
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
                out["swept"] = shard._swept_to  # (every sweep failed)
                assert mon.pipeline is not None
                hold = mon.pipeline.prune_hold
                out["hold"] = None if hold is None else hold()
                mon.pipeline._next_dedup_prune_ns = 0  # the pipeline's periodic prune
                await mon.pipeline.redeliver()
                out["pruned"] = mon.pipeline.counters["dedup_pruned"]
                broken["on"] = False
                if then == "quota_fill":
                    spent["on"] = True
                    await until(lambda: shard._poller is not None, "the quota fill")
                    await until(lambda: (shard._swept_to or 0) >= 250,
                                "the explorer read what the heads passed")
                    await node_calls_once_the_quota_is_back(
                        node, mon, spent, asked, range(261, 265))
                else:
                    # (its last chunk done: _sweep_due is cleared as it starts)
                    await until(lambda: (shard._swept_to or 0) >= 250 and
                                not shard._sweep_due and shard._unswept is None,
                                "the node's sweep")
                out["ids"] = trade_ids(sink)
                out["delivered"] = mon.pipeline.counters["delivered"]
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=1, head_jump_slack=1000,
                              backfill_chunk_blocks=50, dedup_retention_blocks=KEEP,
                              dedup_capacity=1)
    asyncio.run(go())
    out["alerts"] = [r for r in history_rows(tmp_path, "alert")
                     if r.get("kind") == "zero_mode_unswept"]
    return out


@pytest.mark.slow  # (~3 s: 160 heads)
@pytest.mark.parametrize("then", ["node_back", "quota_fill"])
def test_a_late_sweep_delivers_the_lost_trade_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then: str) -> None:
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    out = _sweeps_fail_then(tmp_path, then)
    assert len(out["ids"]) == 3, out["ids"]  # block 110's trade, lost live, delivered
    assert out["delivered"] == 3, out  # neither live trade sent to the bot twice
    assert out["alerts"] == [], out["alerts"]  # nothing left unswept
    assert out["pruned"] == 0, out  # 105's and 107's rows kept (below 259 - KEEP)
    assert out["swept"] < 105 and out["hold"] == out["swept"] + 1, out


@pytest.mark.slow  # (~3 s: 160 heads)
def test_failing_longer_than_the_hold_leaves_the_blocks_unswept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hold reaches ``ZERO_MODE_HOLD_BLOCKS`` below the cursor (120 here), not
    further: the rows below go (the table bounded), and those blocks are left unswept,
    said once, as before the hold (nothing sent twice; block 110's trade not delivered)."""
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    monkeypatch.setattr(wallet_monitor, "ZERO_MODE_HOLD_BLOCKS", 120)
    out = _sweeps_fail_then(tmp_path, "node_back")
    assert out["hold"] == 259 - 120, out
    assert out["pruned"] == 2, out  # 105's and 107's rows, below the hold
    assert len(out["ids"]) == 2, out["ids"]
    assert out["delivered"] == 2, out  # nothing sent to the bot twice
    assert len(out["alerts"]) == 1, out["alerts"]
