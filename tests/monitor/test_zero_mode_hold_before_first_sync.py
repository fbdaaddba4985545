"""``reconcile_interval = 0``, a restart whose heads move the cursor on before its first
sync ran (the stored cursor a block below the feed's first head, the sync held: the
node's HTTP side slow or failing the restart's check). The first sync's sweep starts at
the cursor the heads moved on from (``_unswept_from``), but the prune's hold
(``WsShard.sweep_floor``) was the restart window's start, which rises with the cursor:
the dedup rows of the trades the feed delivered between were pruned once the cursor was
the retention past them, and the sweep sent them to the bot again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor import config
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor, WsShard


@pytest.mark.slow  # (~4 s: 200 heads)
def test_heads_before_the_first_sync_hold_the_prune(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    opts = {"reconcile_interval": 0, "explorer_overlap_blocks": 1, "head_jump_slack": 1000,
            "backfill_chunk_blocks": 50, "dedup_retention_blocks": 50,
            "dedup_capacity": 1}
    live = order_filled(block=105, tx=5)
    newer = order_filled(block=250, tx=6)  # (105's id out of the pipeline's memory)
    out: dict[str, Any] = {}

    async def go() -> None:
        async with HostileNode() as node:
            async def first(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.head = 101
                await node.new_head(101)
                await until(lambda: cursor_at_least(mon, 100), "head 101")
            await run_monitor(node, tmp_path, first, **opts)

        gate = asyncio.Event()
        plain_sync = WsShard.sync

        async def held_sync(self: WsShard) -> int:
            await gate.wait()  # (the first sync held: the heads come first)
            return await plain_sync(self)
        monkeypatch.setattr(WsShard, "sync", held_sync)
        async with HostileNode() as node:  # the restart: its first head 101
            node.logs.extend([live, newer])

            async def second(mon: WalletMonitor, _sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                shard = mon.shards[0]
                for n in range(101, 301):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: shard.head == n, f"head {n}")
                    if n > 101:
                        await until(lambda n=n: cursor_at_least(mon, n - 1), f"cursor {n}")
                    if n in (106, 251):
                        await node.notify("logs", live if n == 106 else newer)
                        await until(lambda n=n: mon.pipeline.counters["delivered"] ==
                                    (1 if n == 106 else 2), "the live trade")
                hold = mon.pipeline.prune_hold
                out["hold"] = None if hold is None else hold()
                mon.pipeline._next_dedup_prune_ns = 0  # the pipeline's periodic prune
                await mon.pipeline.redeliver()
                out["pruned"] = mon.pipeline.counters["dedup_pruned"]
                gate.set()
                await until(lambda: shard._swept_to is not None and shard._swept_to >= 299
                            and shard._restart_window is None and not shard._sweep_due,
                            "the first sweep")
                out["delivered"] = mon.pipeline.counters["delivered"]
            await run_monitor(node, tmp_path, second, **opts)
    asyncio.run(go())
    assert out["hold"] is not None and out["hold"] <= 101, out
    assert out["delivered"] == 2, out  # block 105's trade not sent to the bot again
