"""A refusal that lasts: the poller's pauses double up to their cap, and the count of
pauses grows for as long as the explorer refuses. Past 1023 pauses ``2.0 ** n`` raised
OverflowError: a V1 URL or a chain id left refused for 17 hours (pauses of a minute)
crashed the poller at each refusal from then on (a task crash and a restart each), and a
daily quota after 1024 pauses likewise. A stub explorer client, a hand-moved clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor_helpers import WALLET
from test_polling_baseline import Alerts

from monitor.clock import ManualClock
from monitor.errors import QuotaExhausted
from monitor.explorer_client import ExplorerSettingRefused
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink
from monitor.store import Store

V1 = "You are using a deprecated V1 endpoint, switch to Etherscan API V2"


class Refusing:
    """An explorer client whose every head is refused with ``exc``."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.key_accepted = 0
        self.calls = 0

    async def block_number(self) -> int:
        self.calls += 1
        raise self.exc


def _refused_rounds(tmp_path: Path, exc: Exception, rounds: int, step_s: float) -> int:
    clock = ManualClock()
    client = Refusing(exc)

    async def go() -> None:
        store = Store(tmp_path / "s.db")
        try:
            pipe = Pipeline(store, MemorySink(), wallets=(WALLET,), clock=clock)
            pipe.alerts = Alerts()
            poller = PollingMonitor(client, pipe, store,  # type: ignore[arg-type]
                                    wallets=(WALLET,), interval=15, overlap_blocks=16,
                                    start_block=100, clock=clock, block_interval=2.0)
            for _ in range(rounds):
                clock.advance(step_s)  # past the longest pause: one refused call a round
                await poller.poll_once()
            await pipe.flush_alerts(5.0)
        finally:
            store.close()
    asyncio.run(go())
    return client.calls


def test_a_setting_refused_for_a_day_keeps_its_minute_pace(tmp_path: Path) -> None:
    """1,100 refusals a minute apart (18 hours): each round asks once, none raises."""
    refused = ExplorerSettingRefused(V1, setting="explorer_url", remedy="a V2 URL")
    assert _refused_rounds(tmp_path, refused, 1100, 61.0) == 1100


def test_a_quota_used_up_for_long_keeps_its_hourly_pace(tmp_path: Path) -> None:
    """1,100 pauses of the daily quota (the longest an hour): none raises."""
    spent = QuotaExhausted("explorer daily quota used up: Max daily limit reached")
    assert _refused_rounds(tmp_path, spent, 1100, 3601.0) == 1100
