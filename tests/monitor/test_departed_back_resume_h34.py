"""A wallet added back to the list while still owed, its drain then cut short (a kill, a
node failing the ranges): the next start reads the rest of what it was owed. Its cursor
is its shard's again (this start's head), so how far its drain read, and up to where it
is owed, are kept apart (Store.owed_back). Before, they were in memory only: the rest of
what it was owed was never read."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, RpcErr
from monitor_helpers import WALLET, order_filled
from test_departed_hostile import GONE, _asks_for_gone, _first_run, _tid
from test_reliability import TIMEOUT, run_monitor, trade_ids, until

from monitor.departed import owed_group
from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor


def _mark(tmp: Path) -> None:
    """As a start that removed GONE at head 200 left it, its drain killed at once."""
    db = sqlite3.connect(tmp / "state.db")
    try:
        with db:
            db.execute("UPDATE cursors SET grp=? WHERE wallet=?", (owed_group(200), GONE))
    finally:
        db.close()


def _node(head: int, failing: bool) -> HostileNode:
    node = HostileNode()
    node.logs += [order_filled(wallet=GONE, block=120, tx=2),   # owed
                  order_filled(wallet=GONE, block=180, tx=3),   # owed
                  order_filled(wallet=GONE, block=210, tx=4)]   # mined off the list
    node.head = head
    plain = node.answer

    def answer(method: str, params: list[Any]) -> Any:
        if failing and method == "eth_getLogs" and _asks_for_gone(params) \
                and 140 <= int(params[0]["fromBlock"], 16) <= 200:
            return RpcErr(-32603, "internal error")
        return plain(method, params)
    node.answer = answer  # type: ignore[method-assign]
    return node


def _owed_back(tmp: Path) -> dict[str, tuple[int, int]]:
    store = Store(tmp / "state.db")
    try:
        return store.owed_back()
    finally:
        store.close()


def test_the_drain_of_a_wallet_added_back_is_resumed_after_a_stop(tmp_path: Path) -> None:
    second: list[str] = []
    third: list[str] = []

    async def go() -> None:
        await _first_run(tmp_path, 30.0)  # cursors at 99
        _mark(tmp_path)
        async with _node(220, failing=True) as node:  # GONE back on the list
            async def stopped(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await until(lambda: _tid(2) in trade_ids(sink), "the first owed trade")
                await until(lambda: mon.owed is not None and mon.owed.failures > 0, "stuck")
                second.extend(trade_ids(sink))
            await run_monitor(node, tmp_path, stopped, wallets=[WALLET, GONE],
                              reconcile_interval=30.0, start_block=None,
                              backfill_chunk_blocks=20)
        assert _owed_back(tmp_path) == {GONE: (139, 200)}
        async with _node(230, failing=False) as node:
            async def rest(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await until(lambda: _tid(3) in trade_ids(sink), "the rest")
                await until(lambda: mon.owed is not None and not mon.owed.owed, "drained")
                third.extend(trade_ids(sink))
            await run_monitor(node, tmp_path, rest, wallets=[WALLET, GONE],
                              reconcile_interval=30.0, start_block=None,
                              backfill_chunk_blocks=20)
    asyncio.run(go())
    assert second == [_tid(2)]
    assert third == [_tid(3)]  # before: never (and nothing of 210: GONE was off the list)
    assert _owed_back(tmp_path) == {}
