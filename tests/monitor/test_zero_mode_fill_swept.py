"""``reconcile_interval = 0`` and a long quota fill (the HTTP node's quota spent, the
explorer polling for the feed's gaps): nothing moved ``_swept_to`` over the blocks the
explorer poller read, so when the quota was back the zero mode's first sweep fetched
every block since the quota ran out (1.3 M blocks for a month) against the fresh quota.
The blocks the poller read contiguously from ``_swept_to`` (only those: never past one
it failed on) count as swept."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hostile_node import HostileNode, explorer_from_logs, spend_quota
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor import wallet_monitor
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor, WsShard


def _scripted(node: HostileNode, spent: dict[str, bool],
              asked: list[tuple[int, int]]) -> None:
    """The node refuses eth_getLogs while ``spent`` (the ranges it answers are kept in
    ``asked``); the explorer answers from node.logs."""
    spend_quota(node, spent, asked=asked)
    explorer_from_logs(node)


async def node_calls_once_the_quota_is_back(
        node: HostileNode, mon: WalletMonitor, spent: dict[str, bool],
        asked: list[tuple[int, int]], heads: range) -> list[tuple[int, int]]:
    """The quota is back and the heads go on (``heads``): the node's eth_getLogs ranges
    from then until it has taken over from the fill and its sweep is done."""
    spent["on"] = False
    asked.clear()
    for n in heads:
        node.head = n
        await node.new_head(n)
        await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
    shard = mon.shards[0]
    await until(lambda: shard._poller is None, "the node takes over")
    await until(lambda: not shard._sweep_due, "the sweep done")
    return list(asked)


def _first_sweep_after_the_fill(tmp_path: Path) -> list[tuple[int, int]]:
    """First sync at 100; the quota is spent, a head skips to 300 (a gap the explorer
    fills); the quota is back and the heads go on: the node's eth_getLogs ranges from
    then on."""
    spent = {"on": False}
    asked: list[tuple[int, int]] = []
    out: list[tuple[int, int]] = []

    async def go() -> None:
        async with HostileNode() as node:
            _scripted(node, spent, asked)

            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                spent["on"] = True
                node.head = 300
                await node.new_head(300)
                await until(lambda: shard._poller is not None, "the quota fill")
                await until(lambda: cursor_at_least(mon, 299), "the explorer fills the gap")
                out.extend(await node_calls_once_the_quota_is_back(
                    node, mon, spent, asked, range(301, 306)))
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=1, head_jump_slack=1000,
                              backfill_chunk_blocks=10)
    asyncio.run(go())
    return out


def test_the_blocks_the_explorer_read_are_not_swept_again(tmp_path: Path) -> None:
    asked = _first_sweep_after_the_fill(tmp_path)
    # the node's calls once the quota is back: none for 100..299 again, chunk by chunk
    assert all(a >= 295 for a, _b in asked), asked



def _shard(swept: int, wallets: list[str]) -> Any:
    return SimpleNamespace(s=SimpleNamespace(reconcile_interval=0), _swept_to=swept,
                           _fill_read={}, wallets=wallets, counters=Counter())


def test_only_what_every_wallet_read_without_a_hole_counts_as_swept() -> None:
    shard = _shard(99, ["0xa", "0xb"])
    WsShard._poller_read(shard, "0xa", 99, 150)
    assert shard._swept_to == 99  # 0xb not read yet
    WsShard._poller_read(shard, "0xb", 99, 120)
    assert shard._swept_to == 120
    WsShard._poller_read(shard, "0xb", 130, 160)  # 121..130 not read (a cursor moved on)
    assert shard._swept_to == 120
    WsShard._poller_read(shard, "0xb", 120, 140)
    assert shard._swept_to == 140
    shard.s.reconcile_interval = 30  # the sweeps are the zero mode's only
    WsShard._poller_read(shard, "0xb", 140, 200)
    WsShard._poller_read(shard, "0xa", 150, 200)
    assert shard._swept_to == 140


def test_a_fill_without_a_gap_reads_what_the_heads_passed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # no gap: the heads move the cursor over every block, the sweep 64 blocks on is
    # refused and starts the fill. Its rounds read from the cursor, above every block
    # the heads passed: none was read, and the first sweep once the quota was back
    # fetched them all. The fill's idle round every 10 simulated s (0.5 s at speed 20)
    monkeypatch.setattr(wallet_monitor, "QUOTA_FILL_IDLE_S", 10.0)
    spent = {"on": False}
    asked: list[tuple[int, int]] = []
    out: list[tuple[int, int]] = []

    async def go() -> None:
        async with HostileNode() as node:
            _scripted(node, spent, asked)

            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                spent["on"] = True
                for n in range(101, 230):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: shard.head == n, f"head {n}")
                assert shard._poller is not None  # the refused sweep started the fill
                await until(lambda: (shard._swept_to or 0) >= 180,
                            "the fill's rounds read what the heads passed", timeout=5.0)
                out.extend(await node_calls_once_the_quota_is_back(
                    node, mon, spent, asked, range(230, 234)))
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=4, head_jump_slack=1000,
                              backfill_chunk_blocks=10)
    asyncio.run(go())
    assert all(a >= 170 for a, _b in out), out
