"""Loose ends of the polling monitor: one rule for a trade id another wallet's fill took
in a reorg (the pipeline's), the restart's explorer check keeping what answered in time."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from hostile_node import HostileNode
from monitor_helpers import OTHER, WALLET, order_filled, word
from test_polling_baseline import (
    IndexExplorer,
    crash_leaving_an_outbox,
    outbox_explorer,
    retracted,
    run,
    served_explorer,
    trades,
)
from test_reliability import settings

from monitor.clock import ManualClock
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor


def test_a_log_index_another_wallet_took_is_judged_by_the_pipeline_s_one_rule(
        tmp_path: Path) -> None:
    """A reorg gave WALLET's log index (trade id <tx>:1) to OTHER's fill of the same
    transaction. The polling monitor had a copy of Pipeline._offer's rule of its own
    (PollingMonitor._taken_ids): it retracted the orphan itself, so the pipeline's rule
    never ran on the polling path (its counter said 0 such ids). One implementation now:
    the pipeline's rule retracts WALLET's orphan and delivers OTHER's fill, in that order."""
    clock = ManualClock()
    h2 = "0x" + "ab" * 32
    seen: dict[str, int] = {}

    async def steps(fake: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs += [order_filled(block=105, tx=1, log_index=1)]  # WALLET's
        fake.head = fake.indexed = 106
        await poller.poll_once()
        fake.logs = [order_filled(block=105, tx=1, log_index=0, block_hash=h2),  # WALLET's
                     order_filled(block=105, tx=1, log_index=1, wallet=OTHER, block_hash=h2)]
        for head in (108, 110, 112):
            clock.advance(4)
            fake.head = fake.indexed = head
            await poller.poll_once()
        seen["pipeline"] = poller.pipeline.counters["ids_taken_retracted"]
        seen["poller"] = poller.counters["ids_taken_retracted"]
    sink = run(tmp_path, steps, clock=clock, wallets=(OTHER, WALLET))
    tx = "0x" + word(1)
    got = [(e.kind, e.trade_id, e.trade.wallet if e.trade else None) for e in sink.events]
    assert got == [("trade", f"{tx}:1", WALLET), ("retraction", f"{tx}:1", None),
                   ("trade", f"{tx}:1", OTHER), ("trade", f"{tx}:0", WALLET)], got
    assert seen == {"pipeline": 1, "poller": 0}, seen


def test_a_restart_check_cut_short_still_judges_the_blocks_the_explorer_answered(
        tmp_path: Path) -> None:
    """Polling only: a crash left trades of blocks 105 and 106 in the outbox; 106 was
    replaced while the monitor was down. The explorer answers for 106 (asked first, the
    newest) at once, then hangs on 105 past the restart's wait (RESTART_CHECK_WAIT_S).
    explorer_block_hashes returned only at its end, so the timeout threw away 106's
    answer too: the orphan of 106 reached the bot. The answers given in time are judged
    now: 106's orphan is retracted, never sent; 105 (not answered) goes out unchecked."""

    class SlowOn105(IndexExplorer):
        """Holds every logs query that starts at block 105 until ``release``."""

        def __init__(self) -> None:
            super().__init__()
            self.release = asyncio.Event()

        async def handle(self, request: web.Request) -> web.Response:
            if request.query.get("fromBlock") == "105":
                await self.release.wait()
            return await super().handle(request)

    fake = outbox_explorer(SlowOn105())
    sink = MemorySink()

    async def go() -> tuple[list[int], list[str]]:
        async with served_explorer(fake) as url:
            try:
                await crash_leaving_an_outbox(tmp_path / "state.db", fake, replaced=106)
                async with HostileNode() as node:  # only for its URLs' shape: not used
                    # a request timeout far past the restart's wait: the wait is what ends it
                    s = settings(node, tmp_path, mode="polling", explorer_url=url,
                                 websocket_url=None, rpc_url=None, polling_interval=600.0,
                                 explorer_rate_per_s=1000.0, explorer_timeout=600.0)
                mon = WalletMonitor(s, sink=sink)
                await mon.start()  # recover() runs in start, before any poll
                try:
                    return trades(sink), retracted(sink)
                finally:
                    fake.release.set()
                    await mon.stop()
            finally:
                fake.release.set()
    sent_at_start = asyncio.run(asyncio.wait_for(go(), 30.0))
    # before: ([105, 106], []): the timeout dropped 106's answer with the rest
    assert sent_at_start == ([105], [f"0x{word(2)}:0"]), sent_at_start
