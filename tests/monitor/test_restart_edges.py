"""Restart edge cases: a polling process killed during its first round (before every
wallet's start was stored), and the WebSocket restart check cut short by a node that
refuses batches (the answers it gave in time are kept)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hostile_node import Held, HostileNode, RpcErr, header
from monitor_helpers import OTHER, WALLET, order_filled, word
from test_polling_baseline import IndexExplorer, retracted, served_explorer, trades
from test_reliability import settings

from monitor.clock import ManualClock
from monitor.explorer_client import ExplorerClient
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink, SinkEvent
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor

TIMEOUT = 30.0


class HeldFor(IndexExplorer):
    """Holds every logs query for ``held`` (its topic2) until ``release``."""

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        if request.query.get("topic2") == self.held and not self.release.is_set():
            self.holding.set()
            await self.release.wait()
        return await super().handle(request)


def test_a_polling_process_killed_in_its_first_round_loses_no_trade_at_the_restart(
        tmp_path: Path) -> None:
    """Polling, no start_block: a wallet without a cursor starts at the explorer's head.
    Each wallet's start was stored only just before its own first query, so a process
    killed while the first wallet's query was in flight left the second without a
    cursor; the next process started it at ITS first head, and the second wallet's trades
    in between (block 150) were lost. Every wallet's start is stored at the first head,
    before any query: the restart resumes from there and delivers block 150."""
    fake = HeldFor(held="0x" + "0" * 24 + WALLET[2:])
    fake.head = fake.indexed = 100
    sink = MemorySink()

    async def go() -> dict[str, int | None]:
        clock = ManualClock()
        wallets = [WALLET, OTHER]
        async with served_explorer(fake) as url:
            try:
                async with aiohttp.ClientSession() as session:
                    client = ExplorerClient(url, session, rate_per_s=1000, speed=1000)
                    store = Store(tmp_path / "s.db")
                    poller = PollingMonitor(client, Pipeline(store, sink, wallets=wallets,
                                                             clock=clock),
                                            store, wallets=wallets, interval=15, clock=clock)
                    first = asyncio.create_task(poller.poll_once())
                    await asyncio.wait_for(fake.holding.wait(), TIMEOUT)
                    first.cancel()  # the kill, mid-round: WALLET's query in flight
                    with pytest.raises(asyncio.CancelledError):
                        await first
                    started = {w: (c.block if (c := store.cursor(w)) else None) for w in wallets}
                    store.close()
                    fake.release.set()
                    # down a while: the chain and the index move on, OTHER trades at 150
                    fake.head = fake.indexed = 200
                    fake.logs.append(order_filled(block=150, tx=5, wallet=OTHER))
                    store = Store(tmp_path / "s.db")
                    again = PollingMonitor(client, Pipeline(store, sink, wallets=wallets,
                                                            clock=clock),
                                           store, wallets=wallets, interval=15, clock=clock)
                    await again.poll_once()
                    store.close()
                    return started
            finally:
                fake.release.set()
    started = asyncio.run(asyncio.wait_for(go(), TIMEOUT))
    # before: {WALLET: 99, OTHER: None}, and the restart started OTHER at 200: []
    assert started == {WALLET: 99, OTHER: 99}, started
    assert trades(sink) == [150], trades(sink)


def test_polling_with_start_block_still_starts_there(tmp_path: Path) -> None:
    """start_block set: every wallet starts at it (stored at the first round, as the
    wallets' cursors), whatever the explorer's head, and its trades above it come."""
    fake = IndexExplorer()
    fake.head = fake.indexed = 130
    fake.logs += [order_filled(block=105, tx=1), order_filled(block=120, tx=2, wallet=OTHER)]
    sink = MemorySink()

    async def go() -> dict[str, int | None]:
        clock = ManualClock()
        wallets = [WALLET, OTHER]
        store = Store(tmp_path / "s.db")
        async with served_explorer(fake) as url:
            try:
                async with aiohttp.ClientSession() as session:
                    client = ExplorerClient(url, session, rate_per_s=1000, speed=1000)
                    poller = PollingMonitor(client, Pipeline(store, sink, wallets=wallets,
                                                             clock=clock),
                                            store, wallets=wallets, interval=15, clock=clock,
                                            start_block=100, overlap_blocks=16)
                    await poller.poll_once()
                    return {w: (c.block if (c := store.cursor(w)) else None) for w in wallets}
            finally:
                store.close()
    cursors = asyncio.run(asyncio.wait_for(go(), TIMEOUT))
    assert trades(sink) == [105, 120], trades(sink)
    assert cursors == {WALLET: 130 - 16, OTHER: 130 - 16}, cursors


class _Down(MemorySink):
    async def emit(self, event: SinkEvent) -> None:
        raise OSError("the bot is down")


REPLACED = "0x" + "ab" * 32


def _restart_check_cut_short(tmp_path: Path, on_105: Any) -> tuple[list[int], list[str]]:
    """WebSocket mode, a node that refuses batches: a crash left trades of blocks 105 and
    106 in the outbox; 106 was replaced while the monitor was down. The node answers 106
    (replaced) and then ``on_105`` for block 105. What the restart sent at start."""
    sink = MemorySink()

    async def go() -> tuple[list[int], list[str]]:
        store = Store(tmp_path / "state.db")
        await Pipeline(store, _Down(), wallets=[WALLET]).on_logs(
            [order_filled(block=105, tx=1), order_filled(block=106, tx=2)], "backfill")
        store.close()  # the crash: both trades still in the outbox
        async with HostileNode() as node:
            node.head = 110
            node.refuse_batches = True
            release = asyncio.Event()

            def get_block(params: list[Any]) -> Any:
                n = int(params[0], 16) if params[0] != "latest" else node.head
                if n == 106:
                    return dict(header(106), hash=REPLACED)
                if n == 105:
                    return on_105(release)
                return header(n)
            node.rpc["eth_getBlockByNumber"] = get_block
            # a request timeout far past the restart's wait: the wait is what ends it
            mon = WalletMonitor(settings(node, tmp_path, rpc_timeout=600.0), sink=sink)
            try:
                await mon.start()  # recover() runs in start, before any source
                return trades(sink), retracted(sink)
            finally:
                release.set()
                await mon.stop()
    return asyncio.run(asyncio.wait_for(go(), TIMEOUT))


def test_a_node_restart_check_cut_short_by_its_wait_still_judges_what_it_answered(
        tmp_path: Path) -> None:
    """The node refuses batches (one call at a time) and answers 106 (replaced), then
    holds 105 past the restart's wait: the timeout threw away 106's answer with the rest,
    and the orphan of 106 reached the bot. Now 106 is judged: retracted, never sent; 105
    (not answered) goes out unchecked."""
    got = _restart_check_cut_short(tmp_path, lambda release: Held(release, header(105)))
    # before: ([105, 106], []) (and 105 was asked first: nothing judged at all)
    assert got == ([105], [f"0x{word(2)}:0"]), got


def test_a_node_restart_check_with_one_failed_call_still_judges_what_it_answered(
        tmp_path: Path) -> None:
    """The same, but the node answers the call for 105 with an error object: the error
    threw away 106's answer too. Now 106 is judged; 105 goes out unchecked."""
    got = _restart_check_cut_short(tmp_path, lambda _r: RpcErr(-32000, "header not found"))
    assert got == ([105], [f"0x{word(2)}:0"]), got
