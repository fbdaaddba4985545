"""``reconcile_interval = 0``: a restart's first sweep re-fetches the
``RESTART_SWEEP_BLOCKS`` (128) below the stored cursor, which the heads of the run before
may have moved past blocks no sweep had fetched. A first run shorter than that moved the
cursor a few blocks past its launch point (the head at the first start, stored by
``WalletMonitor.record_launch``); the restart's sweep then reached below the launch and
sent trades mined before it - trades the user never asked for (phantoms against the
launch). The window must never go below a wallet's launch cursor.

The hostile node on loopback (real WebSocket and HTTP), real SQLite, two processes' worth
of WalletMonitor in one test (stop, start again on the same state database)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from hostile_node import HostileNode
from monitor_helpers import order_filled
from test_reliability import settings

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

TIMEOUT = 30.0
LAUNCH = 100  # the chain's head at the first start
PRE = 90  # a trade mined before the launch: never the bot's
AFTER = 103  # ... and one after it


async def _until(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {TIMEOUT:.0f}s: {what}")
        await asyncio.sleep(0.02)


def _get_logs_from(node: HostileNode) -> list[int]:
    items = [i for b in node.requests for i in (b if isinstance(b, list) else [b])]
    return [int(i["params"][0]["fromBlock"], 16) for i in items
            if i.get("method") == "eth_getLogs"]


def test_a_restart_sweep_never_reaches_below_the_launch_point(tmp_path: Path) -> None:
    first_sink, second_sink = MemorySink(), MemorySink()

    async def go() -> tuple[list[int], int]:
        async with HostileNode() as node:
            node.head = LAUNCH
            node.logs = [order_filled(block=PRE, tx=1), order_filled(block=AFTER, tx=2)]
            s = settings(node, tmp_path, start_block=None, reconcile_interval=0.0)
            mon = WalletMonitor(s, sink=first_sink)
            await mon.start()
            try:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                for n in range(LAUNCH + 1, LAUNCH + 8):  # heads move the cursor
                    await node.new_head(n)
                await _until(lambda: (mon.shards[0].cursor() or 0) >= LAUNCH + 6,
                             "the first run's cursor past the launch")
            finally:
                await mon.stop()
            node.subscribed.clear()
            node.subs.clear()
            asked_before = len(_get_logs_from(node))
            again = WalletMonitor(s, sink=second_sink)
            await again.start()
            try:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.new_head(LAUNCH + 8)
                shard = again.shards[0]
                await _until(lambda: shard.counters["zero_mode_swept_blocks"] > 0
                             or (shard._restart_window is None
                                 and (shard.cursor() or 0) >= LAUNCH + 7),
                             "the restart's first sweep")
                await node.new_head(LAUNCH + 9)
                await _until(lambda: (shard.cursor() or 0) >= LAUNCH + 8,
                             "the restart's cursor at the next head")
            finally:
                await again.stop()
            return _get_logs_from(node)[asked_before:], len(second_sink.events)

    asked, _ = asyncio.run(asyncio.wait_for(go(), 4 * TIMEOUT))
    trades = sorted(e.trade.block_number for s in (first_sink, second_sink)
                    for e in s.events if e.kind == "trade" and e.trade is not None)
    assert trades == [AFTER], trades  # before: [90, 103] (a phantom of the launch)
    assert asked and min(asked) > LAUNCH, asked  # before: swept from block 0


def test_the_store_keeps_each_wallets_launch_point_as_its_cursor_moves(tmp_path: Path) -> None:
    """``Store.launches``: the first cursor a wallet was given, by the launch
    (``start_cursors``) or by a first sync (``set_cursors(launch=True)``); moving the
    cursor on, or starting it again, leaves it."""
    import sqlite3

    from monitor.store import Store

    a, b, c = ("0x" + ch * 40 for ch in "abc")
    db = tmp_path / "s.db"
    with sqlite3.connect(db) as old:  # a state file of schema 1: no launches table
        old.execute("CREATE TABLE cursors (wallet TEXT PRIMARY KEY, block INTEGER NOT NULL, "
                    "hash TEXT, grp TEXT NOT NULL)")
        old.execute("INSERT INTO cursors VALUES (?, 50, NULL, 'websocket')", (c,))
        old.execute("PRAGMA user_version = 1")
    old.close()
    store = Store(db)
    try:
        assert store.launches() == {}  # a wallet of before: no bound
        assert store.start_cursors([a, c], 100) == [a]
        store.set_cursors([a], 107, "0x07", "websocket")
        store.set_cursors([b], 104, None, "websocket", forward_only=False, launch=True)
        store.set_cursors([a, b], 110, "0x10", "websocket", launch=True)
        assert store.launches() == {a: 100, b: 104}
        assert store.cursors()[a].block == 110
    finally:
        store.close()
    again = Store(db)
    try:
        assert again.launches() == {a: 100, b: 104}
    finally:
        again.close()
