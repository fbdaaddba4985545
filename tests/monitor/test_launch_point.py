"""The launch point: a monitor on a fresh state database (no ``start_block``, no cursor)
killed before it has seen any head - before any sync or poll stored a cursor - lost every
trade between its launch and its restart: the restarted process started at ITS first
head. The head at the first start is stored before anything is delivered, and the
restart backfills from there, in WebSocket mode and in polling-only mode."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hostile_node import HostileNode
from monitor_helpers import WALLET, order_filled
from test_polling_baseline import IndexExplorer, served_explorer
from test_reliability import settings

from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor

TIMEOUT = 30.0
LAUNCH = 100  # the chain's head at the first start
AGAIN = 200  # ... at the restart


def _trades(*sinks: MemorySink) -> list[int]:
    return sorted(e.trade.block_number for s in sinks for e in s.events
                  if e.kind == "trade" and e.trade is not None)


async def _until(pred: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {TIMEOUT:.0f}s: {what}")
        await asyncio.sleep(0.02)


def _cursor(db: Path) -> int | None:
    store = Store(db)
    try:
        cur = store.cursor(WALLET)
        return None if cur is None else cur.block
    finally:
        store.close()


# trades before the launch (not asked for), in the head block at the launch (mined before
# it: not the bot's either), after it and while it was down
LOGS = [order_filled(block=90, tx=1), order_filled(block=LAUNCH, tx=2),
        order_filled(block=150, tx=3), order_filled(block=AGAIN - 5, tx=4)]


def _get_logs_from(node: HostileNode) -> list[int]:
    """The fromBlock of every eth_getLogs the node was asked."""
    items = [i for b in node.requests for i in (b if isinstance(b, list) else [b])]
    return [int(i["params"][0]["fromBlock"], 16) for i in items
            if i.get("method") == "eth_getLogs"]


@pytest.mark.parametrize("reconcile", [30.0, 0.0])
def test_a_websocket_monitor_killed_before_its_first_head_resumes_from_its_launch(
        tmp_path: Path, reconcile: float) -> None:
    """No head ever reached the first process (subscribed, then killed). Before: it
    stored no cursor, the restart started at its own first head (200) and the trades of
    blocks 101..195 were lost. Now the node's head at the first start (100) is stored
    at start; the restart backfills 101..199: each trade from the launch on, once, and
    none from before it (block 100 was mined before the launch: delivered, it was a
    phantom of the harness's truth, whose replay starts after the monitor's launch) -
    also with ``reconcile_interval = 0``, whose first sweep after a restart re-fetches
    the blocks below a stored cursor: not below a launch point no
    run moved (nothing was delivered there; block 90's trade is from before the launch).
    """
    first_sink, second_sink = MemorySink(), MemorySink()

    async def go() -> tuple[int | None, list[int]]:
        async with HostileNode() as node:
            node.head = LAUNCH
            node.logs = list(LOGS)
            s = settings(node, tmp_path, start_block=None, reconcile_interval=reconcile)
            mon = WalletMonitor(s, sink=first_sink)
            await mon.start()
            await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
            await mon.abort()  # killed: no head, no sync, nothing drained
            stored = _cursor(tmp_path / "state.db")
            node.head = AGAIN  # down a while: the chain moved on
            node.subscribed.clear()
            node.subs.clear()
            again = WalletMonitor(s, sink=second_sink)
            await again.start()
            try:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.new_head(AGAIN)
                await _until(lambda: (again.shards[0].cursor() or 0) >= AGAIN - 1,
                             "the restart's cursor at its first head")
                # a gap: the next sync, after any sweep the first one made due
                await node.new_head(AGAIN + 5)
                await _until(lambda: (again.shards[0].cursor() or 0) >= AGAIN + 4,
                             "the restart's cursor at the next head")
            finally:
                await again.stop()
            return stored, _get_logs_from(node)

    stored, asked = asyncio.run(asyncio.wait_for(go(), 4 * TIMEOUT))
    assert stored == LAUNCH, stored  # before: None
    assert _trades(first_sink) == []
    assert _trades(first_sink, second_sink) == [150, AGAIN - 5]  # before: []
    assert asked and min(asked) > LAUNCH, asked


class _HeldHead(IndexExplorer):
    """Holds every ``eth_blockNumber`` (proxy) query while ``hold`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        if request.query.get("module") == "proxy" and self.hold:
            self.holding.set()
            await self.release.wait()
        return await super().handle(request)


def test_a_polling_monitor_killed_before_its_first_head_resumes_from_its_launch(
        tmp_path: Path) -> None:
    """Polling only: the first round's eth_blockNumber still in flight when the process
    is killed. Before: no cursor was stored, the restart started at the explorer's head
    then (200) and the trades of blocks 100..195 were lost. Now the explorer's head at
    the first start (100) is stored at start, and the restart polls from there."""
    fake = _HeldHead()
    fake.head = fake.indexed = LAUNCH
    fake.logs = list(LOGS)
    first_sink, second_sink = MemorySink(), MemorySink()

    async def go() -> int | None:
        async with served_explorer(fake) as url, HostileNode() as node:
            s = settings(node, tmp_path, start_block=None, mode="polling",
                         explorer_url=url, explorer_rate_per_s=1000)
            mon = WalletMonitor(s, sink=first_sink)
            try:
                await mon.start()
                fake.hold = True  # the first round's head: held until the kill
                await asyncio.wait_for(fake.holding.wait(), TIMEOUT)
                await mon.abort()
            finally:
                fake.hold = False
                fake.release.set()
            stored = _cursor(tmp_path / "state.db")
            fake.head = fake.indexed = AGAIN
            again = WalletMonitor(s, sink=second_sink)
            await again.start()
            try:
                await _until(lambda: again.poller is not None and again.poller.polls >= 2,
                             "two polls after the restart")
            finally:
                await again.stop()
            return stored

    stored = asyncio.run(asyncio.wait_for(go(), 4 * TIMEOUT))
    assert stored == LAUNCH, stored  # before: None
    assert _trades(first_sink) == []
    assert _trades(first_sink, second_sink) == [150, AGAIN - 5]  # before: []


def test_a_configured_start_block_still_wins_over_the_head_at_start(tmp_path: Path) -> None:
    """start_block set: the launch point is it, not the node's head (and the node is not
    asked for a head to store)."""
    async def go() -> tuple[int | None, list[str]]:
        async with HostileNode() as node:
            node.head = LAUNCH
            mon = WalletMonitor(settings(node, tmp_path, start_block=80), sink=MemorySink())
            await mon.start()
            methods = [b.get("method") for b in node.requests if isinstance(b, dict)]
            await mon.abort()
            return _cursor(tmp_path / "state.db"), methods

    stored, methods = asyncio.run(asyncio.wait_for(go(), TIMEOUT))
    assert stored == 79, stored
    assert "eth_blockNumber" not in methods, methods
