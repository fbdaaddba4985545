"""The explorer's pages as the poller reads them: rows that do not come in block order.

Etherscan answers getLogs in block order, and the client leans on it twice: past the
10,000-record result window it asks again from the last block seen, and when a later
page fails it keeps the blocks below the last row seen as whole. An explorer (or a cache
or proxy in front of it) answering newest first made both skip rows for good."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import pytest
from aiohttp import web
from monitor_helpers import order_filled
from test_explorer_client import with_server
from test_polling import FakeExplorer
from test_polling_hunt import CappedExplorer, Steps, _trade_blocks, run_polling

from monitor import explorer_client
from monitor.clock import ManualClock
from monitor.errors import BadResponse
from monitor.polling import PollingMonitor
from monitor.store import Store


class NewestFirstExplorer(CappedExplorer):
    """Pages as Etherscan does, but newest block first while ``newest_first``;
    ``fail_page`` (when set) answers that page with a gateway's HTML 502, and ``window``
    refuses pages past it."""

    CAP = 100
    newest_first = True
    fail_page: int | None = None
    window = 10_000

    async def handle(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        if q["module"] == "proxy":
            return await FakeExplorer.handle(self, request)
        self.queries.append(q)
        page, offset = int(q["page"]), int(q["offset"])
        if page == self.fail_page:
            return web.Response(status=502, text="<html>502 Bad Gateway</html>",
                                content_type="text/html")
        if page * offset > self.window:
            return web.json_response({"status": "0", "message": "NOTOK", "result":
                                      "Result window is too large, PageNo x Offset size "
                                      f"must be less than or equal to {self.window}"})
        frm, to = int(q["fromBlock"]), int(q["toBlock"])
        rows = [dict(r, timeStamp=r["blockTimestamp"]) for r in self.logs
                if frm <= int(r["blockNumber"], 16) <= to and r["topics"][2] == q["topic2"]]
        if self.newest_first:
            rows.sort(key=lambda r: -int(r["blockNumber"], 16))
        rows = rows[(page - 1) * offset:(page - 1) * offset + min(offset, self.CAP)]
        if not rows:
            return web.json_response({"status": "0", "message": "No records found",
                                      "result": []})
        return web.json_response({"status": "1", "message": "OK", "result": rows})


def _busy_wallet_steps(n: int, *, fixed_after: int = 0) -> Steps:
    """``n`` trades of WALLET in blocks 101..., polled up to head 400 (the cursor ends at
    400 - 16), then ``fixed_after`` more polls with the explorer in block order."""
    async def steps(fake: FakeExplorer, poller: PollingMonitor, store: Store) -> None:
        assert isinstance(fake, NewestFirstExplorer)
        clock = poller.clock
        assert isinstance(clock, ManualClock)
        fake.head = 100
        await poller.poll_once()
        fake.logs += [order_filled(block=101 + i // 10, tx=i + 1, log_index=i % 10)
                      for i in range(n)]
        for head in (250, 400):
            clock.advance(300)
            fake.head = head
            await poller.poll_once()
        for _ in range(fixed_after):
            fake.newest_first, fake.fail_page = False, None  # in block order again
            clock.advance(15)
            fake.head += 7
            await poller.poll_once()
    return steps


def test_rows_newest_first_past_the_result_window_lose_no_trade(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """500 trades in blocks 101..150, a window of 300 records: the client read 300 rows
    of blocks 150..121 and asked again from block 150, the highest it had seen, so the
    trades of blocks 101..120 were never asked for, and the cursor moved past them.
    Rows out of block order now make the poll fail (cursor kept) rather than page on."""
    monkeypatch.setattr(explorer_client, "RESULT_WINDOW", 300)
    clock = ManualClock()
    fake = NewestFirstExplorer()
    fake.window = 300
    sink = run_polling(tmp_path, _busy_wallet_steps(500, fixed_after=1), clock=clock,
                       fake=fake, page_size=100)
    got = sorted(set(_trade_blocks(sink)))
    assert got == list(range(101, 151)), f"blocks never delivered: " \
        f"{sorted(set(range(101, 151)) - set(got))}"  # before: 101..120 never


def test_rows_newest_first_then_a_failed_page_move_the_cursor_over_nothing_unseen(
        tmp_path: Path) -> None:
    """300 trades in blocks 101..130, pages of 100, the second page a 502: the first
    page held blocks 130..121, and the client kept every block below 130 as whole, so
    the cursor moved over blocks 101..120, never delivered."""
    clock = ManualClock()
    fake = NewestFirstExplorer()
    fake.fail_page = 2
    sink = run_polling(tmp_path, _busy_wallet_steps(300, fixed_after=1), clock=clock,
                       fake=fake, page_size=100)
    got = sorted(set(_trade_blocks(sink)))
    assert got == list(range(101, 131)), f"blocks never delivered: " \
        f"{sorted(set(range(101, 131)) - set(got))}"  # before: 101..120 never


def test_an_answer_far_larger_than_a_page_of_rows_is_refused_before_it_is_parsed() -> None:
    """A page holds at most 1,000 records (about 1.2 KB each as getLogs shows an
    OrderFilled). An explorer, cache or gateway answering 12 MB of tiny rows was read up
    to the 64 MB bound of an eth_getLogs answer and parsed whole before the row count was
    checked: 4 million dicts, about 300 MB of memory and a second of the event loop for
    one answer (1.6 GB and 4 s at 63 MB), an OOM kill on a small VM. The explorer's
    answers are bounded by what a page can hold."""
    body = (b'{"status":"1","message":"OK","result":[' + b"{}," * 4_000_000 + b"{}]}")

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    async def go(client: explorer_client.ExplorerClient, seen: list[dict]) -> None:
        tracemalloc.start()
        try:
            with pytest.raises(BadResponse) as err:
                await client.get_logs(from_block=1, to_block=10, topics={2: "0x" + "0" * 64})
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert err.value.kind == "too_large", err.value  # before: parsed, then refused
        assert peak < 40_000_000, f"{peak / 1e6:.0f} MB at peak"
    asyncio.run(with_server(handler, go))
