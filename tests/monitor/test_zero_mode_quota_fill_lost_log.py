"""``reconcile_interval = 0`` while the HTTP node's quota is spent: the heads move the
cursor past blocks no eth_getLogs fetched, so a live log lost there (it did not decode,
its delivery failed, the live queue was full) lies below the cursor. Its block is the
zero mode's sweep's to fetch, which the spent quota refuses; the quota fill (the
explorer, 300af7c) polled from the cursor, above it: the trade waited for the node (a
month for a monthly quota)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostile_node import HostileNode, explorer_from_logs, spend_quota
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def _scripted(node: HostileNode, spent: dict[str, bool]) -> None:
    """The node refuses eth_getLogs while ``spent``; the explorer answers from node.logs."""
    spend_quota(node, spent)
    explorer_from_logs(node)


async def _heads(node: HostileNode) -> None:
    """A head every block interval (0.1 s at speed 20): the feed stays live."""
    while True:
        await asyncio.sleep(0.1)
        node.head += 1
        await node.new_head(node.head)


def _lost_below_the_cursor(tmp_path: Path, *, fill_first: bool) -> list[str]:
    """Block 103's trade comes live after the heads moved the cursor past 103, and does
    not decode (a proxy cut its data); the node has it whole, the explorer too. With
    ``fill_first`` the quota fill is already running (a gap before) when it comes."""
    spent = {"on": False}
    trade = order_filled(block=103, tx=3)
    cut = dict(trade, data=trade["data"][:40])  # not the 7 words of a V2 OrderFilled
    got: list[str] = []

    async def go() -> None:
        async with HostileNode() as node:
            _scripted(node, spent)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                spent["on"] = True  # the month's quota is used up
                shard = mon.shards[0]
                if fill_first:  # a gap the node refuses: the explorer fills it
                    node.head = 100
                    await node.new_head(102)
                    await until(lambda: shard._poller is not None, "the quota fill")
                pump = asyncio.create_task(_heads(node))  # contiguous heads
                try:
                    await until(lambda: cursor_at_least(mon, 105),
                                "the heads move the cursor")
                    node.logs.append(trade)
                    await node.notify("logs", cut)  # late, and garbled on the way
                    await until(lambda: shard.counters["live_undecodable"] >= 1,
                                "the cut log counted")
                    await until(lambda: len(sink.events) >= 1, "block 103's trade",
                                timeout=10.0)
                    # the node still refuses: the explorer delivered it
                    assert spent["on"] and shard._poller is not None
                finally:
                    pump.cancel()
                    await asyncio.gather(pump, return_exceptions=True)
                got.extend(e.trade_id for e in sink.events)
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=1)
    asyncio.run(go())
    return got


def test_a_live_log_lost_below_the_cursor_is_filled_from_the_explorer(
        tmp_path: Path) -> None:
    got = _lost_below_the_cursor(tmp_path, fill_first=False)
    assert len(got) == 1 and len(set(got)) == 1, got


def test_a_live_log_lost_while_the_fill_runs_is_filled_from_the_explorer(
        tmp_path: Path) -> None:
    got = _lost_below_the_cursor(tmp_path, fill_first=True)
    assert len(got) == 1 and len(set(got)) == 1, got
