"""The owed drain's top (monitor.departed) is a head the node has: an eth_blockNumber
answer far ahead of the chain (a load balancer's backend gone wrong) at a restart that
removed a wallet is asked again, not walked toward."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, header
from monitor_helpers import WALLET, order_filled
from test_departed_hostile import GONE, _first_run, _tid
from test_reliability import TIMEOUT, run_monitor, trade_ids, until

from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor


def test_a_head_the_node_has_not_is_no_top_for_the_drain(tmp_path: Path) -> None:
    """The first eth_blockNumber of run 2 says 10**15 (no such block: the node answers
    null for it); the next say 110. Before: the drain's top was 10**15 - it walked
    eth_getLogs and a cursor write per 1,000 blocks toward it for ever (356,000 blocks in
    2 s on loopback), never delivering all it owed nor forgetting the wallet."""
    seen: list[Any] = []

    async def go() -> None:
        await _first_run(tmp_path, 30.0)
        async with HostileNode() as node:
            node.logs += [order_filled(wallet=GONE, block=103, tx=2)]
            node.head = 110
            asked = {"n": 0}
            plain = node.answer

            def answer(method: str, params: list[Any]) -> Any:
                if method == "eth_blockNumber":
                    asked["n"] += 1
                    if asked["n"] == 1:
                        return hex(10**15)
                if method == "eth_getBlockByNumber" and params[0] != "latest":
                    n = int(params[0], 16)
                    return header(n) if n <= node.head else None
                return plain(method, params)
            node.answer = answer  # type: ignore[method-assign]

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await until(lambda: mon.owed is not None and not mon.owed.owed, "owed drained",
                            timeout=10.0)
                seen.append((mon.owed.top if mon.owed else None, trade_ids(sink)))
            await run_monitor(node, tmp_path, second, wallets=[WALLET],
                              reconcile_interval=30.0)
    asyncio.run(go())
    assert seen == [(110, [_tid(2)])]
    store = Store(tmp_path / "state.db")
    try:
        assert store.cursor(GONE) is None
    finally:
        store.close()
