"""The explorer refusing a setting whatever is asked (REFERENCE.md): a V1 URL ("You are
using a deprecated V1 endpoint, switch to Etherscan API V2"; Polygonscan's V1 host was
shut off 2025-08-15) or a chain id ("Missing or unsupported chainid parameter (required
for v2 api)..."). Before, every round only warned, and the operator heard of it five
minutes later from the generic ``polling_failing``. Now one error naming the setting and
one alert ``explorer_setting_refused`` say so at once, the explorer is asked again at a
slow pace (pauses from the interval doubling to a minute: one call a pause), and
``explorer_setting_recovered`` says when it answers again.

A scripted explorer on loopback (real aiohttp client and server, real SQLite)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
from monitor_helpers import WALLET, order_filled
from test_polling_baseline import Alerts, IndexExplorer, served_explorer

from monitor.clock import ManualClock
from monitor.explorer_client import ExplorerClient, ExplorerKeyRefused, ExplorerSettingRefused
from monitor.history import History
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink
from monitor.store import Store

V1 = ("You are using a deprecated V1 endpoint, switch to Etherscan API V2 using "
      "https://docs.etherscan.io/v2-migration")
CHAIN = ("Missing or unsupported chainid parameter (required for v2 api), please see "
         "https://api.etherscan.io/v2/chainlist for the list of supported chainids")
TEXTS = {"v1_url": (V1, "explorer_url"), "chainid": (CHAIN, "chain_id")}


@pytest.mark.parametrize("case", sorted(TEXTS))
def test_a_refused_setting_is_said_at_once_asked_slowly_and_recovered(
        tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture) -> None:
    text, setting = TEXTS[case]
    caplog.set_level(logging.INFO)
    clock = ManualClock()
    alerts = Alerts()
    sink = MemorySink()
    fake = IndexExplorer()
    calls: list[int] = []
    after_first: list[list[str]] = []
    history_path = tmp_path / "history.jsonl"

    async def go() -> None:
        async with served_explorer(fake) as url, aiohttp.ClientSession() as session:
            store = Store(tmp_path / "s.db")
            history = History(history_path)
            try:
                client = ExplorerClient(url, session, rate_per_s=1000, speed=1000,
                                        history=history)
                pipe = Pipeline(store, sink, wallets=(WALLET,), clock=clock)
                pipe.alerts = alerts
                poller = PollingMonitor(client, pipe, store, wallets=(WALLET,),
                                        interval=15, overlap_blocks=16, start_block=100,
                                        clock=clock, block_interval=2.0, history=history)
                fake.head = fake.indexed = 100
                await poller.poll_once()
                fake.refuse = text
                asked = len(fake.queries)
                clock.advance(15)
                await poller.poll_once()  # the first refused round
                await pipe.flush_alerts(5.0)
                after_first.append([k for k, _t in alerts.sent])
                for _ in range(39):  # ten minutes of 15-s rounds in all
                    clock.advance(15)
                    await poller.poll_once()
                calls.append(len(fake.queries) - asked)
                fake.refuse = None  # fixed (or the text passed)
                fake.logs.append(order_filled(block=150, tx=1))
                fake.head = fake.indexed = 200
                for _ in range(5):  # within the longest pause (60 s)
                    clock.advance(15)
                    await poller.poll_once()
                await pipe.flush_alerts(5.0)
            finally:
                store.close()
                history.close()

    asyncio.run(asyncio.wait_for(go(), 60))
    assert after_first == [["explorer_setting_refused"]]  # at once, not 5 minutes later
    assert [k for k, _t in alerts.sent] == ["explorer_setting_refused",
                                            "explorer_setting_recovered"]
    assert setting in alerts.sent[0][1]
    errors = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.ERROR and r.name == "monitor.polling"]
    assert len(errors) == 1 and setting in errors[0], errors
    # pauses of 15, 30, then 60 s: 12 calls in ten minutes (40 at one a round)
    assert 10 <= calls[0] <= 13, calls
    assert [e.trade.block_number for e in sink.events
            if e.kind == "trade" and e.trade is not None] == [150]
    assert "explorer_setting" in history_path.read_text()


@pytest.mark.parametrize("text,setting", [
    (V1, "explorer_url"), (CHAIN, "chain_id"),
    ("Error! Missing or invalid chainid", "chain_id"),
    ("Invalid API Key", "explorer_api_key")])
def test_the_client_names_the_setting_refused(text: str, setting: str) -> None:
    fake = IndexExplorer()
    fake.refuse = text
    got: list[BaseException] = []

    async def go() -> None:
        async with served_explorer(fake) as url, aiohttp.ClientSession() as session:
            client = ExplorerClient(url, session, rate_per_s=1000, speed=1000,
                                    chain_id=80002)
            for call in (client.block_number(),
                         client.get_logs(from_block=1, to_block=2)):
                try:
                    await call
                except ExplorerSettingRefused as exc:
                    got.append(exc)

    asyncio.run(asyncio.wait_for(go(), 30))
    assert len(got) == 2 and all(e.setting == setting for e in got)  # type: ignore[attr-defined]
    assert len(fake.queries) == 2  # not retried
    assert isinstance(got[0], ExplorerKeyRefused) == (setting == "explorer_api_key")
    if setting == "chain_id":
        assert "137" in got[0].remedy  # type: ignore[attr-defined]
