"""Found by ``python -m experiments chaos`` (seed 142, 900 s, ``reconcile_interval = 0``):
a first start with no ``start_block`` never ran a zero-mode sweep."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostile_node import HostileNode
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, trade_ids, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor
from polyvocab import trade_id


def test_a_first_start_at_the_head_sweeps_what_a_silent_logs_subscription_lost(
        tmp_path: Path) -> None:
    """``reconcile_interval = 0``, no ``start_block``, no stored cursor: the monitor starts
    at the chain's head, so its first sync has no block to fetch. The sweeps of the blocks
    the heads passed start where a sync last fetched - never set, so no sweep ever ran:
    a logs subscription silent while heads flowed (12 s of the chaos run) lost its trades
    for good (17 missed), against the documented "delivered up to 64 blocks late"."""
    trade = order_filled(block=110, tx=3)

    async def main() -> None:
        async with HostileNode() as node:
            node.head = 100

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.logs.append(trade)  # on the chain; never notified
                for n in range(101, 181):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 179), "heads moved the cursor")
                await until(lambda: trade_ids(sink) == [trade_id(
                    trade["transactionHash"], int(trade["logIndex"], 16))],
                    "the trade fetched by a sweep", timeout=10.0)
                assert mon.shards[0].counters["zero_mode_swept_blocks"] >= 64

            await run_monitor(node, tmp_path, body, reconcile_interval=0, start_block=None)
    asyncio.run(main())
