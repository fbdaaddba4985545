"""``reconcile_interval = 0`` and the feed's fallback (the heads stale, the explorer
poller running; not a quota fill): a live log lost below the cursor (it did not decode)
is the zero mode's sweep's to fetch, from the node. When the node answers, that is at
once (not at the hand-back). When it fails too (one provider's WebSocket and HTTP down
together), the poller polled from the cursor, above the block: the trade waited for the
node. The cursors go back below it (as for a quota fill, 7e44a5a) and the explorer
fills it; delivered once either way."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from hostile_node import HostileNode, RpcErr, explorer_from_logs
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def _explorer(node: HostileNode) -> None:
    explorer_from_logs(node)


@pytest.mark.parametrize("node_down", [False, True])
def test_a_live_log_lost_below_the_cursor_in_a_fallback_is_fetched_at_once(
        tmp_path: Path, node_down: bool) -> None:
    trade = order_filled(block=103, tx=3)
    cut = dict(trade, data=trade["data"][:40])  # not the 7 words of a V2 OrderFilled
    got: list[str] = []
    waited: list[float] = []

    async def go() -> None:
        async with HostileNode() as node:
            _explorer(node)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                for n in range(101, 108):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
                # the heads stop (stale): the feed falls back to the explorer
                await until(lambda: shard._poller is not None and not shard._quota_fill,
                            "the fallback")
                if node_down:
                    node.rpc["eth_getLogs"] = lambda _p: RpcErr(-32000, "internal error")
                node.logs.append(trade)
                t0 = time.monotonic()
                await node.notify("logs", cut)  # late, and garbled on the way
                await until(lambda: shard.counters["live_undecodable"] >= 1,
                            "the cut log counted")
                await until(lambda: len(sink.events) >= 1, "block 103's trade", timeout=10.0)
                waited.append(time.monotonic() - t0)
                poller = shard._poller
                assert poller is not None  # not at the hand-back: still polling
                # both paths done with block 103: two more rounds, the cursor above it
                polls = poller.polls
                await until(lambda: poller.polls >= polls + 2 and cursor_at_least(mon, 105)
                            and not shard._sweep_due, "the explorer read past it")
                got.extend(e.trade_id for e in sink.events)
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=1, staleness_blocks=2,
                              fallback_after=2.0)
    asyncio.run(go())
    assert len(got) == 1, got
    assert waited[0] < 2.0, waited  # (the hand-back never came: the heads stayed stale)
