"""The polling baseline against a scripted explorer on loopback: start block, paging through
the client, client-side filtering, cursor only advancing on success, overlap for index lag."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from monitor_helpers import OTHER, WALLET, order_filled, topic

from monitor.explorer_client import ExplorerClient
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink
from monitor.store import Store
from polyvocab import TRANSFER, USDC_E


class FakeExplorer:
    def __init__(self) -> None:
        self.head = 100
        self.logs: list[dict[str, Any]] = []
        self.fail: str | None = None
        self.queries: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.queries.append(q)
        if q["module"] == "proxy":
            return web.json_response({"jsonrpc": "2.0", "id": 1, "result": hex(self.head)})
        if self.fail == "html":
            return web.Response(status=502, text="<html>502</html>", content_type="text/html")
        if self.fail == "notok":
            return web.json_response({"status": "0", "message": "NOTOK",
                                      "result": "Error! Something"})
        frm, to = int(q["fromBlock"]), int(q["toBlock"])
        rows = [lg for lg in self.logs if frm <= int(lg["blockNumber"], 16) <= to
                and lg["topics"][2] == q["topic2"]]
        if not rows:
            return web.json_response({"status": "0", "message": "No records found",
                                      "result": []})
        return web.json_response({"status": "1", "message": "OK", "result": [
            dict(r, timeStamp=r["blockTimestamp"]) for r in rows]})


async def scenario(tmp_path: Path, steps: Any, **kw: Any
                   ) -> tuple[FakeExplorer, MemorySink, Store]:
    fake = FakeExplorer()
    app = web.Application()
    app.router.add_get("/v2/api", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    store = Store(tmp_path / "s.db")
    sink = MemorySink()
    try:
        async with aiohttp.ClientSession() as session:
            client = ExplorerClient(f"http://127.0.0.1:{port}/v2/api", session,
                                    rate_per_s=1000)
            pipe = Pipeline(store, sink, wallets=[WALLET, OTHER])
            poller = PollingMonitor(client, pipe, store, wallets=[WALLET, OTHER],
                                    interval=15, overlap_blocks=2, **kw)
            await steps(fake, poller, store)
    finally:
        await runner.cleanup()
    return fake, sink, store


def test_starts_at_explorer_head_and_filters_non_trades(tmp_path: Path) -> None:
    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.logs.append(order_filled(block=90, tx=1))           # before the start: not ours
        await poller.poll_once()
        assert store.cursor(WALLET).block == 99  # start at head 100: cursor = 99
        fake.head = 110
        fake.logs += [order_filled(block=105, tx=2), order_filled(block=106, tx=3, version=1)]
        transfer = dict(order_filled(block=105, tx=4), address=USDC_E)
        transfer["topics"] = [TRANSFER, topic(OTHER), topic(WALLET)]
        fake.logs.append(transfer)                                 # topic2 = wallet, not a fill
        await poller.poll_once()
        q = [x for x in fake.queries if x["module"] == "logs"]
        assert q[-2]["fromBlock"] == "100" and q[-2]["toBlock"] == "110"
        assert "address" not in q[-2]  # topic2 only: one call covers V1+V2 and all exchanges
        await poller.poll_once()                                    # overlap: no duplicate
    _fake, sink, _store = asyncio.run(scenario(tmp_path, steps))
    assert [e.trade.block_number for e in sink.events if e.trade] == [105, 106]
    assert {e.source for e in sink.events} == {"poll"}


def test_failures_do_not_advance_the_cursor_and_lose_nothing(tmp_path: Path) -> None:
    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        await poller.poll_once()
        fake.head = 120
        fake.logs.append(order_filled(block=110, tx=9))
        for mode in ("html", "notok"):
            fake.fail = mode
            assert await poller.poll_once() == 0
            assert store.cursor(WALLET).block == 99
        fake.fail = None
        assert await poller.poll_once() == 2
        assert store.cursor(WALLET).block == 118
        assert poller.counters["errors"] == 4
    _fake, sink, _store = asyncio.run(scenario(tmp_path, steps))
    assert [e.trade.block_number for e in sink.events if e.trade] == [110]


def test_run_polls_every_interval_until_stopped(tmp_path: Path) -> None:
    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        poller.speed = 100.0  # 15 s / 100 = 0.15 s
        task = asyncio.create_task(poller.run())
        while poller.polls < 3:
            await asyncio.sleep(0.01)
        poller.stop()
        await asyncio.wait_for(task, 5)
    fake, _sink, _store = asyncio.run(scenario(tmp_path, steps))
    assert sum(q["module"] == "proxy" for q in fake.queries) >= 3


def test_a_head_the_chain_cannot_have_reached_is_refused_and_a_cursor_past_it_rewound(
        tmp_path: Path) -> None:
    """One explorer answer of 0x7fff...ff moved every cursor there, silently, and the
    wallets were never polled again, even after a restart against an honest explorer."""
    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        await poller.poll_once()
        assert store.cursor(WALLET).block == 99
        fake.head = (1 << 63) - 1  # moments after head 100
        assert await poller.poll_once() == 0
        assert poller.counters["explorer_head_jump"] == 1
        assert store.cursor(WALLET).block == 99 and poller.last_head == 100
        # a cursor already poisoned (an earlier run, another tool): rewound, and polled
        store.set_cursors([WALLET], (1 << 62), None, "polling", forward_only=False)
        fake.head = 104
        fake.logs.append(order_filled(block=103, tx=7))
        assert await poller.poll_once() == 2
        assert poller.counters["cursor_ahead"] == 1
        assert store.cursor(WALLET).block == 104 - 2  # head less the overlap
    _fake, sink, _store = asyncio.run(scenario(tmp_path, steps))
    assert [e.trade.block_number for e in sink.events if e.trade] == [103]


def test_an_index_that_was_empty_or_stuck_may_catch_up(tmp_path: Path) -> None:
    """What the plausibility check must let through: a head of 0 (nothing indexed yet)
    is no reference, and an index stuck for an hour may jump to the chain's head: it is
    measured from when it got stuck, not from the last poll that saw it stuck."""
    from monitor.clock import ManualClock

    clock = ManualClock()

    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.head = 0
        await poller.poll_once()
        clock.advance(15)
        fake.head = 100
        assert await poller.poll_once() == 2          # after 0: taken
        for _ in range(240):                          # an hour at 100, polled every 15 s
            clock.advance(15)
            await poller.poll_once()
        clock.advance(15)
        fake.head = 100 + 1800                        # the index catches up at once
        assert await poller.poll_once() == 2
        assert poller.counters["explorer_head_jump"] == 0 and poller.last_head == 1900
    asyncio.run(scenario(tmp_path, steps, clock=clock, block_interval=2.0))
