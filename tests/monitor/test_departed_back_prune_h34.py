"""A wallet added back to the list while still owed (its drain cut short) is watched from
this start's head; the drain reads what it was owed from its old cursor up. Its dedup
rows there - the trades the run before's feed delivered above that cursor - are the
prune's once the new cursor is the retention past them: the prune ran before the drain
read those blocks (a slow or failing node) and the drain sent them to the bot again. The
prune now keeps the rows the drain is still to read."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, RpcErr
from monitor_helpers import WALLET, order_filled
from test_departed_hostile import GONE, _asks_for_gone, _tid
from test_reliability import TIMEOUT, first_sync, run_monitor, trade_ids, until

from monitor.departed import owed_group
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

RETENTION = 1024
HEAD = 99 + RETENTION + 300


async def _run_before(tmp: Path) -> None:
    """Both wallets; GONE's trade of block 105 delivered by the feed, then WALLET's of 106
    (the one id memory keeps: dedup_capacity 1, as 100,000 wallets' ids evict it), the
    cursors at 99."""
    async with HostileNode() as node:
        async def first(mon: WalletMonitor, sink: MemorySink) -> None:
            await first_sync(node, mon)
            await node.notify("logs", order_filled(wallet=GONE, block=105, tx=5))
            await until(lambda: _tid(5) in trade_ids(sink), "the feed's trade")
            await node.notify("logs", order_filled(wallet=WALLET, block=106, tx=6))
            await until(lambda: _tid(6) in trade_ids(sink), "a later trade")
        await run_monitor(node, tmp, first, wallets=[WALLET, GONE], reconcile_interval=30.0,
                          dedup_retention_blocks=RETENTION, dedup_capacity=1)


def _edit(tmp: Path) -> None:
    """As a start that removed GONE at head 200 left it (its drain killed before it read
    anything), and WALLET's cursor near the head."""
    db = sqlite3.connect(tmp / "state.db")
    try:
        with db:
            for wallet, block, group in ((GONE, 99, owed_group(200)),
                                         (WALLET, HEAD - 2, "websocket")):
                db.execute("UPDATE cursors SET block=?, grp=? WHERE wallet=?",
                           (block, group, wallet))
    finally:
        db.close()


def test_the_drain_of_a_wallet_added_back_reads_no_pruned_trade_again(tmp_path: Path) -> None:
    got: list[str] = []

    async def go() -> None:
        await _run_before(tmp_path)
        _edit(tmp_path)
        async with HostileNode() as node:
            node.logs.append(order_filled(wallet=GONE, block=105, tx=5))
            node.head = HEAD
            plain = node.answer
            pruned: list[bool] = [False]

            def answer(method: str, params: list[Any]) -> Any:
                if method == "eth_getLogs" and _asks_for_gone(params) \
                        and int(params[0]["fromBlock"], 16) <= 200 and not pruned[0]:
                    return RpcErr(-32603, "internal error")  # until a prune ran
                return plain(method, params)
            node.answer = answer  # type: ignore[method-assign]

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                assert mon.pipeline is not None
                pipe = mon.pipeline
                await until(lambda: pipe._next_dedup_prune_ns > 0, "a prune")
                pruned[0] = True
                await until(lambda: mon.owed is not None and not mon.owed.owed, "drained")
                got.extend(trade_ids(sink))
            await run_monitor(node, tmp_path, body, wallets=[WALLET, GONE],
                              reconcile_interval=30.0, start_block=None,
                              dedup_retention_blocks=RETENTION, dedup_capacity=1)
    asyncio.run(go())
    assert _tid(5) not in got, got  # before: delivered again (its row pruned)
