"""A refused key (or a used-up daily quota) met on a LATER page of a wallet's paged
getLogs. Page 1 answered, page 2 refused: the client raised :class:`PartialLogs` (the
pages before it), which the poller took as an ordinary failed page; the
``explorer_key_refused`` alert came only a polling interval later, when a head call was
refused too (a quota: no pause, the next page asked each round). Now the pages before it
are delivered, the cursor moves over the blocks they hold whole, and the round halts with
the alert at once. A scripted explorer on loopback (real aiohttp client and server, real
SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from monitor_helpers import WALLET, order_filled
from test_polling_baseline import DAILY, Alerts, IndexExplorer, served_explorer

from monitor.clock import ManualClock
from monitor.explorer_client import ExplorerClient
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink
from monitor.store import Store

KEY = "QWERTYUIOPASDFGH1234567890ZXCVBN"
PAGE = 10


class PagedRefusal(IndexExplorer):
    """Pages getLogs (``page``/``offset``). ``refuse_at_page``: a getLogs call of that
    page sets ``refusing`` to ``text``; while set, every call is NOTOK with it."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse_at_page: int | None = None
        self.text = "Invalid API Key"
        self.refusing: str | None = None

    async def handle(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        if (q.get("module") == "logs" and self.refuse_at_page is not None
                and int(q.get("page", "1")) == self.refuse_at_page):
            self.refusing, self.refuse_at_page = self.text, None
        if self.refusing is not None:
            self.queries.append(q)
            return web.json_response({"status": "0", "message": "NOTOK",
                                      "result": self.refusing})
        if q.get("module") != "logs" or "topic0" in q:
            return await super().handle(request)
        self.queries.append(q)
        frm, to = int(q["fromBlock"]), min(int(q["toBlock"]), self.indexed)
        page, offset = int(q["page"]), int(q["offset"])
        rows = [dict(r, timeStamp=r["blockTimestamp"]) for r in self.logs
                if frm <= int(r["blockNumber"], 16) <= to and r["topics"][2] == q["topic2"]]
        rows = rows[(page - 1) * offset:page * offset]
        if not rows:
            return web.json_response({"status": "0", "message": "No records found",
                                      "result": []})
        return web.json_response({"status": "1", "message": "OK", "result": rows})


def _trades(sink: MemorySink) -> list[tuple[int, str]]:
    return [(e.trade.block_number, e.trade.id) for e in sink.events
            if e.kind == "trade" and e.trade is not None]


@pytest.mark.parametrize("text,alert", [("Invalid API Key", "explorer_key_refused"),
                                        (DAILY, "explorer_quota")])
def test_a_key_refused_on_a_later_page_is_alerted_at_once_and_loses_no_trade(
        tmp_path: Path, text: str, alert: str) -> None:
    clock = ManualClock()
    alerts = Alerts()
    sink = MemorySink()
    fake = PagedRefusal()
    fake.text = text
    first_round: list[list[str]] = []
    cursor_after: list[int] = []
    n_trades = 60  # blocks 101..120, three a block: six pages of ten

    async def go() -> None:
        async with served_explorer(fake) as url, aiohttp.ClientSession() as session:
            store = Store(tmp_path / "s.db")
            try:
                client = ExplorerClient(url, session, api_key=KEY, rate_per_s=1000,
                                        speed=1000, page_size=PAGE)
                pipe = Pipeline(store, sink, wallets=(WALLET,), clock=clock)
                pipe.alerts = alerts
                poller = PollingMonitor(client, pipe, store, wallets=(WALLET,),
                                        interval=15, overlap_blocks=16, start_block=100,
                                        clock=clock, block_interval=2.0)
                fake.head = fake.indexed = 100
                await poller.poll_once()
                fake.logs += [order_filled(block=101 + i // 3, tx=i + 1, log_index=i % 3)
                              for i in range(n_trades)]
                fake.head = fake.indexed = 140
                fake.refuse_at_page = 2
                clock.advance(15)
                await poller.poll_once()
                await pipe.flush_alerts(5.0)
                first_round.append([k for k, _t in alerts.sent])
                cursor_after.append(store.cursor(WALLET).block)
                for _ in range(3):  # still refused: said once
                    clock.advance(3600)
                    await poller.poll_once()
                fake.refusing = None
                for _ in range(4):
                    clock.advance(3600)
                    await poller.poll_once()
                await pipe.flush_alerts(5.0)
                cursor_after.append(store.cursor(WALLET).block)
            finally:
                store.close()

    asyncio.run(asyncio.wait_for(go(), 60))
    # at once, in the round whose page 2 was refused (before: nothing this round)
    assert first_round == [[alert]], first_round
    # page 1 held blocks 101..104 (rows 1-10): 101..103 whole, the cursor at most there
    assert cursor_after[0] == 103, cursor_after
    got = _trades(sink)
    assert len(got) == n_trades and len(set(got)) == n_trades, \
        f"{len(got)} delivered, {len(set(got))} distinct of {n_trades}"
    assert sorted({b for b, _t in got}) == list(range(101, 121))
    kinds = [k for k, _t in alerts.sent]
    assert kinds.count(alert) == 1, kinds
    assert cursor_after[1] == 140 - 16

