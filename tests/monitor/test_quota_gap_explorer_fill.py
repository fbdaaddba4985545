"""The HTTP node's monthly quota spent (Alchemy "Monthly capacity limit exceeded") while
the WebSocket feed works: a gap in the feed (a head that skips blocks, as after a
reconnect) is filled from the explorer while the node refuses, each trade once, and the
node takes over again once it answers. Before, the gap's trades waited for the node:
the sync asked it again every backoff_max, for the rest of the month."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from hostile_node import HostileNode, explorer_from_logs, spend_quota
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, history_rows, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def test_a_gap_while_the_node_quota_is_spent_is_filled_from_the_explorer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # speed 20: a block interval is 0.1 s, backoff_max (1 s) 0.05 s, a poll 0.05 s
    caplog.set_level(logging.INFO)
    spent = {"on": False}
    refused: list[int] = []
    gap = order_filled(block=105, tx=5)

    async def go() -> None:
        async with HostileNode() as node:
            spend_quota(node, spent, refused=refused)
            explorer_from_logs(node)

            async def heads() -> None:  # the feed stays healthy: a head a block interval
                while True:
                    await asyncio.sleep(0.1)
                    node.head += 1
                    await node.new_head(node.head)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                spent["on"] = True  # the month's quota is used up
                node.logs.append(gap)  # mined while the feed was away
                node.head = 110
                await node.new_head(110)  # a gap the node refuses to backfill
                pump = asyncio.create_task(heads())
                try:
                    await filled(mon, sink)
                finally:
                    pump.cancel()

            async def filled(mon: WalletMonitor, sink: MemorySink) -> None:
                await until(lambda: len(refused) >= 1, "the backfill refused")
                # the explorer fills it while the node refuses (within seconds, not a month)
                await until(lambda: len(sink.events) >= 1, "the gap's trade", timeout=10.0)
                assert spent["on"] and len(sink.events) == 1
                shard = mon.shards[0]
                assert shard._poller is not None  # the explorer fills
                # the quota back: the node takes over, the poller stops, nothing twice
                spent["on"] = False
                top = node.head
                await until(lambda: shard._poller is None and cursor_at_least(mon, top),
                            "handed back to the node", timeout=10.0)
                assert len(sink.events) == 1
                assert shard.fallback.state.value == "live"  # the feed never fell back

            await run_monitor(node, tmp_path, body, reconcile_interval=30.0)
    asyncio.run(go())
    # quota_fill rows (not fallback rows: the feed never fell back)
    fills = [r for r in history_rows(tmp_path, "quota_fill") if "quota" in r.get("cause", "")]
    assert fills and fills[0]["active"] is True and fills[-1]["active"] is False
    assert not history_rows(tmp_path, "fallback")
    # one quota alert, saying the explorer fills; the log says so too
    alerts = [r.getMessage() for r in caplog.records if "ALERT quota_exhausted" in r.getMessage()]
    assert len(alerts) == 1 and "the explorer fills" in alerts[0]
    assert any("the explorer fills the gaps" in r.getMessage() for r in caplog.records)
