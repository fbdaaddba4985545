"""``reconcile_interval = 0``: a restart straight into a quota fill (the run before ended
in one, the HTTP node's quota still spent), ``explorer_overlap_blocks`` <= 2. The first
sync was refused before it set ``_swept_to`` (and the restart's sweep window), so the fill
ran with none: nothing counted the explorer's reads as swept (``_poller_read``), and once
a head moved the cursor (the poller left it at the explorer's head less 1 or 2, and the
explorer's node a block ahead of the feed: the next head is contiguous)
``_unswept_from`` marked where the heads began; every sync after was refused (a head
that skipped, the poller's cursor 2 below the head), and once the quota was back the
first sync took ``_swept_to`` there: the first sweep fetched every block of the fill
since the restart (a month: 1.3 M blocks against the fresh quota). Also with
``_swept_to`` set (no restart, or the fix's first half), the block a head moved the
cursor over was a hole in the explorer's reads when the heads stopped moving it before
the next sweep was due: ``_swept_to`` stayed below it for the rest of the fill. Now the
first sync sets them before it asks the node, and a head that finds the cursor behind
while the fill runs has the explorer read from ``_swept_to`` (``_fill_from_swept``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hostile_node import HostileNode, explorer_from_logs, spend_quota
from test_reliability import cursor_at_least, first_sync, run_monitor, until
from test_zero_mode_fill_swept import node_calls_once_the_quota_is_back

from monitor import wallet_monitor
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

LAST = 460  # the last head while the quota is spent
STOP_LAST = 380  # (the second test's)


@pytest.mark.parametrize("overlap", [1, 2])
def test_a_restart_into_a_fill_sweeps_only_what_the_fill_did_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overlap: int) -> None:
    monkeypatch.setattr(wallet_monitor, "QUOTA_FILL_IDLE_S", 10.0)
    spent = {"on": False}
    asked: list[tuple[int, int]] = []
    out: list[tuple[int, int]] = []
    stored: list[int] = []
    opts = {"reconcile_interval": 0, "explorer_overlap_blocks": overlap,
            "head_jump_slack": 1000, "backfill_chunk_blocks": 10}

    async def go() -> None:
        async with HostileNode() as node:
            spend_quota(node, spent, asked=asked)
            explorer_from_logs(node)

            async def first(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                spent["on"] = True
                node.head = 300
                await node.new_head(300)
                await until(lambda: shard._poller is not None, "the quota fill")
                await until(lambda: cursor_at_least(mon, 300 - overlap), "the fill read")
            await run_monitor(node, tmp_path, first, **opts)

        async with HostileNode() as node:  # the restart: the quota still spent
            spend_quota(node, spent, asked=asked)
            explorer_from_logs(node)

            async def second(mon: WalletMonitor, _sink: MemorySink) -> None:
                assert mon.store is not None
                stored.append(min(c.block for c in mon.store.cursors().values()))
                await asyncio.wait_for(node.subscribed.wait(), 10)
                shard = mon.shards[0]
                node.head = 400  # the explorer's node a block ahead of the feed
                await node.new_head(399)  # a gap: refused, the explorer fills
                await until(lambda: shard._poller is not None, "the quota fill")
                await until(lambda: cursor_at_least(mon, 400 - overlap), "the fill read")
                await node.new_head(400)  # contiguous: the head moves the cursor
                await until(lambda: cursor_at_least(mon, 399), "the head's move")
                for n in range(410, LAST + 1):  # then one that skipped, and on
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: shard.head == n, f"head {n}")
                await until(lambda: cursor_at_least(mon, LAST - overlap - 1), "the fill")
                out.extend(await node_calls_once_the_quota_is_back(
                    node, mon, spent, asked, range(LAST + 1, LAST + 4)))
            await run_monitor(node, tmp_path, second, **opts)
    asyncio.run(go())
    # the restart's own sweep window below the stored cursor aside: not the heads' blocks
    # since the restart, which the fill read, fetched again (60 of them)
    fetched = sum(b - a + 1 for a, b in out if a > stored[0])
    assert fetched <= 20, (fetched, out)


def test_a_block_a_head_passed_in_a_fill_is_read_when_the_heads_stop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # no restart: a fill with overlap 2, the explorer's node a block ahead of the feed
    # once; the head that follows moves the cursor over a block the explorer did not
    # read, then a head skips and the heads move it no more (the poller leaves it 2
    # below the head): the sweep that would have had the explorer read that block was
    # due only after 64 blocks of heads' moves, and never came; _swept_to stayed below it
    monkeypatch.setattr(wallet_monitor, "QUOTA_FILL_IDLE_S", 10.0)
    spent = {"on": False}
    asked: list[tuple[int, int]] = []
    out: list[tuple[int, int]] = []

    async def go() -> None:
        async with HostileNode() as node:
            spend_quota(node, spent, asked=asked)
            view = {"head": 0}  # the explorer's proxy head: the test's to move
            explorer_from_logs(node)
            logs_of = node.explorer

            def explorer(q: dict[str, str]) -> str:
                if q.get("module") == "proxy":
                    return json.dumps({"jsonrpc": "2.0", "id": 1,
                                       "result": hex(view["head"])})
                return logs_of(q)
            node.explorer = explorer

            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)
                shard = mon.shards[0]
                spent["on"] = True
                node.head = view["head"] = 301
                await node.new_head(300)  # a gap: refused, the explorer fills
                await until(lambda: shard._poller is not None, "the quota fill")
                await until(lambda: cursor_at_least(mon, 299), "the fill read")
                await node.new_head(301)  # contiguous: the head moves the cursor
                await until(lambda: cursor_at_least(mon, 300), "the head's move")
                for n in range(310, STOP_LAST + 1):  # then one that skipped, and on
                    node.head = n
                    await node.new_head(n)
                    await until(lambda n=n: shard.head == n, f"head {n}")
                    view["head"] = n  # (never ahead of the feed again)
                await until(lambda: cursor_at_least(mon, STOP_LAST - 3), "the fill")
                view["head"] = STOP_LAST + 3
                out.extend(await node_calls_once_the_quota_is_back(
                    node, mon, spent, asked, range(STOP_LAST + 1, STOP_LAST + 4)))
            await run_monitor(node, tmp_path, body, reconcile_interval=0,
                              explorer_overlap_blocks=2, head_jump_slack=1000,
                              backfill_chunk_blocks=10)
    asyncio.run(go())
    fetched = sum(b - a + 1 for a, b in out)
    assert fetched <= 20, (fetched, out)  # not the 80 blocks the fill read again
