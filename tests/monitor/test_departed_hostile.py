"""Adversarial cases of the owed drain (monitor.departed): what the restarted monitor
reads for a wallet removed from the list must be exactly what the run before owed it.

Each test runs the monitor twice on loopback (:class:`hostile_node.HostileNode`): run 1
watches WALLET and GONE; run 2 only WALLET, and drains what GONE was owed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HostileNode
from monitor_helpers import WALLET, order_filled, topic
from test_reliability import TIMEOUT, first_sync, run_monitor, trade_ids, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

GONE = "0x" + "ab" * 20  # watched by the first run only


def _tid(tx: int, log_index: int = 0) -> str:
    return f"0x{tx:064x}:{log_index}"


async def _first_run(tmp: Path, reconcile: float) -> None:
    """Run 1: both wallets; GONE's trade of block 98 delivered, cursors past 99."""
    async with HostileNode() as node:
        node.logs.append(order_filled(wallet=GONE, block=98, tx=1))

        async def first(mon: WalletMonitor, sink: MemorySink) -> None:
            await first_sync(node, mon)
            await until(lambda: _tid(1) in trade_ids(sink), "the first trade")
        await run_monitor(node, tmp, first, wallets=[WALLET, GONE],
                          reconcile_interval=reconcile)


def _asks_for_gone(params: list[Any]) -> bool:
    f = params[0] if params and isinstance(params[0], dict) else {}
    topics = f.get("topics") or []
    makers = topics[2] if len(topics) > 2 and isinstance(topics[2], list) else []
    return topic(GONE) in makers


def test_a_hostile_node_s_logs_outside_the_drain_s_range_or_removed_are_not_delivered(
        tmp_path: Path) -> None:
    """The node answers the drain's eth_getLogs (GONE's, blocks 100..110) with GONE's logs
    of block 150 (mined after this start: not owed), of block 96 (below the range: the run
    before read it) and a ``removed: true`` copy of the trade run 1 delivered (eth_getLogs
    never sends one). Before: the trades of 150 and 96 went to the bot as new ones and the
    delivered trade of 98 was retracted."""
    events: list[tuple[str, str]] = []

    async def go() -> None:
        await _first_run(tmp_path, 30.0)
        async with HostileNode() as node:
            node.logs += [order_filled(wallet=GONE, block=98, tx=1),
                          order_filled(wallet=GONE, block=103, tx=2)]  # owed
            node.head = 110
            plain = node.answer
            extra = [order_filled(wallet=GONE, block=150, tx=8),
                     order_filled(wallet=GONE, block=96, tx=9),
                     order_filled(wallet=GONE, block=98, tx=1, removed=True)]

            def answer(method: str, params: list[Any]) -> Any:
                got = plain(method, params)
                if method == "eth_getLogs" and _asks_for_gone(params):
                    return [*got, *extra]
                return got
            node.answer = answer  # type: ignore[method-assign]

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await until(lambda: mon.owed is not None and not mon.owed.owed, "owed drained")
                await until(lambda: _tid(2) in trade_ids(sink), "the owed trade")
                events.extend((e.kind, e.trade_id) for e in sink.events)
            await run_monitor(node, tmp_path, second, wallets=[WALLET],
                              reconcile_interval=30.0)
    asyncio.run(go())
    assert events == [("trade", _tid(2))], events
