"""``reconcile_interval = 0``, the sweep floor (table ``sweep_floors``, a row per wallet)
across restarts that change the wallet list. Run 1 watches A; its sweeps fail, A's floor
is stored. Run 2 adds B (same shard), the sweeps still failing: the shard took A's row as
its stored floor and wrote none for B (only a lower floor was written). Run 3 removes A:
B's shard found no floor, its window reached only ``RESTART_SWEEP_BLOCKS`` below the
cursor, and a trade of B the feed lost in run 2 further below was lost with no word."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode, fail_get_logs
from monitor_helpers import OTHER, WALLET, order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, trade_ids, until

from monitor import config
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


@pytest.mark.slow  # (~8 s: 400 heads)
def test_a_wallet_added_mid_failures_gets_the_floor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    opts = {"reconcile_interval": 0, "explorer_overlap_blocks": 1, "head_jump_slack": 1000,
            "backfill_chunk_blocks": 50, "dedup_retention_blocks": 400}
    lost = order_filled(wallet=OTHER, block=350, tx=7)  # B's, never notified
    broken = {"on": False}
    out: dict[str, Any] = {}

    async def heads(node: HostileNode, mon: WalletMonitor, first: int, last: int) -> None:
        for n in range(first, last + 1):
            node.head = n
            await node.new_head(n)
            await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")

    async def go() -> None:
        async with HostileNode() as node:  # run 1: A; its sweeps fail
            fail_get_logs(node, broken)

            async def first(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                broken["on"] = True
                await heads(node, mon, 101, 300)
            await run_monitor(node, tmp_path, first, wallets=[WALLET], **opts)

        async with HostileNode() as node:  # run 2: A and B; the sweeps still fail
            fail_get_logs(node, broken)
            node.logs.append(lost)
            node.head = 300

            async def second(mon: WalletMonitor, _sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                await heads(node, mon, 300, 500)
                assert mon.store is not None
                out["floors"] = mon.store.sweep_floors()
            await run_monitor(node, tmp_path, second, wallets=[WALLET, OTHER],
                              start_block=None, **opts)

        broken["on"] = False
        async with HostileNode() as node:  # run 3: B alone; the node answers
            fail_get_logs(node, broken)
            node.logs.append(lost)
            node.head = 500

            async def third(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                shard = mon.shards[0]
                await node.new_head(500)
                await until(lambda: shard._swept_to is not None and
                            shard._restart_window is None and not shard._sweep_due and
                            shard.counters["zero_mode_swept_blocks"] >= 128, "the window")
                out["ids"] = trade_ids(sink)
            await run_monitor(node, tmp_path, third, wallets=[OTHER], start_block=None,
                              **opts)
    asyncio.run(go())
    assert OTHER in out["floors"], out  # (a crash in run 2: B's floor on disk)
    assert len(out["ids"]) == 1, out  # block 350's trade of B, lost live in run 2
