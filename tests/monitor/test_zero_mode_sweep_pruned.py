"""``reconcile_interval = 0``: the heads move the cursor, and the blocks they passed are
fetched by a sweep from ``_swept_to``. When the node's sweeps fail for longer than
``dedup_retention_blocks`` (its HTTP side broken while the feed stays healthy), the
trades the feed delivered in the first of those blocks have their dedup ids pruned
(:meth:`Store.prune_delivered`, below the cursor less the retention). The sweep that
finally ran - the node's once it answered, or the explorer's once a spent quota started
a fill (``_fill_from_swept`` rewound the cursors to ``_swept_to``) - fetched them again,
and every one went to the bot a second time: a duplicate order with real money. A
duplicate is certain there (every trade delivered live), a miss only possible (a live
log lost): the sweep now starts no lower than the pruned ids reach, and the blocks it
leaves unswept are said (an error, a history row, an alert ``zero_mode_unswept``).
The pipeline's memory keeps the newest ``dedup_capacity`` ids (200,000) besides the
store: the test keeps one, so the older trade's id is the store's alone, as after that
many trades (a firehose of busy wallets over the retention's 5.6 h).

The pipeline's prune now keeps the rows of the blocks the sweeps are still to read
(``WsShard.sweep_floor``), down to the cursor less ``ZERO_MODE_HOLD_BLOCKS``: the test
prunes the store itself (no hold) and stands for sweeps failing longer than that
(``ZERO_MODE_HOLD_BLOCKS`` = the retention here; test_zero_mode_sweep_held.py has the
hold)."""

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


@pytest.mark.parametrize("then", ["quota_fill", "node_back"])
def test_a_late_sweep_sends_no_trade_whose_id_was_pruned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then: str) -> None:
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    monkeypatch.setattr(wallet_monitor, "ZERO_MODE_HOLD_BLOCKS", KEEP)  # (failing longer)
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
                node.logs.extend([live, newer])
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
                assert mon.store is not None
                assert mon.store.prune_delivered(KEEP) == 2  # the pipeline's periodic prune
                assert (shard._swept_to or 0) < 200  # every sweep failed
                broken["on"] = False
                if then == "quota_fill":
                    spent["on"] = True
                    await until(lambda: shard._poller is not None, "the quota fill")
                    await until(lambda: (shard._swept_to or 0) >= 250,
                                "the explorer read what the heads passed")
                else:
                    # (its last chunk done: _sweep_due is cleared as it starts)
                    await until(lambda: (shard._swept_to or 0) >= 250 and
                                not shard._sweep_due and shard._unswept is None,
                                "the node's sweep")
                if then == "quota_fill":  # the node's sweep once the quota is back
                    await node_calls_once_the_quota_is_back(
                        node, mon, spent, asked, range(261, 265))
                out["ids"] = trade_ids(sink)
                # (a sink that keeps each event key once, as MemorySink, drops the second
                # delivery: its generation starts over with the pruned id; the bot's
                # executor does not)
                out["delivered"] = mon.pipeline.counters["delivered"]
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=1, head_jump_slack=1000,
                              backfill_chunk_blocks=50, dedup_retention_blocks=KEEP,
                              dedup_capacity=1)
    asyncio.run(go())
    assert len(out["ids"]) == 2, out["ids"]
    assert out["delivered"] == 2, out  # neither sent to the bot twice
    rows = [r for r in history_rows(tmp_path, "alert") if r.get("kind") == "zero_mode_unswept"]
    assert len(rows) == 1, rows  # said once an episode, not at every failed sweep
    if then == "node_back":  # the episode's end (a node's sweep done): its range
        ends = history_rows(tmp_path, "zero_mode_unswept")
        assert len(ends) == 1 and ends[0]["first"] <= 105 and ends[0]["last"] >= 158, ends
