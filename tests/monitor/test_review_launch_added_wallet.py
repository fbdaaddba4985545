"""A wallet added to the list at a restart (71269f0's launch points): its launch point is
the head at that restart (``Store.start_cursors``); trades it made before - while the
monitor was down, in blocks the other wallets' cursors had not reached - were never the
bot's. The other wallets' trades of those blocks are (missed while down: delivered late).

The hostile node on loopback (real WebSocket and HTTP), real SQLite, two WalletMonitors
one after the other on the same state database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hostile_node import HostileNode
from monitor_helpers import WALLET, order_filled
from test_reliability import settings

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

TIMEOUT = 30.0
NEW = "0x" + "5a" * 20  # the wallet added at the restart
LAUNCH = 100  # the head at the first start
DOWN_TRADE = 112  # mined while the monitor was down
RESTART = 120  # the head at the restart: the new wallet's launch point


async def _until(pred: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {TIMEOUT:.0f}s: {what}")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("reconcile", [0.0, 10.0])
def test_a_wallet_added_at_a_restart_gets_no_trade_from_before_its_launch(
        tmp_path: Path, reconcile: float) -> None:
    first_sink, second_sink = MemorySink(), MemorySink()

    async def go() -> None:
        async with HostileNode() as node:
            node.head = LAUNCH
            node.logs = [order_filled(block=DOWN_TRADE, tx=1),
                         order_filled(wallet=NEW, block=DOWN_TRADE, tx=2, log_index=1),
                         order_filled(wallet=NEW, block=RESTART + 2, tx=3)]
            s = settings(node, tmp_path, start_block=None, reconcile_interval=reconcile)
            mon = WalletMonitor(s, sink=first_sink)
            await mon.start()
            try:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                for n in range(LAUNCH + 1, LAUNCH + 6):
                    await node.new_head(n)
                await _until(lambda: (mon.shards[0].cursor() or 0) >= LAUNCH + 4,
                             "the first run's cursor")
            finally:
                await mon.stop()
            node.subscribed.clear()
            node.subs.clear()
            node.head = RESTART  # the chain moved on while the monitor was down
            s2 = settings(node, tmp_path, start_block=None, reconcile_interval=reconcile,
                          wallets=[WALLET, NEW])
            again = WalletMonitor(s2, sink=second_sink)
            await again.start()
            try:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                for n in range(RESTART + 1, RESTART + 5):
                    await node.new_head(n)
                await _until(lambda: sum(e.kind == "trade" for e in second_sink.events) >= 2
                             and (again.shards[0].cursor() or 0) >= RESTART + 3,
                             "the restart's sync")
            finally:
                await again.stop()

    asyncio.run(asyncio.wait_for(go(), 4 * TIMEOUT))
    got = sorted((e.trade.wallet.lower(), e.trade.block_number) for e in second_sink.events
                 if e.kind == "trade" and e.trade is not None)
    # the old wallet's trade missed while down: delivered; the new wallet's from before it
    # was added: not; its trade after: delivered
    assert got == sorted([(WALLET.lower(), DOWN_TRADE), (NEW, RESTART + 2)]), got
