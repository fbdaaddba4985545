"""The quota fill (the HTTP node's quota spent while the WebSocket feed is live: the
explorer fills the feed's gaps, 300af7c) polls the explorer only while a gap is open,
and its history rows are not ``fallback`` rows. Before, it polled every
``fallback_polling_interval`` for as long as the quota stayed spent (a month for a
monthly quota), gap or not, and the report counted all that time as fallback time.
Without a gap it makes one round every ``QUOTA_FILL_IDLE_S`` (the cursors stay near the
head: the sync that takes over when the quota is back fetches a few chunks)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from hostile_node import HostileNode, explorer_from_logs, spend_quota
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, history_rows, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import QUOTA_FILL_IDLE_S, WalletMonitor, WsShard


def _scripted(node: HostileNode, spent: dict[str, bool], polls: list[dict[str, str]]) -> None:
    """The node refuses eth_getLogs while ``spent``; the explorer answers from node.logs
    (its getLogs queries counted in ``polls``)."""
    spend_quota(node, spent)
    explorer_from_logs(node, polls)


class _Heads:
    """The feed stays live: a head every 0.1 s (a block interval at speed 20)."""

    def __init__(self, node: HostileNode) -> None:
        self.node = node
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            self.node.head += 1
            await self.node.new_head(self.node.head)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def pause(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None


def test_the_quota_fill_polls_only_while_a_gap_is_open(tmp_path: Path) -> None:
    # speed 20: a block interval is 0.1 s, a poll (1 simulated s) 0.05 s; the poller's
    # cursor (which closes a gap) follows the explorer's head 4 blocks behind
    spent = {"on": False}
    polls: list[dict[str, str]] = []
    first_gap = order_filled(block=105, tx=5)
    idle: dict[str, int] = {}

    async def go() -> None:
        async with HostileNode() as node:
            _scripted(node, spent, polls)
            heads = _Heads(node)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                spent["on"] = True  # the month's quota is used up
                node.logs.append(first_gap)
                node.head = 110
                await node.new_head(110)  # a gap the node refuses to backfill
                heads.start()
                try:
                    await until(lambda: len(sink.events) == 1 and cursor_at_least(mon, 110),
                                "the first gap filled from the explorer", timeout=10.0)
                    shard = mon.shards[0]
                    assert shard._poller is not None
                    # the gap is closed, the feed live, the quota still spent: 20 blocks
                    # (40 poll intervals) without a gap ask the explorer for nothing
                    before, top = len(polls), node.head
                    await until(lambda: node.head >= top + 20, "20 more heads")
                    idle["polls"] = len(polls) - before
                    # a new gap (a head that skips blocks) is polled again, and filled
                    await heads.pause()
                    node.logs.append(order_filled(block=node.head + 5, tx=6))
                    node.head += 10
                    await node.new_head(node.head)
                    heads.start()
                    await until(lambda: len(sink.events) == 2, "the second gap filled",
                                timeout=10.0)
                    assert spent["on"] and shard._poller is not None
                finally:
                    await heads.pause()
            await run_monitor(node, tmp_path, body, reconcile_interval=30.0,
                              explorer_overlap_blocks=4)
    asyncio.run(go())
    # at most one round already under way when the gap closed (before: every interval)
    assert idle["polls"] <= 1, idle


def test_a_quota_fill_is_not_fallback_time(tmp_path: Path) -> None:
    """Its history rows are ``quota_fill`` rows (the report's fallback time reads
    ``fallback`` rows): started, and ended when the node answers again."""
    spent = {"on": False}
    polls: list[dict[str, str]] = []
    gap = order_filled(block=105, tx=5)

    async def go() -> None:
        async with HostileNode() as node:
            _scripted(node, spent, polls)
            heads = _Heads(node)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                spent["on"] = True
                node.logs.append(gap)
                node.head = 110
                await node.new_head(110)
                heads.start()
                try:
                    await until(lambda: len(sink.events) == 1, "the gap filled", timeout=10.0)
                    spent["on"] = False
                    shard = mon.shards[0]
                    await until(lambda: shard._poller is None, "the node takes over",
                                timeout=10.0)
                finally:
                    await heads.pause()
            await run_monitor(node, tmp_path, body, reconcile_interval=30.0,
                              explorer_overlap_blocks=4)
    asyncio.run(go())
    assert history_rows(tmp_path, "fallback") == []
    fills = history_rows(tmp_path, "quota_fill")
    assert [r["active"] for r in fills] == [True, False]


def test_when_a_quota_fill_round_is_due() -> None:
    shard = WsShard.__new__(WsShard)  # only what _fill_due reads
    clock = SimpleNamespace(t=1000.0)
    shard.clock = SimpleNamespace(now=lambda: clock.t)  # type: ignore[assignment]
    shard.s = SimpleNamespace(scaled=lambda x: x)  # type: ignore[assignment]
    shard._quota_fill, shard.live_from, shard._gap_to = False, 100, None
    shard._fill_round_at, shard._cursor = 1000.0, 120
    shard.cursor = lambda: shard._cursor  # type: ignore[method-assign]
    assert shard._fill_due()  # the feed's fallback: every round
    shard._quota_fill = True
    assert not shard._fill_due()  # no gap ever opened: the feed delivered everything
    shard._gap_open(130)
    assert shard._fill_due()  # the cursor below the gap's top
    shard._gap_open(125)  # (a lower one does not lower it)
    shard._cursor = 130
    clock.t += 15
    assert not shard._fill_due()  # filled
    shard.live_from = None
    assert shard._fill_due()  # no head on this connection yet: nothing is delivered live
    shard.live_from = 200
    clock.t = 1000.0 + QUOTA_FILL_IDLE_S - 1  # (the last round: the gap's, at 1000)
    assert not shard._fill_due()
    clock.t += 1
    assert shard._fill_due()  # one round a QUOTA_FILL_IDLE_S keeps the cursor near the head
    assert not shard._fill_due()
