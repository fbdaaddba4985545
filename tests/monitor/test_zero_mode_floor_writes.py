"""``reconcile_interval = 0``: the sweep floor (table ``sweep_floors``, a row per wallet)
is stored only where a restart's window (the ``RESTART_SWEEP_BLOCKS`` below the stored
cursor) would not reach it. Stored once the cursor was more than a sweep's blocks
(``ZERO_MODE_SWEEP_BLOCKS``) past it, a sweep still running at the next head (a slow
node; a firehose's 64 blocks are 8 eth_getLogs) wrote every wallet's row, and the head
after it deleted them: two writes of O(wallets) rows in the head handler every sweep."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hostile_node import HostileNode, held_get_logs
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import ZERO_MODE_SWEEP_BLOCKS, WalletMonitor


def test_a_sweep_a_few_heads_late_writes_no_floor(tmp_path: Path, monkeypatch: Any) -> None:
    writes: list[int | None] = []
    plain = Store.set_sweep_floors

    def counted(self: Store, wallets: Any, block: int | None) -> None:
        writes.append(block)
        plain(self, wallets, block)
    monkeypatch.setattr(Store, "set_sweep_floors", counted)
    opts = {"reconcile_interval": 0, "explorer_overlap_blocks": 1, "head_jump_slack": 1000,
            "backfill_chunk_blocks": 50}
    out: dict[str, Any] = {}

    async def go() -> None:
        async with HostileNode() as node:
            release, asked = asyncio.Event(), []

            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                # the sweep's first chunk slow: answered 3 heads after it was due
                node.rpc["eth_getLogs"] = held_get_logs(node, release, asked,
                                                        hold=lambda a, b: a == 100)
                due = 100 + ZERO_MODE_SWEEP_BLOCKS
                for n in range(101, due + 10):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
                    if n == due:
                        await until(lambda: (100, 149) in asked, "the sweep's ask")
                    if n == due + 3:
                        release.set()
                        await until(lambda: (shard._swept_to or 0) >= due - 1, "the sweep")
                out["swept"] = shard._swept_to
            await run_monitor(node, tmp_path, body, **opts)
    asyncio.run(go())
    assert out["swept"] >= 163, out
    assert writes == [], writes  # (the restart window reaches 128 blocks below)
