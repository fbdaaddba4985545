"""eth_getLogs answers a provider's bug can make (a cache or load balancer in front of the
node): a log with ``removed: true`` (eth_getLogs never sends one: only the subscription
and filter changes do) and logs of blocks outside the range asked. Both were
delivered (findings of the provider review, H32); ``WsShard._logs_of`` refuses them as
bad input now, as the explorer client does for its rows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def test_a_removed_log_in_an_eth_get_logs_answer_retracts_nothing(tmp_path: Path) -> None:
    """Block 105's trade is delivered by a sync; a later eth_getLogs answer (blocks
    110..119) carries the same log with ``removed: true``: the trade was retracted (the
    bot told a real trade was reorged out). Nothing showed a reorg: no head, no hash."""
    live = order_filled(block=105, tx=7)

    async def go() -> tuple[list[str], int]:
        async with HostileNode() as node:
            node.head = 100
            node.logs.append(live)
            kinds: list[str] = []

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.head = 110
                await node.new_head(110)
                await until(lambda: len(sink.events) == 1 and cursor_at_least(mon, 109),
                            "block 105's trade delivered")
                node.rpc["eth_getLogs"] = lambda _p: [dict(live, removed=True)]
                node.head = 120
                await node.new_head(120)
                await until(lambda: cursor_at_least(mon, 119), "blocks 110..119 synced")
                kinds.extend(e.kind for e in sink.events)
            mon = await run_monitor(node, tmp_path, body)
            return kinds, mon.pipeline.counters["retracted"]
    kinds, retracted = asyncio.run(go())
    assert kinds == ["trade"] and retracted == 0, (kinds, retracted)


@pytest.mark.parametrize("block", [97, 200])
def test_a_log_outside_the_range_asked_is_not_delivered(block: int, tmp_path: Path) -> None:
    """The sync of blocks 100..109 is answered with a log of block 97 (a range synced
    already: a trade of long ago, its dedup id pruned, goes to the bot again) or of block
    200 (no such block yet): either was delivered as a new trade."""
    stray = order_filled(block=block, tx=9)

    async def go() -> list[Any]:
        async with HostileNode() as node:
            node.head = 100
            events: list[Any] = []

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.rpc["eth_getLogs"] = lambda p: (
                    [stray] if int(p[0]["fromBlock"], 16) >= 100 else [])
                node.head = 110
                await node.new_head(110)
                await until(lambda: cursor_at_least(mon, 109), "blocks 100..109 synced")
                events.extend(sink.events)
            await run_monitor(node, tmp_path, body)
            return events
    assert asyncio.run(go()) == []
