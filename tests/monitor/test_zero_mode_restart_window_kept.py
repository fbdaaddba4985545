"""``reconcile_interval = 0``, a restart: the heads of the run before moved the stored
cursor past blocks no sweep had fetched, and the first sweep after the restart fetches
the ``RESTART_SWEEP_BLOCKS`` below it (the restart window). The window was taken before
it was asked: a node error on that first ask (a timeout, a 5xx, a spent quota) lost it
for good - the next sweep started at ``_swept_to``, above it - and a trade the feed had
lost there (in the run before) was never delivered. The window is now kept until its
blocks were fetched."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, RpcErr
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def test_a_restart_window_refused_once_is_asked_again(tmp_path: Path) -> None:
    got: list[str] = []
    refused: list[tuple[int, int]] = []

    async def go() -> None:
        async with HostileNode() as node:
            async def first(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.logs.append(order_filled(block=110, tx=3))  # the feed lost it
                for n in range(101, 121):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
            await run_monitor(node, tmp_path, first, reconcile_interval=0)

        async with HostileNode() as node:  # the restart
            node.logs.append(order_filled(block=110, tx=3))
            plain = node.answer

            def answer(method: str, params: list[Any]) -> Any:
                if method == "eth_getLogs" and not refused:
                    f = params[0]
                    a, b = int(f["fromBlock"], 16), int(f["toBlock"], 16)
                    if a <= 110 <= b:  # the window's first ask: a node error
                        refused.append((a, b))
                        return RpcErr(-32603, "internal error")
                return plain(method, params)
            node.answer = answer  # type: ignore[method-assign]
            node.head = 125

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                shard = mon.shards[0]
                for n in range(125, 135):
                    await node.new_head(n)
                    await until(lambda n=n: shard.head == n, f"head {n}")
                await until(lambda: bool(refused), "the window asked")
                await until(lambda: len(sink.events) >= 1, "block 110's trade")
                got.extend(e.trade_id for e in sink.events)
            await run_monitor(node, tmp_path, second, reconcile_interval=0)
    asyncio.run(go())
    assert len(got) == 1, got
