"""``reconcile_interval = 0``: the prune's hold (``WsShard.sweep_floor``) is never below
the cursor less ``ZERO_MODE_HOLD_BLOCKS``, and a late sweep starts there. The cap rose
with the heads while the sweep's chunk was being asked (a slow node): the rows of the
blocks of that chunk below the new cap were pruned, and its answer sent the trades the
feed had delivered there to the bot again. A chunk being read holds its blocks."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode, fail_get_logs, held_get_logs
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor import config, wallet_monitor
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor, WsShard


@pytest.mark.slow  # (~7 s: 210 heads)
def test_the_chunk_being_read_holds_past_the_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    monkeypatch.setattr(wallet_monitor, "ZERO_MODE_HOLD_BLOCKS", 100)
    live = order_filled(block=205, tx=5)
    newer = order_filled(block=290, tx=6)  # (205's id out of the pipeline's memory)
    broken = {"on": False}
    out: dict[str, Any] = {}

    async def go() -> None:
        async with HostileNode() as node:
            node.logs.extend([live, newer])
            fail_get_logs(node, broken)
            release, asked = asyncio.Event(), []
            node.rpc["eth_getLogs"] = held_get_logs(node, release, asked,
                                                    hold=lambda a, b: a <= 205 <= b)

            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                broken["on"] = True  # the node's sweeps fail from here
                for n in range(101, 311):
                    node.head = n
                    if n == 300:  # the node back (this head makes the sweep due again)
                        broken["on"] = False
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
                    if n in (206, 291):
                        await node.notify("logs", live if n == 206 else newer)
                        await until(lambda n=n: mon.pipeline.counters["delivered"] ==
                                    (1 if n == 206 else 2), "the live trade")
                    if n == 300:  # the late sweep from 299 less the cap
                        await until(lambda: any(a <= 205 <= b for a, b in asked),
                                    "the sweep's first chunk")
                        # (199..248: from the cursor less 100)
                        out["chunk"] = next(r for r in asked if r[0] <= 205 <= r[1])
                hold = mon.pipeline.prune_hold
                out["hold"] = None if hold is None else hold()
                mon.pipeline._next_dedup_prune_ns = 0  # the pipeline's periodic prune
                await mon.pipeline.redeliver()
                release.set()
                await until(lambda: (shard._swept_to or 0) >= 299 and not shard._sweep_due,
                            "the sweep")
                out["delivered"] = mon.pipeline.counters["delivered"]
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=1, head_jump_slack=1000,
                              backfill_chunk_blocks=50, dedup_retention_blocks=50,
                              dedup_capacity=1)
    asyncio.run(go())
    assert out["hold"] == out["chunk"][0] < 205, out
    assert out["delivered"] == 2, out  # block 205's trade not sent to the bot again


@pytest.mark.slow  # (~7 s: 210 heads)
def test_the_sweep_asking_the_node_head_holds_past_the_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same before the sweep's first chunk: its eth_blockNumber (the node's head,
    where it stops) answered slowly while the heads raised the cap over its start."""
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    monkeypatch.setattr(wallet_monitor, "ZERO_MODE_HOLD_BLOCKS", 100)
    live = order_filled(block=205, tx=5)
    newer = order_filled(block=290, tx=6)  # (205's id out of the pipeline's memory)
    broken, held = {"on": False}, {"on": False}
    out: dict[str, Any] = {}

    async def go() -> None:
        async with HostileNode() as node:
            node.logs.extend([live, newer])
            fail_get_logs(node, broken)
            release, asked = asyncio.Event(), []
            plain = WsShard._node_block_number

            async def block_number(self: WsShard) -> int:
                if held["on"] and sys._getframe(1).f_code.co_name == "_sweep_passed":
                    asked.append(self._swept_to)
                    await release.wait()
                return await plain(self)
            monkeypatch.setattr(WsShard, "_node_block_number", block_number)

            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                broken["on"] = True  # the node's sweeps fail from here
                for n in range(101, 311):
                    node.head = n
                    if n == 300:  # the node back (this head makes the sweep due again)
                        held["on"], broken["on"] = True, False
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
                    if n in (206, 291):
                        await node.notify("logs", live if n == 206 else newer)
                        await until(lambda n=n: mon.pipeline.counters["delivered"] ==
                                    (1 if n == 206 else 2), "the live trade")
                    if n == 300:  # the late sweep from 299 less the cap
                        await until(lambda: bool(asked), "the sweep's head ask")
                        out["start"] = asked[0]  # (198: the cursor less 100, less 1)
                hold = mon.pipeline.prune_hold
                out["hold"] = None if hold is None else hold()
                mon.pipeline._next_dedup_prune_ns = 0  # the pipeline's periodic prune
                await mon.pipeline.redeliver()
                release.set()
                await until(lambda: (shard._swept_to or 0) >= 299 and not shard._sweep_due,
                            "the sweep")
                out["delivered"] = mon.pipeline.counters["delivered"]
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=1, head_jump_slack=1000,
                              backfill_chunk_blocks=50, dedup_retention_blocks=50,
                              dedup_capacity=1)
    asyncio.run(go())
    assert out["hold"] == out["start"] + 1, out
    assert out["delivered"] == 2, out  # block 205's trade not sent to the bot again
