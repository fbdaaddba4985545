"""A reorg while the HTTP node's quota is spent: the re-check (the node's eth_getLogs of
the new chain) is refused, so the replaced heights' new trades are the feed's alone to
deliver; one the logs subscription did not send (providers drop a reorg's new logs) was
never asked of the explorer either: the quota fill (13de3f2) polls only while a gap is
open, and a reorg opened none, so it waited for the fill's idle round
(QUOTA_FILL_IDLE_S, 5 minutes) or the node (a month)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, block_hash, explorer_from_logs, header, spend_quota
from monitor_helpers import order_filled
from test_reliability import first_sync, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def _new_hash(n: int) -> str:
    return "0x" + "ee" * 30 + f"{n:04x}"


def _header(n: int, *, fork: int | None) -> dict[str, Any]:
    """Block ``n``'s header; from ``fork`` on (a reorg replaced the head) the new chain's."""
    if fork is None or n < fork:
        return header(n)
    return dict(header(n), hash=_new_hash(n),
                parentHash=_new_hash(n - 1) if n - 1 >= fork else block_hash(n - 1))


def test_a_reorgs_new_trade_the_feed_did_not_send_is_filled_from_the_explorer(
        tmp_path: Path) -> None:
    spent = {"on": False}
    chain: dict[str, int | None] = {"fork": None}

    async def go() -> None:
        async with HostileNode() as node:
            spend_quota(node, spent)
            explorer_from_logs(node)
            spent_answer = node.answer

            def answer(method: str, params: list[Any]) -> Any:
                if method == "eth_getBlockByNumber" and params[0] != "latest":
                    return _header(int(params[0], 16), fork=chain["fork"])
                return spent_answer(method, params)
            node.answer = answer  # type: ignore[method-assign]

            async def heads() -> None:  # a head a block interval: the feed stays live
                while True:
                    await asyncio.sleep(0.1)
                    node.head += 1
                    await node.notify("newHeads", _header(node.head, fork=chain["fork"]))

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                spent["on"] = True  # the month's quota is used up
                shard = mon.shards[0]
                pump = asyncio.create_task(heads())
                try:
                    # a sync the node refuses starts the fill (no gap: it idles)
                    await until(lambda: shard._poller is not None ,
                                "the quota fill", timeout=10.0)
                    poller = shard._poller
                    # its first round closed the connection's first gap: it idles now
                    await until(lambda: poller.skipped_rounds >= 3, "the fill idle")
                    pump.cancel()
                    await asyncio.gather(pump, return_exceptions=True)
                    # a reorg of depth 1 (the routine one): the head block is replaced,
                    # and the new one holds a trade the logs subscription never sends
                    fork = chain["fork"] = node.head
                    node.logs.append(order_filled(block=fork, tx=6, block_hash=_new_hash(fork)))
                    await node.notify("newHeads", _header(fork, fork=fork))
                    pump = asyncio.create_task(heads())
                    await until(lambda: shard.counters["reorgs_seen"] >= 1, "the reorg seen")
                    await until(lambda: len(sink.events) >= 1, "the new chain's trade",
                                timeout=8.0)
                    assert spent["on"]  # the explorer delivered it
                finally:
                    pump.cancel()
                    await asyncio.gather(pump, return_exceptions=True)
            await run_monitor(node, tmp_path, body, reconcile_interval=30.0,
                              explorer_overlap_blocks=1)
    asyncio.run(go())

