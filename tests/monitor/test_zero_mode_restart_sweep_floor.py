"""``reconcile_interval = 0``, a restart in the middle of long sweep failures: the heads
moved the cursor over blocks no eth_getLogs fetched (the node's sweeps failing, the feed
healthy), and ``_swept_to`` was not stored: the restart's first sweep fetched only the
``RESTART_SWEEP_BLOCKS`` (128) below the stored cursor, and a trade the feed had lost
further below was lost with no word. The sweep floor is now stored while the cursor is
more than a sweep's blocks past it (table ``sweep_floors``, ``WsShard._store_floor``)
and the restart window reaches down to it, no lower than the cursor less
``dedup_retention_blocks`` (the run before's pruned ids): below that, the blocks left
unswept are said (alert ``zero_mode_unswept``), nothing sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode, RpcErr, fail_get_logs, held_get_logs
from monitor_helpers import WALLET, order_filled
from test_reliability import (
    cursor_at_least,
    first_sync,
    history_rows,
    run_monitor,
    trade_ids,
    until,
)

from monitor import config
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor, WsShard


def _floors(tmp_path: Path) -> list[tuple[str, int]] | None:
    """The stored sweep floors (None: no such table)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "state.db")) as db:
        try:
            return list(db.execute("SELECT wallet, block FROM sweep_floors"))
        except sqlite3.OperationalError:
            return None


