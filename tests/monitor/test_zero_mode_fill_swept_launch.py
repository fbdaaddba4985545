"""``reconcile_interval = 0``, a quota fill, and ``_swept_to`` below the wallets' launch
point: a live log lost below the cursor (one that says a block far below, a garbled
field) lowers ``_swept_to`` by up to ``ZERO_MODE_SWEEP_BLOCKS``, under the launch point
when the monitor started less than that ago. The fill rewinds the cursors no lower than
the launch point (nothing below it was ever watched), so the poller read from there, and
``_poller_read`` took every read for one above a hole (``after > _swept_to``):
``_swept_to`` never moved for the whole fill, and once the quota was back the first
sweep fetched every block of the fill again (1.3 M for a month) - what fdfd326 meant to
end. ``_swept_to`` goes no lower than the launch point."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostile_node import HostileNode, explorer_from_logs, spend_quota
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until
from test_zero_mode_fill_swept import node_calls_once_the_quota_is_back

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def test_a_lost_log_below_the_launch_does_not_hold_the_fill_sweep(tmp_path: Path) -> None:
    spent = {"on": False}
    asked: list[tuple[int, int]] = []
    out: list[tuple[int, int]] = []
    swept: list[int | None] = []

    async def go() -> None:
        async with HostileNode() as node:
            spend_quota(node, spent, asked=asked)
            explorer_from_logs(node)

            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                launch = shard._launch_floor()
                assert launch is not None and launch <= 99
                for n in range(101, 121):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
                spent["on"] = True
                # a watched log whose fields came garbled: block 0, data cut short
                trade = order_filled(block=0, tx=9)
                await node.notify("logs", dict(trade, data=trade["data"][:40]))
                await until(lambda: shard._poller is not None, "the quota fill")
                node.head = 300
                await node.new_head(300)
                await until(lambda: cursor_at_least(mon, 295), "the explorer fills the gap")
                swept.append(shard._swept_to)
                out.extend(await node_calls_once_the_quota_is_back(
                    node, mon, spent, asked, range(301, 306)))
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=1, head_jump_slack=1000,
                              backfill_chunk_blocks=10)
    asyncio.run(go())
    assert swept[0] is not None and swept[0] >= 290, swept
    # the node's calls once the quota is back: none for the blocks the explorer read
    assert all(a >= 290 for a, _b in out), out

