"""A refused-key episode that ends in rate limits. After an ``explorer_key_refused``,
an explorer answering NOTOK "Max rate limit reached" (it knows the key: it got as far as
the pace) left the poller in the refused state, and with it the five-minute
``polling_failing`` alert silenced for good. Now the episode ends at the first answer
that shows the key accepted, and the ordinary alerting takes over. A scripted explorer on
loopback (real aiohttp client and server, real SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from monitor_helpers import WALLET, order_filled
from test_polling_baseline import Alerts, served_explorer
from test_polling_key_later_page import KEY, PAGE, PagedRefusal, _trades

from monitor.clock import ManualClock
from monitor.explorer_client import ExplorerClient
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink
from monitor.store import Store

RATE = "Max rate limit reached, please use API Key for higher rate limit"


def test_a_refused_key_episode_ends_when_the_explorer_answers_rate_limits(
        tmp_path: Path) -> None:
    """A rate-limit NOTOK comes from an explorer that knows the key: the refused episode
    ends (``explorer_key_recovered``) at the first such answer, and the ordinary no-answer
    alert (``polling_failing``) follows after five minutes of them."""
    clock = ManualClock()
    alerts = Alerts()
    sink = MemorySink()
    fake = PagedRefusal()
    after_refused: list[list[str]] = []
    after_rate: list[list[str]] = []

    async def go() -> None:
        async with served_explorer(fake) as url, aiohttp.ClientSession() as session:
            store = Store(tmp_path / "s.db")
            try:
                client = ExplorerClient(url, session, api_key=KEY, rate_per_s=1000,
                                        speed=1000, page_size=PAGE, rate_limit_retries=2)
                pipe = Pipeline(store, sink, wallets=(WALLET,), clock=clock)
                pipe.alerts = alerts
                poller = PollingMonitor(client, pipe, store, wallets=(WALLET,),
                                        interval=15, overlap_blocks=16, start_block=100,
                                        clock=clock, block_interval=2.0)
                fake.head = fake.indexed = 100
                await poller.poll_once()
                fake.refusing = "Invalid API Key"
                for _ in range(3):
                    clock.advance(15)
                    await poller.poll_once()
                await pipe.flush_alerts(5.0)
                after_refused.append([k for k, _t in alerts.sent])
                fake.refusing = RATE  # the key is back, the pace is not
                clock.advance(15)
                await poller.poll_once()
                await pipe.flush_alerts(5.0)
                after_rate.append([k for k, _t in alerts.sent])
                for _ in range(25):  # over five minutes of rate limits
                    clock.advance(15)
                    await poller.poll_once()
                await pipe.flush_alerts(5.0)
                after_rate.append([k for k, _t in alerts.sent])
                fake.refusing = None
                fake.logs.append(order_filled(block=130, tx=1))
                fake.head = fake.indexed = 150
                clock.advance(15)
                await poller.poll_once()
                await pipe.flush_alerts(5.0)
            finally:
                store.close()

    asyncio.run(asyncio.wait_for(go(), 60))
    assert after_refused == [["explorer_key_refused"]]
    assert after_rate[0] == ["explorer_key_refused", "explorer_key_recovered"], after_rate
    assert after_rate[1] == ["explorer_key_refused", "explorer_key_recovered",
                             "polling_failing"], after_rate
    assert [k for k, _t in alerts.sent][-1] == "polling_recovered"
    assert [b for b, _t in _trades(sink)] == [130]
