"""Races of the explorer fallback with a reorg, each as a deterministic regression test.

While the feed is down, the fallback poller delivers what the explorer shows; the
explorer indexes the chain late, and after a reorg it may still show logs of the blocks
the reorg replaced. What it delivered must be judged against the node once the feed is
back, whenever the poller's answer came.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HeldExplorer, explorer_ok, explorer_row
from monitor_helpers import order_filled
from test_races import _tid
from test_reliability import (
    cursor_at_least,
    first_sync,
    history_rows,
    replace_block,
    run_monitor,
    trade_ids,
    until,
)

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


async def _heads_to_103(node: HeldExplorer, mon: WalletMonitor) -> None:
    await first_sync(node, mon)
    for n in (101, 102, 103):
        await node.new_head(n)
    await until(lambda: cursor_at_least(mon, 102), "the cursor at 102")


async def _silent_feed_and_a_reorg_the_explorer_lags(node: HeldExplorer, mon: WalletMonitor,
                                                    orphan: dict[str, Any]) -> None:
    """Heads to 103; then the feed goes silent, the chain reorgs block 104 away (the
    node has another), and the explorer, lagging the reorg, shows ``orphan`` in it."""
    await _heads_to_103(node, mon)
    replace_block(node, 104)
    _explorer_shows(node, [orphan])
    node.explorer_head = 106


def _explorer_shows(node: HeldExplorer, logs: list[dict[str, Any]]) -> None:
    """From now on the explorer's getLogs answers ``logs`` (its index, whatever the
    chain says)."""
    def answer(query: dict[str, str]) -> str:
        a, b = int(query["fromBlock"]), int(query["toBlock"])
        return explorer_ok([explorer_row(lg) for lg in logs
                            if a <= int(lg["blockNumber"], 16) <= b])
    node.explorer = answer


def test_an_orphan_a_poll_delivers_after_the_handback_sync_is_retracted(
        tmp_path: Path) -> None:
    """The feed went silent; the fallback polls an explorer that lags a reorg of block
    104: it still shows the trade of the block the reorg replaced. That poll is in flight
    when the feed comes back; the handback sync covers 101..107 from the node (no trade,
    nothing standing there yet) and moves the cursor past 104; then the poll's answer is
    delivered: the orphan stood for good (no later sync or check looks below the cursor
    unless the socket reconnects). Once polling has stopped, the blocks the fallback
    delivered from are checked against the node."""
    orphan = order_filled(block=104, tx=4)  # the old block 104 (the node has another)

    async def go() -> None:
        async with HeldExplorer() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await _silent_feed_and_a_reorg_the_explorer_lags(node, mon, orphan)
                node.hold = asyncio.Event()
                hold = node.hold
                await until(lambda: node.held_queries > 0, "the fallback poll in flight",
                            timeout=60)
                poll = shard._poll_task
                assert poll is not None
                # the feed comes back: heads 108 on (a gap: the sync of 103..107)
                await node.new_head(108)
                await until(lambda: cursor_at_least(mon, 107), "the handback sync")
                hold.set()  # the poll's answer (the orphan) goes on
                await until(poll.done, "handed back")
                await until(lambda: trade_ids(sink) == [_tid(orphan)], "the poll delivered")
                # judged now, not at the next reconnect (the feed, silent from here, goes
                # stale in 2 s and reconnects: that reconnect's check found it before)
                connects = shard.counters["connects"]
                await until(lambda: any(e.kind == "retraction" for e in sink.events)
                            or shard.counters["connects"] > connects, "the orphan retracted")
                assert shard.counters["connects"] == connects
            await run_monitor(node, tmp_path, body, speed=20.0, fallback_after=1,
                              staleness_blocks=20, explorer_overlap_blocks=0)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(orphan)]


def test_an_orphan_the_fallback_delivered_long_before_the_handback_is_retracted(
        tmp_path: Path) -> None:
    """A long outage: early in it the explorer, lagging a reorg of block 104, showed the
    trade of the block the reorg replaced, and the fallback delivered it; then the
    explorer caught up (no trade there) and the poller's cursor went on to 300. The feed
    came back: its reconnect check looks at the deliveries of the last 128 blocks below
    the cursor, and the handback sync starts at the cursor - block 104 was never judged
    again and the orphan stood for good. At the handback, every block the fallback
    delivered from is checked against the node."""
    orphan = order_filled(block=104, tx=4)

    async def go() -> None:
        async with HeldExplorer() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await _silent_feed_and_a_reorg_the_explorer_lags(node, mon, orphan)
                await until(lambda: trade_ids(sink) == [_tid(orphan)],
                            "the fallback delivered the orphan", timeout=60)
                _explorer_shows(node, [])  # the explorer caught up; the outage goes on
                node.explorer_head = 300
                await until(lambda: cursor_at_least(mon, 300), "the poller at 300")
                node.head = 301
                await node.new_head(302)  # the feed is back
                await until(lambda: shard._poller is None and cursor_at_least(mon, 301),
                            "handed back")
                connects = shard.counters["connects"]
                await until(lambda: any(e.kind == "retraction" for e in sink.events)
                            or shard.counters["connects"] > connects, "the orphan retracted")
                assert shard.counters["connects"] == connects
            await run_monitor(node, tmp_path, body, speed=20.0, fallback_after=1,
                              staleness_blocks=20, explorer_overlap_blocks=0,
                              head_jump_slack=400)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(orphan)]


def test_a_trade_the_explorer_had_not_indexed_at_the_handback_is_synced_over_json_rpc(
        tmp_path: Path) -> None:
    """Pins the handback's cover: the explorer's index stops at 104 when the feed comes
    back; the trade of block 106 it never showed is fetched by the handback sync (the
    poller's cursor, the explorer's head less the overlap, is where it starts), over
    eth_getLogs, before polling stops."""
    unseen = order_filled(block=106, tx=6)

    async def go() -> None:
        async with HeldExplorer() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await _heads_to_103(node, mon)
                node.explorer_head = 104  # the feed goes silent; the explorer lags
                node.logs.append(unseen)
                await until(lambda: shard._poller is not None and cursor_at_least(mon, 104)
                            and node.explorer_queries[-1].get("module") == "logs",
                            "the fallback polled up to 104", timeout=60)
                node.head = 107
                await node.new_head(108)  # the feed is back
                await until(lambda: shard._poller is None and cursor_at_least(mon, 107),
                            "handed back")
            await run_monitor(node, tmp_path, body, speed=20.0, fallback_after=1,
                              staleness_blocks=20, explorer_overlap_blocks=0)
    asyncio.run(go())
    delivered = history_rows(tmp_path, "delivered")
    assert [(r["trade_id"], r["source"]) for r in delivered] == [(_tid(unseen), "backfill")]
