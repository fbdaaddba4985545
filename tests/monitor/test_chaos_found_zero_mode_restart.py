"""``reconcile_interval = 0``: heads move the cursor past blocks no eth_getLogs fetched,
and the blocks they passed are swept once every ZERO_MODE_SWEEP_BLOCKS. A monitor stopped
(or killed) before the sweep of a block whose log notification was lost restarted from
the cursor the heads had moved: no sweep fetched that block, and its trade was lost for
good (the chaos restart probe, seed 320, 1800 s: a ws_loss, a stop 5 s after the trade's
block, 1 missed). The first sweep after a restart now starts ZERO_MODE_SWEEP_BLOCKS and
a margin below the stored cursor: the trade comes, late."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostile_node import HostileNode
from monitor_helpers import order_filled
from test_reliability import TIMEOUT, cursor_at_least, first_sync, run_monitor, trade_ids, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor
from polyvocab import trade_id


def test_a_trade_the_heads_passed_unswept_before_a_stop_comes_after_the_restart(
        tmp_path: Path) -> None:
    trade = order_filled(block=110, tx=3)
    tid = trade_id(trade["transactionHash"], int(trade["logIndex"], 16))

    async def main() -> None:
        async with HostileNode() as node:
            node.head = 100

            async def before(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.logs.append(trade)  # on the chain; its notification lost
                for n in range(101, 131):  # fewer blocks than a sweep waits for
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 129), "heads moved the cursor")
                assert trade_ids(sink) == []

            await run_monitor(node, tmp_path, before, reconcile_interval=0, start_block=95)
            node.subscribed.clear()

            async def after(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                for n in range(131, 136):
                    await node.new_head(n)
                await until(lambda: trade_ids(sink) == [tid], "the trade fetched",
                            timeout=10.0)

            await run_monitor(node, tmp_path, after, reconcile_interval=0, start_block=95)
    asyncio.run(main())
