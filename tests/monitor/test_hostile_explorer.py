"""What a real or hostile Etherscan-V2 explorer answers, and what the client and the
poller make of it: each defect found as a regression test against a fake explorer on
loopback (:class:`test_polling_baseline.IndexExplorer`). No fixed sleeps.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from monitor_helpers import WALLET, order_filled
from test_polling_baseline import IndexExplorer, run, served_explorer, trades

from monitor.clock import ManualClock
from monitor.errors import BadResponse, ServerError
from monitor.explorer_client import MAX_ANSWER_VALUES, ExplorerClient, PartialLogs
from monitor.polling import PollingMonitor
from monitor.store import Store
from polyvocab import address_topic

TIMEOUT_TEXT = "Query Timeout occured. Please select a smaller result dataset"


class TimingOut(IndexExplorer):
    """Etherscan on a heavy query: a getLogs of more than ``span`` blocks is answered
    NOTOK "Query Timeout occured", every time; smaller ones are served."""

    def __init__(self, span: int) -> None:
        super().__init__()
        self.span = span
        self.timeouts = 0

    async def handle(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("action") == "getLogs" and int(q["toBlock"]) - int(q["fromBlock"]) >= self.span:
            self.timeouts += 1
            self.queries.append(dict(q))
            return web.json_response({"status": "0", "message": "NOTOK",
                                      "result": TIMEOUT_TEXT})
        return await super().handle(request)


def test_a_range_the_explorer_times_out_on_is_asked_in_smaller_ranges(
        tmp_path: Path) -> None:
    """A wallet whose cursor is far behind (a first run from an old start block, a long
    outage): Etherscan answers its getLogs "Query Timeout occured. Please select a
    smaller result dataset", as it does for every query that heavy. The client raised it
    as any NOTOK, the poller kept its cursor and asked the same range next interval, for
    ever: no trade of that wallet was ever polled again. The range is now halved until
    the explorer answers, then walked on in windows of that size."""
    clock = ManualClock()
    fake = TimingOut(span=300)

    async def steps(fake_: IndexExplorer, poller: PollingMonitor, store: Store) -> None:
        await poller.poll_once()  # head 100: the wallet starts there
        fake.logs.append(order_filled(block=1500, tx=1))
        fake.head = fake.indexed = 2000
        clock.advance(2 * 1900)  # 2-s blocks
        for _ in range(3):
            await poller.poll_once()
            clock.advance(15)
    sink = run(tmp_path, steps, clock=clock, fake=fake)
    assert fake.timeouts > 0
    assert trades(sink) == [1500]


class TimingOutThenDown(TimingOut):
    """:class:`TimingOut`, and a 502 page for every getLogs from block ``down_from`` on."""

    def __init__(self, span: int, down_from: int) -> None:
        super().__init__(span)
        self.down_from = down_from

    async def handle(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("action") == "getLogs" and int(q["fromBlock"]) >= self.down_from:
            return web.Response(status=502, text="<html>Bad Gateway</html>")
        return await super().handle(request)


def test_windows_answered_whole_before_a_failure_are_kept() -> None:
    """The range walked in windows after a timeout, then the explorer fails (a 502): the
    windows it answered whole are the caller's (:class:`PartialLogs` up to the last
    one's end), not asked again and again."""
    fake = TimingOutThenDown(span=300, down_from=577)
    fake.head = fake.indexed = 2000
    fake.logs += [order_filled(block=200, tx=1), order_filled(block=500, tx=2),
                  order_filled(block=900, tx=3)]

    async def go() -> None:
        async with served_explorer(fake) as url, aiohttp.ClientSession() as session:
            client = ExplorerClient(url, session, rate_per_s=1000, speed=1000)
            with pytest.raises(PartialLogs) as err:
                await client.get_logs(from_block=101, to_block=2000,
                                      topics={2: address_topic(WALLET)})
            part = err.value
            # 101..2000, ..1050, ..575 timed out; 101..338 whole, 339..814 timed out,
            # 339..576 whole, 577.. down
            assert part.complete_to == 576
            assert sorted(int(lg["blockNumber"], 16) for lg in part.logs) == [200, 500]
            assert isinstance(part.cause, ServerError)
            assert client.narrowings == 4
    asyncio.run(go())


def test_an_explorer_answer_of_tiny_values_is_refused_before_it_is_parsed() -> None:
    """Under the 8 MB answer bound, ``[],`` three bytes a value is 2.8 M empty lists
    (~200 MB, a second of the event loop to parse). Past
    :data:`~monitor.explorer_client.MAX_ANSWER_VALUES` values it is refused unparsed."""
    fake = IndexExplorer()

    async def flood(request: web.Request) -> web.Response:
        rows = "[" + "[]," * (MAX_ANSWER_VALUES + 10) + "[]]"
        return web.Response(text='{"status":"1","message":"OK","result":' + rows + "}",
                            content_type="application/json")
    fake.handle = flood  # type: ignore[method-assign]

    async def go() -> None:
        async with served_explorer(fake) as url, aiohttp.ClientSession() as session:
            client = ExplorerClient(url, session, rate_per_s=1000, speed=1000)
            with pytest.raises(BadResponse) as err:
                await client.get_logs(from_block=1, to_block=10)
            assert err.value.kind == "too_large"
    asyncio.run(go())
