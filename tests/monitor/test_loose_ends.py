"""Loose ends of the polling monitor: one rule for a trade id another wallet's fill took
in a reorg (the pipeline's), the restart's explorer check keeping what answered in time."""

from __future__ import annotations

from pathlib import Path

from monitor_helpers import OTHER, WALLET, order_filled, word
from test_polling_baseline import IndexExplorer, run

from monitor.clock import ManualClock
from monitor.polling import PollingMonitor
from monitor.store import Store


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
