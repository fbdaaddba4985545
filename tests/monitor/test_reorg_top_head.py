"""A reorg announced as geth announces a side chain that overtakes in one import: the
removed logs, the new branch's logs and ONE newHeads header, the new top's (no header at
the fork height). The provider's HTTP node lags the WebSocket node: it has not the new
top yet, and still has the replaced blocks below it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, header
from monitor_helpers import order_filled
from test_reliability import (
    cursor_at_least,
    first_sync,
    history_rows,
    run_monitor,
    trade_ids,
    until,
)

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

NEW_101, NEW_102 = "0x" + "ee" * 32, "0x" + "dd" * 32


def _tid(log: dict[str, Any]) -> str:
    return f"{log['transactionHash']}:0"


def test_a_top_only_reorg_waits_for_an_http_node_without_the_new_top(
        tmp_path: Path) -> None:
    """Blocks 101 and 102 are replaced; the feed sends the old 101's trade as removed,
    the new 101's trade, and the header of the new 102 only. The HTTP node's head is 101,
    the old one: it has no block 102. The re-check took "no block 102" for "nothing to
    wait for" and judged from 101 down with the node's answers, of the replaced chain: it
    retracted the new 101's live trade (its block "has another hash") and delivered the
    old 101's again, the feed's retraction undone (a phantom the bot copies, a real trade
    undone). A node without the feed's reorg head is behind: the re-check waits for it."""
    old = order_filled(block=101, tx=5)
    live = order_filled(block=101, tx=6, block_hash=NEW_101)
    caught_up = [False]

    def get_logs(params: list[Any]) -> Any:
        a, b = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
        logs = [live] if caught_up[0] else [old]
        return [lg for lg in logs if a <= int(lg["blockNumber"], 16) <= b]

    def get_block(params: list[Any]) -> Any:
        n = int(params[0], 16)
        if not caught_up[0]:
            return header(n) if n <= 101 else None  # the old chain, head 101
        if n == 101:
            return dict(header(101), hash=NEW_101)
        if n == 102:
            return dict(header(102), hash=NEW_102, parentHash=NEW_101)
        if n == 103:
            return dict(header(103), parentHash=NEW_102)
        return header(n) if n < 101 else None

    def block_number(_p: list[Any]) -> Any:
        return hex(103 if caught_up[0] else 101)

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.rpc["eth_getLogs"], node.rpc["eth_getBlockByNumber"] = get_logs, get_block
                node.rpc["eth_blockNumber"] = block_number
                await node.notify("logs", old)
                await node.notify("newHeads", header(101))
                await until(lambda: trade_ids(sink) == [_tid(old)], "the old trade")
                await node.notify("newHeads", header(102))  # the old 102
                # the reorg of 101..102 as geth sends a side chain's one import
                await node.notify("logs", dict(old, removed=True))
                await node.notify("logs", live)
                await node.notify("newHeads", dict(header(102), hash=NEW_102,
                                                   parentHash=NEW_101))
                await until(lambda: trade_ids(sink) == [_tid(old), _tid(live)],
                            "the new trade live")
                await until(lambda: shard.counters["recheck_node_behind"] >= 1
                            or shard.counters["reorgs"] >= 1, "a re-check tried")
                caught_up[0] = True  # the HTTP node follows the reorg
                await until(lambda: shard.counters["reorgs"] >= 1, "re-checked", timeout=60)
                await node.notify("newHeads", dict(header(103), parentHash=NEW_102))
                await until(lambda: cursor_at_least(mon, 102), "synced past 102", timeout=60)
            await run_monitor(node, tmp_path, body, speed=20.0)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(old)]
    assert [r["trade_id"] for r in history_rows(tmp_path, "delivered")] == [
        _tid(old), _tid(live)]
