"""Defects of the explorer polling path, each as a regression test against a scripted
explorer on loopback (real aiohttp client and server, real SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from monitor_helpers import WALLET, order_filled
from test_polling import FakeExplorer

from monitor.clock import ManualClock
from monitor.explorer_client import ExplorerClient
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink, SinkEvent
from monitor.store import Store


class EverySink(MemorySink):
    """Keeps every event it is given, a key given twice twice (a bot's executor that
    keeps no keys, or whose window of keys a trade hours old has left)."""

    async def emit(self, event: SinkEvent) -> None:
        self.events.append(event)


Steps = Callable[[FakeExplorer, PollingMonitor, Store], Awaitable[None]]


async def _serve(fake: FakeExplorer) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/v2/api", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/v2/api"


def run_polling(tmp_path: Path, steps: Steps, *, clock: ManualClock,
                fake: FakeExplorer | None = None, **client_kw: Any) -> EverySink:
    """A poller of WALLET (overlap 16, slack 64, 2-s blocks) whose pipeline keeps one id
    in memory: the others are looked up in the store (as in a long run past
    ``dedup_capacity``, or after a restart)."""
    fake = fake or FakeExplorer()
    sink = EverySink()

    async def go() -> None:
        runner, url = await _serve(fake)
        store = Store(tmp_path / "s.db")
        try:
            async with aiohttp.ClientSession() as session:
                client = ExplorerClient(url, session, rate_per_s=1000, **client_kw)
                pipe = Pipeline(store, sink, wallets=[WALLET], dedup_capacity=1,
                                clock=clock)
                poller = PollingMonitor(client, pipe, store, wallets=[WALLET], interval=15,
                                        overlap_blocks=16, clock=clock, block_interval=2.0,
                                        head_jump_slack=64)
                await steps(fake, poller, store)
        finally:
            store.close()
            await runner.cleanup()
    asyncio.run(go())
    return sink


def _trade_blocks(sink: MemorySink) -> list[int]:
    return [e.trade.block_number for e in sink.events if e.kind == "trade" and e.trade]


def test_a_head_of_0_or_far_below_the_cursor_does_not_rewind_it_and_bring_back_old_trades(
        tmp_path: Path) -> None:
    """The explorer's eth_blockNumber answers 0 (nothing indexed, a node resyncing) or a
    number far below the cursor, once. The poller took the cursor for the poisoned one
    ("cursor_ahead") and moved every wallet's cursor back to that head: the next poll
    asked the whole history again, and every trade whose dedup id had been pruned
    (``dedup_retention_blocks`` below the cursor) went to the sink a second time: the
    bot copied a trade hours old. Such a head is no reference; a cursor is rewound only
    when it is past the highest head the explorer has shown."""
    clock = ManualClock()

    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.head = 100
        await poller.poll_once()
        fake.logs += [order_filled(block=150, tx=1), order_filled(block=1500, tx=2)]
        for head in range(200, 2201, 200):  # ~7 minutes of polls: the trade, then on
            clock.advance(400)
            fake.head = head
            assert await poller.poll_once() == 1
        assert store.cursor(WALLET).block == 2200 - 16
        # the trade of block 150 is far below the cursor: its id goes (memory holds
        # 1500's), as the monitor's redeliver() prunes ids and sent outbox rows
        assert store.prune_outbox() == 2 and store.prune_delivered(1024) == 1
        for low in (1000, 0, 5):
            clock.advance(15)
            fake.head = low
            await poller.poll_once()
            cursors.append(store.cursor(WALLET).block)
        clock.advance(15)
        fake.head = 2207
        assert await poller.poll_once() == 1
        cursors.append(store.cursor(WALLET).block)
    cursors: list[int] = []
    sink = run_polling(tmp_path, steps, clock=clock)
    assert _trade_blocks(sink) == [150, 1500]  # before: [150, 1500, 150]
    assert cursors == [2184, 2184, 2184, 2191]  # before: [984, 0, 0, 2191]


def test_a_low_first_head_neither_rewinds_the_cursor_nor_stalls_polling_for_good(
        tmp_path: Path) -> None:
    """A restart (cursor 2184 stored) whose first explorer answer is a head far too low
    (12345678 on Polygon, where the chain is at 80 million): taken as the reference, it
    rewound the cursor (the whole history asked again, pruned trades delivered twice),
    and every real head after it was refused as a jump the chain cannot have made: no
    trade was polled again (until the process restarted)."""
    clock = ManualClock()

    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        store.set_cursors([WALLET], 2184, None, "polling")  # an earlier run's
        fake.logs += [order_filled(block=150, tx=1),  # delivered then, id since pruned
                      order_filled(block=2201, tx=2)]
        fake.head = 5
        await poller.poll_once()
        cursors.append(store.cursor(WALLET).block)
        for head in (2203, 2210, 2217, 2224):
            clock.advance(15)
            fake.head = head
            await poller.poll_once()
            cursors.append(store.cursor(WALLET).block)
    cursors: list[int] = []
    sink = run_polling(tmp_path, steps, clock=clock)
    assert _trade_blocks(sink) == [2201]
    # the real heads are taken from the third on (two answers that agree)
    assert min(cursors) == 2184 and cursors[-1] == 2224 - 16


def test_a_cursor_a_bogus_first_head_poisoned_is_rewound_once_two_heads_agree(
        tmp_path: Path) -> None:
    """Pins the other side: the first head of a run, checked by nothing, is bogus (2^40)
    and the poll moves the cursor there; the honest heads after it agree with each other,
    not with it: the cursor is rewound to them and polling goes on."""
    clock = ManualClock()

    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        store.set_cursors([WALLET], 2184, None, "polling")
        fake.head = 1 << 40
        await poller.poll_once()
        assert store.cursor(WALLET).block == (1 << 40) - 16
        fake.logs.append(order_filled(block=2201, tx=2))  # indexed after that poll
        for head in (2203, 2210):
            clock.advance(15)
            fake.head = head
            await poller.poll_once()
        assert poller.counters["cursor_ahead"] == 1
        assert store.cursor(WALLET).block == 2210 - 16
    sink = run_polling(tmp_path, steps, clock=clock)
    assert _trade_blocks(sink) == [2201]


class CappedExplorer(FakeExplorer):
    """Pages as Etherscan does (``page``/``offset``) and, as it does since 2026-07,
    answers at most 1,000 records a call whatever ``offset`` asks."""

    CAP = 1000

    async def handle(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        if q["module"] == "proxy":
            return await super().handle(request)
        self.queries.append(q)
        frm, to = int(q["fromBlock"]), int(q["toBlock"])
        page, offset = int(q["page"]), int(q["offset"])
        rows = [dict(r, timeStamp=r["blockTimestamp"]) for r in self.logs
                if frm <= int(r["blockNumber"], 16) <= to and r["topics"][2] == q["topic2"]]
        start = (page - 1) * offset
        rows = rows[start:start + min(offset, self.CAP)]
        if not rows:
            return web.json_response({"status": "0", "message": "No records found",
                                      "result": []})
        return web.json_response({"status": "1", "message": "OK", "result": rows})


def test_a_page_size_above_the_explorer_s_1000_record_cap_loses_no_trade(
        tmp_path: Path) -> None:
    """``explorer_page_size`` may be set up to 10,000 (the cap before 2026-07): the
    explorer answered 1,000 of the 1,500 trades of the range, fewer than the page asked,
    so the client took the page for the last, and the cursor moved over the other 500
    (lost for good). A call never asks more than the 1,000 records one can hold."""
    clock = ManualClock()
    fake = CappedExplorer()

    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.head = 100
        await poller.poll_once()
        fake.logs += [order_filled(block=101 + i // 100, tx=i + 1, log_index=i % 100)
                      for i in range(1500)]
        clock.advance(60)
        fake.head = 130
        assert await poller.poll_once() == 1
        assert store.cursor(WALLET).block == 130 - 16
    sink = run_polling(tmp_path, steps, clock=clock, fake=fake, page_size=5000)
    assert len(_trade_blocks(sink)) == 1500  # before: 1000
    assert {q["offset"] for q in fake.queries if q["module"] == "logs"} == {"1000"}


class RangeBlindExplorer(FakeExplorer):
    """Answers getLogs with every log of the wallet, whatever ``fromBlock``/``toBlock``
    ask (a broken cache or proxy in front of the explorer)."""

    async def handle(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        if q["module"] == "proxy":
            return await super().handle(request)
        self.queries.append(q)
        rows = [dict(r, timeStamp=r["blockTimestamp"]) for r in self.logs
                if r["topics"][2] == q["topic2"]]
        return web.json_response({"status": "1", "message": "OK", "result": rows})


def test_rows_outside_the_asked_range_are_not_delivered(tmp_path: Path) -> None:
    """An explorer answering rows outside ``fromBlock..toBlock``: a trade of long ago,
    whose dedup id was pruned, went to the sink again as new; rows past ``toBlock`` are
    asked again by the poll that covers them. Such rows are counted and skipped."""
    clock = ManualClock()
    fake = RangeBlindExplorer()

    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.head = 100
        await poller.poll_once()
        fake.logs += [order_filled(block=150, tx=1), order_filled(block=1500, tx=2)]
        for head in range(200, 2201, 200):
            clock.advance(400)
            fake.head = head
            assert await poller.poll_once() == 1
        assert store.prune_outbox() == 2 and store.prune_delivered(1024) == 1
        fake.logs.append(order_filled(block=2300, tx=3))  # past the next poll's head
        clock.advance(15)
        fake.head = 2207
        assert await poller.poll_once() == 1
        clock.advance(200)
        fake.head = 2310
        assert await poller.poll_once() == 1
    sink = run_polling(tmp_path, steps, clock=clock, fake=fake)
    assert _trade_blocks(sink) == [150, 1500, 2300]  # before: [150, 1500, 150, 2300]


class NoLogIndexExplorer(FakeExplorer):
    """Leaves ``logIndex`` out of its rows while ``strip`` is set."""

    strip = True

    async def handle(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        if q["module"] == "proxy" or not self.strip:
            return await super().handle(request)
        self.queries.append(q)
        frm, to = int(q["fromBlock"]), int(q["toBlock"])
        rows = [{k: v for k, v in dict(r, timeStamp=r["blockTimestamp"]).items()
                 if k != "logIndex"} for r in self.logs
                if frm <= int(r["blockNumber"], 16) <= to and r["topics"][2] == q["topic2"]]
        return web.json_response({"status": "1", "message": "OK", "result": rows})


def test_a_row_without_log_index_is_not_taken_for_log_0(tmp_path: Path) -> None:
    """Two fills of the wallet in one transaction (logs 3 and 4), shown first without
    ``logIndex``: both were read as log 0, one trade ``tx:0`` went out and the other was
    dropped as its repeat; once the explorer (or, in the fallback, the node) showed them
    whole, ``tx:3`` and ``tx:4`` went out too - three trades for two fills. A row without
    the field that names the log is a bad row, as one without a transaction hash."""
    clock = ManualClock()
    fake = NoLogIndexExplorer()

    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        assert isinstance(fake, NoLogIndexExplorer)
        fake.head = 100
        await poller.poll_once()
        fake.logs += [order_filled(block=105, tx=7, log_index=3),
                      order_filled(block=105, tx=7, log_index=4)]
        clock.advance(15)
        fake.head = 110
        await poller.poll_once()
        fake.strip = False
        clock.advance(15)
        fake.head = 117
        await poller.poll_once()
    sink = run_polling(tmp_path, steps, clock=clock, fake=fake)
    ids = [e.trade_id for e in sink.events if e.kind == "trade"]
    assert [i.split(":")[1] for i in ids] == ["3", "4"]  # before: ["0", "3", "4"]


class FlakyPagingExplorer(CappedExplorer):
    """Pages as Etherscan does; one getLogs call in three fails (an HTML 502, as a
    gateway answers a heavy query it gave up on)."""

    calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        if request.query["module"] == "logs":
            self.calls += 1
            if self.calls % 3 == 0:
                self.queries.append(dict(request.query))
                return web.Response(status=502, text="<html>502 Bad Gateway</html>",
                                    content_type="text/html")
        return await super().handle(request)


def test_a_range_of_more_pages_than_one_poll_gets_through_still_moves_on(
        tmp_path: Path) -> None:
    """A busy wallet after an outage: 3,000 trades (three pages) since its cursor, and
    one explorer call in three fails. A poll threw away the pages it had and kept the
    cursor: every poll fetched two pages and failed on the next, no trade was delivered
    and the cursor never moved, for good. The pages a poll got are delivered and the
    cursor moves over the blocks they hold whole."""
    clock = ManualClock()
    fake = FlakyPagingExplorer()

    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.head = 100
        await poller.poll_once()
        fake.logs += [order_filled(block=101 + i // 100, tx=i + 1, log_index=i % 100)
                      for i in range(3000)]
        fake.head = 140
        for _ in range(4):
            clock.advance(15)
            await poller.poll_once()
        assert store.cursor(WALLET).block == 140 - 16
    sink = run_polling(tmp_path, steps, clock=clock, fake=fake)
    assert len(_trade_blocks(sink)) == 3000  # before: 0


def test_a_block_the_explorer_indexed_in_part_is_completed_by_the_overlap(
        tmp_path: Path) -> None:
    """Pins the overlap against index lag: the explorer shows one of block 105's two
    fills when its head is 110, the other a poll later; both are delivered, once each,
    and the cursor never passes head - overlap."""
    clock = ManualClock()
    first, second = (order_filled(block=105, tx=5, log_index=i) for i in (0, 1))

    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        fake.head = 100
        await poller.poll_once()
        fake.logs.append(first)
        for head, late in ((110, None), (117, second), (124, None)):
            if late is not None:
                fake.logs.append(late)
            clock.advance(15)
            fake.head = head
            assert await poller.poll_once() == 1
            assert store.cursor(WALLET).block == max(99, head - 16)
    sink = run_polling(tmp_path, steps, clock=clock)
    assert [e.trade_id for e in sink.events] == [f"{first['transactionHash']}:0",
                                                 f"{first['transactionHash']}:1"]
