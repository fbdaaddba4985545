"""The head at start bounds what the owed drain reads for a removed wallet
(monitor.departed): a trade mined after this start was never the bot's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, RpcErr
from monitor_helpers import WALLET, order_filled
from test_departed_hostile import GONE, _first_run, _tid
from test_reliability import TIMEOUT, run_monitor, trade_ids, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def test_the_drain_reads_no_block_mined_after_the_start_when_the_node_is_down_at_start(
        tmp_path: Path) -> None:
    """The node says no head at run 2's start (eth_blockNumber fails: no launch point to
    store either, every watched wallet has a cursor). GONE trades in block 112, mined after
    the start (GONE is not on the list then); the node comes back with head 115. Before:
    the drain took the head it read once the node was back (115) as the top, and GONE's
    trade of block 112 went to the bot - a trade of a wallet not followed at the time."""
    got: list[str] = []

    async def go() -> None:
        await _first_run(tmp_path, 30.0)
        async with HostileNode() as node:
            node.logs += [order_filled(wallet=GONE, block=98, tx=1),
                          order_filled(wallet=GONE, block=99, tx=2)]  # owed: at the cursor
            node.head = 110
            down = {"on": True}
            plain = node.answer

            def answer(method: str, params: list[Any]) -> Any:
                if method == "eth_blockNumber" and down["on"]:
                    return RpcErr(-32603, "internal error")
                return plain(method, params)
            node.answer = answer  # type: ignore[method-assign]

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                node.logs.append(order_filled(wallet=GONE, block=112, tx=4))  # after start
                node.head = 115
                down["on"] = False
                for n in range(110, 116):
                    await node.new_head(n)
                await until(lambda: mon.owed is not None and not mon.owed.owed, "owed drained",
                            timeout=60.0)
                got.extend(trade_ids(sink))
            await run_monitor(node, tmp_path, second, wallets=[WALLET],
                              reconcile_interval=30.0)
    asyncio.run(go())
    assert _tid(4) not in got
