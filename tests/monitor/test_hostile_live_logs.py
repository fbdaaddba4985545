"""Live ``logs`` notifications a node or a proxy in front of it mangles, and what the
monitor makes of them (a hostile node on loopback, as in test_reliability.py). No fixed
sleeps as synchronisation.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostile_node import HostileNode
from monitor_helpers import OTHER, order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import ZERO_MODE_SWEEP_BLOCKS, WalletMonitor


def test_a_watched_wallet_s_live_log_that_does_not_decode_has_its_block_fetched(
        tmp_path: Path) -> None:
    """A proxy cuts a live log short (its data one hex digit short, an odd length): the
    decoder refuses it, the pipeline counts a decode error, and with
    ``reconcile_interval = 0`` the heads move the cursor past its block: the node's own
    copy of the log (eth_getLogs has it whole) is never asked for, the trade is lost. A
    live log of a watched maker that does not decode should make its block due a sync,
    as a live log dropped from a full queue does (``_live_lost``)."""
    live = order_filled(block=101, tx=7)

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100
            node.logs.append(live)  # the node has it whole: a sync over 101 finds it

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                await node.notify("logs", dict(live, data=live["data"][:-1]))
                await until(lambda: mon.pipeline.counters["decode_errors"] >= 1,
                            "the cut log refused")
                for n in (101, 102, 103):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 102), "cursor moved by heads")
                await until(lambda: len(sink.events) == 1, "the trade of block 101",
                            timeout=5.0)
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())


def test_another_makers_undecodable_live_log_makes_no_block_due(tmp_path: Path) -> None:
    """Only a log that may be a watched maker's makes its block due a sync: one whose
    topics name another maker is counted as a decode error and left."""
    other = order_filled(block=101, tx=8, wallet=OTHER)
    mine = order_filled(block=101, tx=9)

    async def go() -> tuple[int, int]:
        async with HostileNode() as node:
            node.head = 100
            seen: dict[str, int] = {}

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                await node.notify("logs", dict(other, data=other["data"][:-1]))
                await until(lambda: mon.pipeline.counters["decode_errors"] >= 1,
                            "the other maker's cut log refused")
                seen["other"] = shard.counters["live_undecodable"]
                await node.notify("logs", dict(mine, data=mine["data"][:-1]))
                await until(lambda: mon.pipeline.counters["decode_errors"] >= 2,
                            "the watched maker's cut log refused")
                seen["mine"] = shard.counters["live_undecodable"]
            await run_monitor(node, tmp_path, body)
            return seen["other"], seen["mine"]

    assert asyncio.run(go()) == (0, 1)


def test_a_logs_notification_that_is_no_log_object_has_the_blocks_from_the_head_fetched(
        tmp_path: Path) -> None:
    """A proxy replaces a live log with a string: which block it was is not known, so the
    heads may not move the cursor past the head it came at before a sync has fetched from
    there (before: counted as a decode error only, and the trade of block 101 was lost)."""
    live = order_filled(block=101, tx=7)

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100
            node.logs.append(live)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                await node.notify("logs", "0x" + "ab" * 40)
                await until(lambda: mon.pipeline.counters["decode_errors"] >= 1,
                            "the string refused")
                for n in (101, 102, 103):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 102), "cursor moved by heads")
                await until(lambda: len(sink.events) == 1, "the trade of block 101",
                            timeout=5.0)
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())


def test_an_undecodable_live_log_behind_the_heads_cursor_is_fetched_at_once(
        tmp_path: Path) -> None:
    """``reconcile_interval = 0``: the heads moved the cursor past block 101 while its live
    log still waited for delivery (the delivery task behind); the log then did not
    decode. A sync starts at the cursor, above it: only the sweep 64 blocks later fetched
    the trade (late by ~2 minutes on Polygon). The sweep now runs from that block at once."""
    live = order_filled(block=101, tx=7)

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100
            node.logs.append(live)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                gate = asyncio.Event()
                on_logs = mon.pipeline.on_logs

                async def held(entries, source, **kw):  # type: ignore[no-untyped-def]
                    if source == "ws":
                        await gate.wait()  # the delivery task behind the heads
                    return await on_logs(entries, source, **kw)

                mon.pipeline.on_logs = held  # type: ignore[method-assign]
                await node.notify("logs", dict(live, data=live["data"][:-1]))
                for n in (101, 102, 103, 104):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 103), "cursor moved by heads")
                gate.set()
                await until(lambda: mon.pipeline.counters["decode_errors"] >= 1,
                            "the cut log refused")
                await until(lambda: len(sink.events) == 1, "the trade of block 101",
                            timeout=5.0)
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())


def test_an_undecodable_live_log_of_block_1_sweeps_no_further_than_the_sweeps_do(
        tmp_path: Path) -> None:
    """A cut live log of a watched maker that names block 1 (a hostile node): the sweep it
    makes due starts at most ZERO_MODE_SWEEP_BLOCKS below the cursor, never at block 0
    (a sweep of the whole chain, ~80 million blocks of eth_getLogs on Polygon)."""
    cut = order_filled(block=1, tx=7)

    async def go() -> list[int]:
        async with HostileNode() as node:
            node.head = 200

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), 30.0)
                await node.new_head(200)
                await until(lambda: cursor_at_least(mon, 199), "first sync")
                for n in (201, 202, 203):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, 202), "cursor moved by heads")
                asked = len(node.requests)
                await node.notify("logs", dict(cut, data=cut["data"][:-1]))
                await until(lambda: mon.shards[0].counters["live_undecodable"] >= 1,
                            "the cut log refused")
                await until(lambda: not mon.shards[0]._sweep_due, "the sweep run")
                del node.requests[:asked]
            await run_monitor(node, tmp_path, body)
            return [int(p["fromBlock"], 16) for r in node.requests
                    if isinstance(r, dict) and r.get("method") == "eth_getLogs"
                    for p in r["params"]]

    froms = asyncio.run(go())
    assert froms, "the sweep asked nothing"
    assert min(froms) >= 202 - ZERO_MODE_SWEEP_BLOCKS, froms
