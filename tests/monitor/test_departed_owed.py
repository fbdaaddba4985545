"""A wallet removed from the list between two runs: the trades the run before owed it.

The run before read the wallet up to its stored cursor and was taken down with trades
of the wallet mined while it was watched still undelivered (a kill in a fault, a poll
not yet due). Before, the next run never watched the wallet again, so they never reached
the bot (chaos seeds 26, 2360). Now the restarted monitor reads the removed wallet's
trades from its cursor up to the head at its start (monitor.departed), delivers each
once, and forgets the wallet: added again later, it starts at that start's launch
point, not at its old cursor (the backfill of the whole time it was not watched sent the
bot trades never its)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hostile_node import HostileNode, explorer_from_logs
from monitor_helpers import WALLET, order_filled
from test_reliability import (
    TIMEOUT,
    cursor_at_least,
    first_sync,
    history_rows,
    run_monitor,
    trade_ids,
    until,
)

from monitor.departed import owed_from
from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor

GONE = "0x" + "ab" * 20  # watched by the first run only, then again by the third


def _tid(tx: int, log_index: int = 0) -> str:
    return f"0x{tx:064x}:{log_index}"


def _cursor(tmp: Path, wallet: str) -> int | None:
    store = Store(tmp / "state.db")
    try:
        cur = store.cursor(wallet)
        return None if cur is None else cur.block
    finally:
        store.close()


@pytest.mark.parametrize("reconcile", [30.0, 0.0], ids=["reconcile", "zero_mode"])
def test_the_trades_a_removed_wallet_was_owed_are_delivered_once(
        tmp_path: Path, reconcile: float) -> None:
    runs: list[list[str]] = []

    async def go() -> None:
        async with HostileNode() as node:  # run 1: both wallets
            node.logs.append(order_filled(wallet=GONE, block=98, tx=1))

            async def first(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                await until(lambda: _tid(1) in trade_ids(sink), "the first trade")
                runs.append(trade_ids(sink))
            await run_monitor(node, tmp_path, first, wallets=[WALLET, GONE],
                              reconcile_interval=reconcile)
        assert (_cursor(tmp_path, GONE) or 0) >= 99

        async with HostileNode() as node:  # run 2: GONE removed from the list
            node.logs += [order_filled(wallet=GONE, block=98, tx=1),  # delivered before
                          order_filled(wallet=GONE, block=103, tx=2),  # owed
                          order_filled(block=104, tx=3)]  # the kept wallet's
            node.head = 110

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                # mined after this start: GONE's, not owed
                node.logs.append(order_filled(wallet=GONE, block=112, tx=4))
                for n in range(110, 116):
                    node.head = n
                    await node.new_head(n)
                await until(lambda: _tid(2) in trade_ids(sink) and _tid(3) in trade_ids(sink),
                            "the owed trade and the kept wallet's")
                await until(lambda: mon.owed is not None and not mon.owed.owed, "owed drained")
                await until(lambda: cursor_at_least(mon, 113), "the kept wallet past 113")
                runs.append(trade_ids(sink))
            await run_monitor(node, tmp_path, second, wallets=[WALLET],
                              reconcile_interval=reconcile)
        assert _cursor(tmp_path, GONE) is None  # forgotten
        assert history_rows(tmp_path, "owed_drained")

        async with HostileNode() as node:  # run 3: GONE added again
            node.logs += [order_filled(wallet=GONE, block=n, tx=tx)
                          for n, tx in ((98, 1), (103, 2), (112, 4), (118, 5))]
            node.head = 120

            async def third(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                node.logs.append(order_filled(wallet=GONE, block=122, tx=6))
                for n in range(120, 126):
                    node.head = n
                    await node.new_head(n)
                await until(lambda: _tid(6) in trade_ids(sink), "the re-added wallet's trade")
                runs.append(trade_ids(sink))
            await run_monitor(node, tmp_path, third, wallets=[WALLET, GONE],
                              reconcile_interval=reconcile, start_block=None)
    asyncio.run(go())
    assert runs[0] == [_tid(1)]
    assert sorted(runs[1]) == [_tid(2), _tid(3)]  # tx 1 not again, tx 4 not owed
    assert runs[2] == [_tid(6)]  # tx 4 and 5: mined while GONE was not on the list


def test_a_polling_monitor_delivers_what_it_owed_a_removed_wallet(tmp_path: Path) -> None:
    """Polling only: the removed wallet's owed trade is read from the explorer once its
    index has the blocks up to the head at the start."""
    got: list[str] = []

    async def go() -> None:
        async with HostileNode() as node:
            explorer_from_logs(node)
            node.logs.append(order_filled(wallet=GONE, block=98, tx=1))

            async def first(mon: WalletMonitor, sink: MemorySink) -> None:
                await until(lambda: _tid(1) in trade_ids(sink), "the first trade")
            await run_monitor(node, tmp_path, first, wallets=[WALLET, GONE], mode="polling",
                              explorer_overlap_blocks=2)

        async with HostileNode() as node:
            explorer_from_logs(node)
            node.logs += [order_filled(wallet=GONE, block=98, tx=1),
                          order_filled(wallet=GONE, block=103, tx=2)]
            node.head = 110

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                # an explorer with no transaction to an exchange (no index head to ask):
                # blocks up to its head less the overlap count as indexed
                await until(lambda: mon.owed is not None and mon.owed.waits > 0,
                            "the drain waiting for the index")
                assert _tid(2) not in trade_ids(sink)
                node.head = 112
                await until(lambda: _tid(2) in trade_ids(sink), "the owed trade")
                await until(lambda: mon.owed is not None and not mon.owed.owed, "owed drained")
                node.head = 130  # GONE's later trade: not owed
                node.logs.append(order_filled(wallet=GONE, block=120, tx=3))
                await until(lambda: cursor_at_least(mon, 125), "a poll past 125")
                got.extend(trade_ids(sink))
            await run_monitor(node, tmp_path, second, wallets=[WALLET], mode="polling",
                              explorer_overlap_blocks=2)
    asyncio.run(go())
    assert got == [_tid(2)]
    assert _cursor(tmp_path, GONE) is None


def test_owed_from() -> None:
    assert owed_from(99) == 100
    assert owed_from(99, launch=120) == 121  # never below the launch point
    assert owed_from(300, zero_mode_window=128) == 173
    # a stored sweep floor lower: from there, not below the cursor less the retention
    assert owed_from(300, zero_mode_window=128, floor=100) == 101
    assert owed_from(300, zero_mode_window=128, floor=100, retention=150) == 150
    assert owed_from(50, zero_mode_window=128) == 1
