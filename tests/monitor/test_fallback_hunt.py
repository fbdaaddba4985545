"""The explorer fallback against an explorer index far behind the node: what the poller
delivers from below the shard's cursor is judged against the node at the handback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HeldExplorer, RpcErr
from monitor_helpers import order_filled
from test_races import _tid
from test_races_fallback import _explorer_shows
from test_reliability import (
    cursor_at_least,
    first_sync,
    history_rows,
    replace_block,
    run_monitor,
    trade_ids,
    until,
)

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def test_an_orphan_the_fallback_delivered_below_the_shard_s_cursor_is_retracted(
        tmp_path: Path) -> None:
    """The feed has verified up to block 259; block 104 was replaced (the node has
    another). The provider goes down (its HTTP node too: no sync runs, the feed is
    silent); the explorer's index is stuck at 110 and still shows the old block 104's
    trade. Its head, far below the cursor, agrees with itself: the
    poller rewinds the cursor to it (a cursor past the explorer's head) and delivers the
    orphan. The index catches up and the poller's cursor goes back up to 244. At the
    handback, the fallback's deliveries were checked only from the shard's cursor when
    the fallback started (259) and the reconnect check looks 128 blocks below the
    cursor: the orphan stood for good. Every block the poller asked is checked now."""
    orphan = order_filled(block=104, tx=4)  # the old block 104

    async def go() -> None:
        async with HeldExplorer() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                shard = mon.shards[0]
                await first_sync(node, mon)
                node.explorer_head = 110
                for n in range(101, 261):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 259), "the cursor at 259")
                replace_block(node, 104)
                answer = node.answer
                down = True  # the provider is down, HTTP too; the feed goes silent

                def provider(method: str, params: list[Any]) -> Any:
                    return RpcErr(-32000, "unavailable") if down else answer(method, params)
                node.answer = provider  # type: ignore[method-assign]
                _explorer_shows(node, [orphan])
                await until(lambda: trade_ids(sink) == [_tid(orphan)],
                            "the fallback delivered the orphan", timeout=60)
                _explorer_shows(node, [])  # the index catches up
                node.explorer_head = 260
                await until(lambda: cursor_at_least(mon, 244), "the poller back at 244",
                            timeout=60)
                down = False
                await node.new_head(261)  # the feed is back
                await until(lambda: shard._poller is None and cursor_at_least(mon, 260),
                            "handed back")
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the orphan retracted", timeout=10)
            await run_monitor(node, tmp_path, body, speed=20.0, fallback_after=1,
                              staleness_blocks=20, explorer_overlap_blocks=16,
                              head_jump_slack=100)
    asyncio.run(go())
    assert [r["trade_id"] for r in history_rows(tmp_path, "retracted")] == [_tid(orphan)]
