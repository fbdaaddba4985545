"""An explorer key revoked mid-run, in polling mode. Etherscan V2 answers a refused key
with HTTP 200 ``{"status":"0","message":"NOTOK","result":"Invalid API Key"}`` (a proxy
or CDN in front may answer 401/403). Before, the poller only warned each round and
alerted ``polling_failing`` after five minutes of no answer; now one alert
``explorer_key_refused`` says so at once, the explorer is asked again at the polling
interval (one call a round, no retry burst), ``explorer_key_recovered`` says when it
answers again, and the key is in no log, alert, history row or error.

A scripted explorer on loopback (real aiohttp client and server, real SQLite)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from monitor_helpers import WALLET, order_filled
from test_polling_baseline import Alerts, IndexExplorer, served_explorer

from monitor.clock import ManualClock
from monitor.explorer_client import ExplorerClient, ExplorerKeyRefused, ExplorerNotOk
from monitor.history import History
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink
from monitor.store import Store

KEY = "ZXCVBNMASDFGHJKL1234567890QWERTY"  # an Etherscan-like key (32 characters)


class RevokedKey(IndexExplorer):
    """Refuses every call while ``revoked``: NOTOK "Invalid API Key" (``status`` None)
    or that HTTP status."""

    def __init__(self, status: int | None) -> None:
        super().__init__()
        self.revoked = False
        self.status = status

    async def handle(self, request: web.Request) -> web.Response:
        if self.revoked:
            self.queries.append(dict(request.query))
            if self.status is not None:
                return web.Response(status=self.status, text="Forbidden")
            return web.json_response({"status": "0", "message": "NOTOK",
                                      "result": "Invalid API Key"})
        return await super().handle(request)


@pytest.mark.parametrize("status", [None, 401, 403])
def test_a_key_revoked_mid_run_is_alerted_at_once_asked_each_interval_and_recovered(
        tmp_path: Path, status: int | None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock()
    alerts = Alerts()
    sink = MemorySink()
    fake = RevokedKey(status)
    history_path = tmp_path / "history.jsonl"
    calls: list[int] = []
    kinds_after_first: list[list[str]] = []
    errors: list[str] = []

    async def go() -> None:
        async with served_explorer(fake) as url, aiohttp.ClientSession() as session:
            store = Store(tmp_path / "s.db")
            history = History(history_path)
            try:
                client = ExplorerClient(url, session, api_key=KEY, rate_per_s=1000,
                                        speed=1000, history=history)
                pipe = Pipeline(store, sink, wallets=(WALLET,), clock=clock)
                pipe.alerts = alerts
                poller = PollingMonitor(client, pipe, store, wallets=(WALLET,),
                                        interval=15, overlap_blocks=16, start_block=100,
                                        clock=clock, block_interval=2.0, history=history)
                fake.head = fake.indexed = 100
                await poller.poll_once()
                fake.revoked = True
                asked = len(fake.queries)
                clock.advance(15)
                await poller.poll_once()  # the first refused round
                await pipe.flush_alerts(5.0)
                kinds_after_first.append([k for k, _t in alerts.sent])
                for _ in range(39):  # ten minutes of 15-s polls in all
                    clock.advance(15)
                    await poller.poll_once()
                calls.append(len(fake.queries) - asked)
                try:
                    await client.block_number()
                except ExplorerNotOk as exc:
                    errors.append(f"{exc!r} {exc}")
                fake.revoked = False
                fake.logs.append(order_filled(block=150, tx=1))
                fake.head = fake.indexed = 200
                for _ in range(3):
                    clock.advance(15)
                    await poller.poll_once()
                await pipe.flush_alerts(5.0)
            finally:
                store.close()
                history.close()

    asyncio.run(asyncio.wait_for(go(), 60))
    # at once (before: nothing until polling_failing, five minutes in)
    assert kinds_after_first == [["explorer_key_refused"]]
    assert [k for k, _t in alerts.sent] == ["explorer_key_refused", "explorer_key_recovered"]
    assert "refuses the API key" in alerts.sent[0][1]
    assert calls == [40]  # one call a round (the head), none retried
    assert [e.trade.block_number for e in sink.events
            if e.kind == "trade" and e.trade is not None] == [150]
    # the key nowhere
    assert errors and all(KEY not in e for e in errors)
    assert "ExplorerKeyRefused" in errors[0]
    assert all(KEY not in t for _k, t in alerts.sent)
    assert KEY not in history_path.read_text()
    # the monitor's records (the scripted explorer's access log has its requests)
    assert all(KEY not in r.getMessage() for r in caplog.records
               if r.name.startswith("monitor")), caplog.text[-2000:]
    assert "explorer_key" in history_path.read_text()


def test_a_key_refusal_is_its_own_error_and_other_notok_texts_are_not() -> None:
    """The pilot's check at start and the poller read the same classification: an
    ExplorerKeyRefused is still an ExplorerNotOk; a bad action is not a key refusal."""
    texts = {"Invalid API Key": True, "Missing/Invalid API Key": True,
             "Error! Missing Or invalid Action name": False,
             "Error! Invalid address format": False}
    seen: dict[str, bool] = {}

    async def go() -> None:
        for text in texts:
            async def handle(request: web.Request, text: str = text) -> web.Response:
                return web.json_response({"status": "0", "message": "NOTOK",
                                          "result": text})
            app = web.Application()
            app.router.add_get("/v2/api", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/v2/api"
            try:
                async with aiohttp.ClientSession() as session:
                    client = ExplorerClient(url, session, api_key=KEY, rate_per_s=1000,
                                            speed=1000)
                    try:
                        await client.get_logs(from_block=1, to_block=2)
                    except ExplorerNotOk as exc:
                        seen[text] = isinstance(exc, ExplorerKeyRefused)
            finally:
                await runner.cleanup()

    asyncio.run(asyncio.wait_for(go(), 30))
    assert seen == texts
