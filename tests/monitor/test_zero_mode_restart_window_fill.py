"""``reconcile_interval = 0``, a restart straight into a quota fill (the HTTP node's quota
still spent): the restart window (the ``RESTART_SWEEP_BLOCKS`` below the stored cursor,
which the run before's heads passed unswept) is the node's sweep's, which the spent
quota refuses, and the fill read from the cursor, above it: a trade the run before's feed
lost there waited for the quota (a month for a monthly one; past the dedup retention it
is left, said). The explorer now reads the window in the fill (``_fill_from_swept``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode, explorer_from_logs, spend_quota
from monitor_helpers import OTHER, WALLET, order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor import config
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

KEEP = 100  # dedup_retention_blocks (the floor of 1024 lowered for a short test)


def test_a_restart_into_a_fill_has_the_explorer_read_the_window(tmp_path: Path) -> None:
    spent = {"on": False}
    got: list[str] = []
    opts = {"reconcile_interval": 0, "explorer_overlap_blocks": 1, "head_jump_slack": 1000}
    lost = order_filled(block=110, tx=3)  # the feed never sent it

    async def go() -> None:
        async with HostileNode() as node:
            async def first(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.logs.append(lost)
                for n in range(101, 121):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
            await run_monitor(node, tmp_path, first, **opts)

        async with HostileNode() as node:  # the restart: the quota spent
            node.logs.append(lost)
            spend_quota(node, spent)
            explorer_from_logs(node)
            spent["on"] = True

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                shard = mon.shards[0]
                node.head = 125
                await node.new_head(125)
                await until(lambda: shard._poller is not None, "the quota fill")
                for n in range(126, 131):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: shard.head == n, f"head {n}")
                await until(lambda: len(sink.events) >= 1, "block 110's trade", timeout=5)
                got.extend(e.trade_id for e in sink.events)
                assert spent["on"]  # (the explorer's, the node refusing throughout)
            await run_monitor(node, tmp_path, second, **opts)
    asyncio.run(go())
    assert len(got) == 1, got


@pytest.mark.slow  # (~3 s: three runs, 160 heads)
def test_a_wallet_far_ahead_is_not_read_again_below_its_retention(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # OTHER was off the list while WALLET's cursor went on (its trade at 150 delivered,
    # its id pruned since): the restart window is below OTHER's cursor, and the fill that
    # reads it rewinds no wallet below its own cursor less the retention
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    spent = {"on": False}
    out: dict[str, Any] = {}
    opts: dict[str, Any] = {"reconcile_interval": 0, "explorer_overlap_blocks": 1,
                            "head_jump_slack": 1000, "dedup_retention_blocks": KEEP,
                            "dedup_capacity": 1}
    lost = order_filled(wallet=OTHER, block=110, tx=3)  # the feed never sent it
    early, late = order_filled(block=150, tx=4), order_filled(block=200, tx=5)

    async def go() -> None:
        async with HostileNode() as node:
            async def first(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.logs.append(lost)
                for n in range(101, 121):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
            await run_monitor(node, tmp_path, first, wallets=[WALLET, OTHER], **opts)

        async with HostileNode() as node:  # OTHER off the list
            node.logs.extend([early, late])
            node.head = 121

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                for n in range(121, 261):
                    node.head = n
                    await node.new_head(n)
                    for live in (early, late):
                        if n == int(live["blockNumber"], 16) + 1:
                            await node.notify("logs", live)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
                await until(lambda: len(sink.events) == 2, "the two live trades")
                assert mon.store is not None
                mon.store.prune_delivered(KEEP)  # (150's id: below 259 - KEEP)
            await run_monitor(node, tmp_path, second, **opts)

        async with HostileNode() as node:  # OTHER back on the list, the quota spent
            node.logs.extend([lost, early, late])
            spend_quota(node, spent)
            _explorer_by_maker(node)
            spent["on"] = True

            async def third(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                shard = mon.shards[0]
                node.head = 265
                await node.new_head(265)
                await until(lambda: shard._poller is not None, "the quota fill")
                for n in range(266, 271):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: shard.head == n, f"head {n}")
                await until(lambda: len(sink.events) >= 1, "block 110's trade", timeout=5)
                await until(lambda: cursor_at_least(mon, 268), "the fill read")
                out["delivered"] = mon.pipeline.counters["delivered"]
            await run_monitor(node, tmp_path, third, wallets=[WALLET, OTHER], **opts)
    asyncio.run(go())
    assert out["delivered"] == 1, out  # OTHER's 110 only: not WALLET's 150 again


def _explorer_by_maker(node: HostileNode) -> None:
    """:func:`explorer_from_logs`, each getLogs answering only the maker it asks
    (``topic2``), as the explorer does."""
    every = node.logs

    def explorer(q: dict[str, str]) -> str:
        maker = q.get("topic2")
        node.logs = [x for x in every if maker is None or x["topics"][2] == maker.lower()]
        try:
            return answer(q)
        finally:
            node.logs = every
    explorer_from_logs(node)
    answer = node.explorer
    node.explorer = explorer
