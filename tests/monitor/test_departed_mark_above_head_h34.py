"""A removed wallet's stored drain top (its mark, ``owed:<top>``) above the head at this
start - a node behind the one of the start that wrote it, or its head unknown (the
highest block the store has taken instead) - is drained up to this head and kept: the
next start reads the rest. Before, the mark was lowered to this head and the wallet
forgotten once drained there: the trades it was owed above it were never read."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from hostile_node import HostileNode
from monitor_helpers import WALLET, order_filled
from test_departed_hostile import GONE, _first_run, _tid
from test_reliability import TIMEOUT, run_monitor, trade_ids, until

from monitor.departed import owed_group, owed_top
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


def _gone(tmp: Path) -> tuple[int, int | None] | None:
    store = Store(tmp / "state.db")
    try:
        cur = store.cursor(GONE)
        return None if cur is None else (cur.block, owed_top(cur.group))
    finally:
        store.close()


async def _run(tmp: Path, head: int, got: list[str]) -> None:
    async with HostileNode() as node:
        node.logs += [order_filled(wallet=GONE, block=120, tx=2),   # owed (below 200)
                      order_filled(wallet=GONE, block=180, tx=3),   # owed (below 200)
                      order_filled(wallet=GONE, block=210, tx=4)]   # not (above 200)
        node.head = head

        async def body(mon: WalletMonitor, sink: MemorySink) -> None:
            await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
            await until(lambda: mon.owed is not None and not mon.owed.owed, "drained")
            got.extend(trade_ids(sink))
        await run_monitor(node, tmp, body, wallets=[WALLET], reconcile_interval=30.0,
                          start_block=None, backfill_chunk_blocks=20)


def test_a_mark_above_the_head_at_this_start_is_kept_for_the_next(tmp_path: Path) -> None:
    second: list[str] = []
    third: list[str] = []

    async def go() -> None:
        await _first_run(tmp_path, 30.0)  # cursors at 99
        _mark(tmp_path)
        await _run(tmp_path, 150, second)  # a node 50 blocks behind the mark
        assert _gone(tmp_path) == (150, 200)  # before: None (forgotten)
        await _run(tmp_path, 230, third)
    asyncio.run(go())
    assert second == [_tid(2)]
    assert third == [_tid(3)]  # before: never delivered
    assert _gone(tmp_path) is None
