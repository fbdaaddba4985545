"""``reconcile_interval = 0``, a restart: the restart window is kept until its blocks
were fetched (511ca4c), the sweep staying due. Its ask ran before every sync and raised:
a node that keeps failing the window's blocks (older than what it serves, a range it
cannot answer) held every sync after it, and a gap in the feed (a head that skipped
blocks) was never fetched - its trade lost while the node answered every newer block.
The window's failure now leaves the sync to run (the window asked again after the
back-off)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, RpcErr
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def test_a_window_the_node_keeps_failing_holds_no_sync(tmp_path: Path) -> None:
    window_asks: list[tuple[int, int]] = []
    got: list[str] = []
    gap = order_filled(block=130, tx=7)  # in blocks a head skipped: the feed never sent it

    async def go() -> None:
        async with HostileNode() as node:
            async def first(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                for n in range(101, 121):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
            await run_monitor(node, tmp_path, first, reconcile_interval=0)

        async with HostileNode() as node:  # the restart
            node.logs.append(gap)
            plain = node.answer

            def answer(method: str, params: list[Any]) -> Any:
                if method == "eth_getLogs":
                    f = params[0]
                    a, b = int(f["fromBlock"], 16), int(f["toBlock"], 16)
                    if a <= 119:  # the window's blocks: the node keeps failing them
                        window_asks.append((a, b))
                        return RpcErr(-32603, "internal error")
                return plain(method, params)
            node.answer = answer  # type: ignore[method-assign]
            node.head = 125

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                shard = mon.shards[0]
                await node.new_head(125)
                await until(lambda: cursor_at_least(mon, 124), "the first sync")
                await until(lambda: bool(window_asks), "the window asked")
                node.head = 140
                await node.new_head(140)  # a head that skipped blocks: a sync's to fetch
                await until(lambda: shard.head == 140, "head 140")
                await until(lambda: len(sink.events) >= 1, "the gap's trade", timeout=10)
                got.extend(e.trade_id for e in sink.events)
                assert shard._restart_window is not None  # (still kept)
            await run_monitor(node, tmp_path, second, reconcile_interval=0,
                              head_jump_slack=1000)
    asyncio.run(go())
    assert len(got) == 1, got
