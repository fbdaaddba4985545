"""Polling only: the owed drain of many removed wallets (one explorer call a wallet and
range) asks the explorer's index head once it knows the index has the range, not again
for every wallet: the drain shares the explorer's rate and daily quota with the polls."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostile_node import HostileNode, explorer_from_logs
from monitor_helpers import WALLET, order_filled
from test_reliability import run_monitor, trade_ids, until

from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor

GONE = [f"0x{0xab00 + i:040x}" for i in range(20)]


def _tid(tx: int) -> str:
    return f"0x{tx:064x}:0"


def test_the_drain_asks_the_index_head_once_not_for_every_wallet(tmp_path: Path) -> None:
    """20 removed wallets, each owed a trade. Before: each wallet's range asked the index
    head (txlist) and the explorer's head (proxy) again - 40 calls for 20 of getLogs
    (100,000 removed wallets: 200,000 calls of a 100,000-a-day quota)."""
    probes: list[str] = []

    async def go() -> None:
        async with HostileNode() as node:
            explorer_from_logs(node)

            async def first(mon: WalletMonitor, sink: MemorySink) -> None:
                def polled() -> bool:
                    assert mon.store is not None
                    cursors = mon.store.cursors()
                    return all(w in cursors and cursors[w].block >= 97 for w in GONE)
                await until(polled, "every wallet polled")
            await run_monitor(node, tmp_path, first, wallets=[WALLET, *GONE], mode="polling",
                              explorer_overlap_blocks=2)

        async with HostileNode() as node:
            node.logs += [order_filled(wallet=w, block=103, tx=10 + i)
                          for i, w in enumerate(GONE)]
            node.head = 112
            plain_polls: list[dict[str, str]] = []
            explorer_from_logs(node, plain_polls)
            answer = node.explorer
            assert answer is not None

            def explorer(q: dict[str, str]) -> str | bytes | tuple[int, str | bytes]:
                if q.get("action") in ("txlist", "eth_blockNumber"):
                    probes.append(q["action"])
                got = answer(q)
                if q.get("action") == "eth_blockNumber":
                    node.head = 120  # the start read 112 (the drain's top); then 120
                return got
            node.explorer = explorer

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                want = {_tid(10 + i) for i in range(len(GONE))}
                await until(lambda: want <= set(trade_ids(sink)), "the owed trades")
                await until(lambda: mon.owed is not None and not mon.owed.owed, "owed drained")
            await run_monitor(node, tmp_path, second, wallets=[WALLET], mode="polling",
                              explorer_overlap_blocks=2, polling_interval=3600.0)
    asyncio.run(go())
    store = Store(tmp_path / "state.db")
    try:
        assert not set(GONE) & set(store.cursors())
    finally:
        store.close()
    # the start's head, the poller's first round (head, index), the drain's first probe
    # (index, head): not 2 more for each of the other 19 wallets
    assert len(probes) <= 8, probes