def _restart_mid_failures(tmp_path: Path, keep: int) -> dict[str, Any]:
    """Run 1: first sync at 100, then the node's eth_getLogs fail while heads go to 300
    (the feed delivers block 105's trade live and loses block 110's). Run 2: the node
    answers; a head, the first sync and its restart window."""
    broken = {"on": False}
    out: dict[str, Any] = {}
    opts = {"reconcile_interval": 0, "explorer_overlap_blocks": 1, "head_jump_slack": 1000,
            "backfill_chunk_blocks": 50, "dedup_retention_blocks": keep,
            "dedup_capacity": 1}
    live = order_filled(block=105, tx=5)
    lost = order_filled(block=110, tx=7)  # never notified: the feed lost it

    async def go() -> None:
        async with HostileNode() as node:
            fail_get_logs(node, broken)
            node.logs.extend([live, lost])

            async def first(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                broken["on"] = True  # the node's sweeps fail from here
                for n in range(101, 301):
                    node.head = n
                    await node.new_head(n)
                    if n == 106:
                        await node.notify("logs", live)
                        await until(lambda: len(sink.events) == 1, "the live trade")
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
                out["swept_before"] = mon.shards[0]._swept_to
            await run_monitor(node, tmp_path, first, **opts)
        out["stored"] = _floors(tmp_path)  # (written as the heads passed it, not at stop)

        broken["on"] = False
        async with HostileNode() as node:  # the restart: the node answers
            fail_get_logs(node, broken)
            node.logs.extend([live, lost])

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                shard = mon.shards[0]
                node.head = 301
                await node.new_head(301)
                await until(lambda: cursor_at_least(mon, 300), "the first sync")
                # (its chunk with block 110 delivered once 128 blocks are, before too)
                await until(lambda: shard._restart_window is None and
                            shard.counters["zero_mode_swept_blocks"] >= 128,
                            "the restart window")
                out["ids"] = trade_ids(sink)
                out["delivered"] = mon.pipeline.counters["delivered"]
                node.head = 302
                await node.new_head(302)
                await until(lambda: cursor_at_least(mon, 301), "a head")
            await run_monitor(node, tmp_path, second, **opts)
    asyncio.run(go())
    out["floors"] = _floors(tmp_path)
    out["alerts"] = [r for r in history_rows(tmp_path, "alert")
                     if r.get("kind") == "zero_mode_unswept"]
    return out


@pytest.mark.slow  # (~4 s: 200 heads)
def test_a_restart_sweeps_from_the_stored_floor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    out = _restart_mid_failures(tmp_path, keep=400)  # (blocks 100..299)
    assert out["swept_before"] < 105, out  # (every sweep of run 1 failed)
    assert len(out["ids"]) == 1 and out["ids"][0].startswith("0x" + "0" * 63 + "7"), out
    assert out["delivered"] == 1, out  # block 105's trade not sent again
    assert out["alerts"] == [], out["alerts"]
    assert out["stored"] == [(WALLET, 99)], out  # run 1's floor: its first sync's
    assert out["floors"] == [], out  # the sweeps caught up: no row left


@pytest.mark.slow  # (~4 s: 200 heads)
def test_a_restart_past_the_retention_says_what_it_leaves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored floor further below the cursor than the retention (run 1's ids of the
    blocks below may be pruned): the window starts there, the blocks below are said."""
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    out = _restart_mid_failures(tmp_path, keep=100)  # (172..299)
    assert out["delivered"] == 0, out  # nothing sent twice; block 110's trade left
    assert len(out["alerts"]) == 1, out["alerts"]
    assert "before the restart" in out["alerts"][0]["text"], out["alerts"]


@pytest.mark.slow  # (~4 s: 320 heads)
def test_the_window_being_read_holds_the_prune(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The restart window's sweep took the window as it began: while its chunks were
    asked (a slow node) the prune held nothing there, and with the cursor moved on past
    the retention the ids of the trades the run before delivered in the window went; the
    window's chunk then sent them to the bot again. The blocks still to read hold it."""
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    opts = {"reconcile_interval": 0, "explorer_overlap_blocks": 1, "head_jump_slack": 1000,
            "backfill_chunk_blocks": 50, "dedup_retention_blocks": 100,
            "dedup_capacity": 1}
    live = order_filled(block=210, tx=5)  # (above 299 less the retention)
    newer = order_filled(block=400, tx=6)  # (210's id out of the pipeline's memory)
    out: dict[str, Any] = {}

    async def go() -> None:
        async with HostileNode() as node:
            node.logs.append(live)

            async def first(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                for n in range(101, 301):
                    node.head = n
                    await node.new_head(n)
                    if n == 211:
                        await node.notify("logs", live)
                        await until(lambda: len(sink.events) == 1, "the live trade")
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
            await run_monitor(node, tmp_path, first, **opts)

        async with HostileNode() as node:  # the restart: the window's first chunk slow
            node.logs.extend([live, newer])
            release, asked = asyncio.Event(), []
            node.rpc["eth_getLogs"] = held_get_logs(node, release, asked,
                                                    hold=lambda a, b: a == 172)

            async def second(mon: WalletMonitor, _sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                shard = mon.shards[0]
                for n in range(301, 421):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
                    if n == 301:
                        await until(lambda: (172, 221) in asked, "the window's ask")
                    if n == 401:
                        await node.notify("logs", newer)
                        await until(lambda: mon.pipeline.counters["delivered"] == 1,
                                    "the newer trade")
                hold = mon.pipeline.prune_hold
                out["hold"] = None if hold is None else hold()
                mon.pipeline._next_dedup_prune_ns = 0  # the pipeline's periodic prune
                await mon.pipeline.redeliver()
                release.set()
                await until(lambda: shard.counters["zero_mode_swept_blocks"] >= 128,
                            "the window read")
                out["delivered"] = mon.pipeline.counters["delivered"]
            await run_monitor(node, tmp_path, second, **opts)
    asyncio.run(go())
    assert out["delivered"] == 1, out  # block 210's trade not sent to the bot again
    assert out["hold"] == 172, out



@pytest.mark.slow  # (~4 s: 200 heads)
def test_a_head_before_the_first_sync_keeps_the_stored_floor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart's heads move the cursor on before its first sync ran (the stored cursor
    a block below the feed's first head): the stored floor, the run before's, was
    dropped (the cursor a block past the sweeps' start, _unswept_from) and a crash then
    lost it; it is kept until the window is read."""
    monkeypatch.setattr(config, "MIN_DEDUP_RETENTION_BLOCKS", 1)
    opts = {"reconcile_interval": 0, "explorer_overlap_blocks": 1, "head_jump_slack": 1000,
            "backfill_chunk_blocks": 50, "dedup_retention_blocks": 400,
            "dedup_capacity": 1}
    out: dict[str, Any] = {}

    async def go() -> None:
        async with HostileNode() as node:
            async def first(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                # the node's sweeps fail from here
                node.rpc["eth_getLogs"] = lambda _p: RpcErr(-32603, "internal error")
                for n in range(101, 301):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: cursor_at_least(mon, n - 1), f"head {n}")
            await run_monitor(node, tmp_path, first, **opts)
        out["stored"] = _floors(tmp_path)

        gate = asyncio.Event()
        plain_sync = WsShard.sync

        async def held_sync(self: WsShard) -> int:
            await gate.wait()  # (the first sync held: the heads come first)
            return await plain_sync(self)
        monkeypatch.setattr(WsShard, "sync", held_sync)
        async with HostileNode() as node:  # the restart
            node.head = 300

            async def second(mon: WalletMonitor, _sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 10)
                for n in (300, 301, 302):
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: mon.shards[0].head == n, f"head {n}")
                assert mon.store is not None
                out["moved"] = mon.store.cursor(WALLET)
                out["held"] = mon.store.sweep_floors()  # (a crash now: what is left)
                gate.set()
            await run_monitor(node, tmp_path, second, **opts)
    asyncio.run(go())
    assert out["stored"] == [(WALLET, 99)], out
    assert out["moved"] is not None and out["moved"].block > 299, out
    assert out["held"] == {WALLET: 99}, out  # (the window still to read)
