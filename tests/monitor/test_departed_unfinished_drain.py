"""An owed drain that does not finish in one run (the node failing its ranges, a kill
mid-way): its top - the head at that start - is kept on disk (the wallets' cursor group,
monitor.departed.owed_group). Before, it was nowhere: the next start read the removed
wallet from the cursor the drain reached up to ITS OWN head, or, the wallet back on the
list, resumed it at that cursor, and the wallet's trades mined while it was off the list
(after the first restart's start) went to the bot. Now the next start drains it up to the
first drain's top; a wallet added back gets what it was owed up to it and is watched from
that start's launch point."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, RpcErr
from monitor_helpers import WALLET, order_filled
from test_departed_hostile import GONE, _asks_for_gone, _first_run, _tid
from test_reliability import TIMEOUT, run_monitor, trade_ids, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


async def _unfinished_drain(tmp: Path) -> list[str]:
    """Run 2: GONE removed; its drain delivers 100..104 (trade 2 of block 103), then the
    node fails its ranges from 105 on until the stop (trade 3 of block 107 still owed)."""
    async with HostileNode() as node:
        node.logs += [order_filled(wallet=GONE, block=103, tx=2),
                      order_filled(wallet=GONE, block=107, tx=3)]
        node.head = 110
        plain = node.answer

        def answer(method: str, params: list[Any]) -> Any:
            if method == "eth_getLogs" and _asks_for_gone(params) \
                    and int(params[0]["fromBlock"], 16) >= 105:
                return RpcErr(-32603, "internal error")
            return plain(method, params)
        node.answer = answer  # type: ignore[method-assign]
        got: list[str] = []

        async def second(mon: WalletMonitor, sink: MemorySink) -> None:
            await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
            await until(lambda: _tid(2) in trade_ids(sink), "the owed trade of 103")
            await until(lambda: mon.owed is not None and mon.owed.failures > 0, "stuck")
            got.extend(trade_ids(sink))
        await run_monitor(node, tmp, second, wallets=[WALLET], reconcile_interval=30.0,
                          backfill_chunk_blocks=5)
    return got


def _third_node() -> HostileNode:
    node = HostileNode()
    node.logs += [order_filled(wallet=GONE, block=103, tx=2),
                  order_filled(wallet=GONE, block=107, tx=3),  # owed by run 1
                  order_filled(wallet=GONE, block=112, tx=4)]  # mined in run 2: GONE off
    node.head = 120
    return node


def test_a_wallet_added_back_after_an_unfinished_drain_gets_no_trade_of_its_time_off(
        tmp_path: Path) -> None:
    got: list[str] = []

    async def go() -> None:
        await _first_run(tmp_path, 30.0)
        await _unfinished_drain(tmp_path)
        async with _third_node() as node:  # GONE back on the list
            async def third(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                node.logs.append(order_filled(wallet=GONE, block=122, tx=6))
                for n in range(120, 126):
                    node.head = n
                    await node.new_head(n)
                await until(lambda: _tid(6) in trade_ids(sink), "the re-added wallet's trade")
                await until(lambda: mon.owed is not None and not mon.owed.owed, "drained")
                got.extend(trade_ids(sink))
            await run_monitor(node, tmp_path, third, wallets=[WALLET, GONE],
                              reconcile_interval=30.0, start_block=None,
                              backfill_chunk_blocks=5)
    asyncio.run(go())
    assert _tid(3) in got  # owed by run 1 (block 107, below the first drain's top)
    assert _tid(4) not in got  # before: delivered (block 112, GONE off the list then)


def test_a_drain_resumed_by_the_next_start_stops_at_the_first_drain_s_top(
        tmp_path: Path) -> None:
    got: list[str] = []

    async def go() -> None:
        await _first_run(tmp_path, 30.0)
        await _unfinished_drain(tmp_path)
        async with _third_node() as node:  # GONE still off the list
            async def third(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await until(lambda: mon.owed is not None and not mon.owed.owed, "drained")
                got.extend(trade_ids(sink))
            await run_monitor(node, tmp_path, third, wallets=[WALLET],
                              reconcile_interval=30.0, backfill_chunk_blocks=5)
    asyncio.run(go())
    assert _tid(3) in got  # owed by run 1: delivered by the resumed drain
    assert _tid(4) not in got  # before: delivered (block 112, GONE off the list then)
