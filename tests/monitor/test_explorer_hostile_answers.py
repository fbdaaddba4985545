"""Hostile explorer answers, fed to the poller over a real loopback server: each must end
as a clear logged error and a counted failure, never a traceback, and lose or repeat no
trade (the cursor stays below what was not read whole), with bounded memory.

A scripted explorer on loopback (real aiohttp client and server, real SQLite)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from monitor_helpers import WALLET, order_filled
from test_polling_baseline import Alerts, IndexExplorer, served_explorer

from monitor.clock import ManualClock
from monitor.explorer_client import ExplorerClient
from monitor.pipeline import Pipeline
from monitor.polling import PollingMonitor
from monitor.sinks import MemorySink
from monitor.store import Store

PAGE = 10
Answer = Callable[["Hostile", dict[str, str]], web.StreamResponse]


def _rows(fake: IndexExplorer, q: dict[str, str]) -> list[dict[str, Any]]:
    frm, to = int(q["fromBlock"]), min(int(q["toBlock"]), fake.indexed)
    return [dict(r, timeStamp=r["blockTimestamp"]) for r in fake.logs
            if frm <= int(r["blockNumber"], 16) <= to and r["topics"][2] == q["topic2"]]


def _ok(rows: Any) -> web.Response:
    return web.json_response({"status": "1", "message": "OK", "result": rows})


def _paged(fake: IndexExplorer, q: dict[str, str]) -> web.Response:
    page, offset = int(q["page"]), int(q["offset"])
    rows = _rows(fake, q)[(page - 1) * offset:page * offset]
    if not rows:
        return web.json_response({"status": "0", "message": "No records found",
                                  "result": []})
    return _ok(rows)


class Hostile(IndexExplorer):
    """Pages a wallet's getLogs as Etherscan does; ``bad`` (while set) answers them
    instead. Every other call (the head, the index head, a block's hash) is sane."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: Answer | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        q = dict(request.query)
        if q.get("module") != "logs" or "topic2" not in q:
            return await super().handle(request)
        self.queries.append(q)
        if self.bad is not None:
            return self.bad(self, q)
        return _paged(self, q)


def _run(tmp_path: Path, bad: Answer, *, trades: int = 1, bad_rounds: int = 1
         ) -> tuple[list[tuple[int, str]], list[int], dict[str, int], int, list[str]]:
    """``trades`` trades of WALLET in blocks 110... (three a block); ``bad_rounds`` polls
    answered by ``bad``, then sane ones. Returns the trades delivered (block, id), the
    cursor after each bad round, the poller's counters, the client's bad rows and the
    alerts."""
    clock = ManualClock()
    alerts = Alerts()
    sink = MemorySink()
    fake = Hostile()
    cursors: list[int] = []
    counters: dict[str, int] = {}
    bad_rows: list[int] = []

    async def go() -> None:
        async with served_explorer(fake) as url, aiohttp.ClientSession() as session:
            store = Store(tmp_path / "s.db")
            try:
                client = ExplorerClient(url, session, rate_per_s=1000, speed=1000,
                                        page_size=PAGE, rate_limit_retries=1)
                pipe = Pipeline(store, sink, wallets=(WALLET,), clock=clock)
                pipe.alerts = alerts
                poller = PollingMonitor(client, pipe, store, wallets=(WALLET,),
                                        interval=15, overlap_blocks=16, start_block=100,
                                        clock=clock, block_interval=2.0)
                fake.head = fake.indexed = 100
                await poller.poll_once()
                fake.logs += [order_filled(block=110 + i // 3, tx=i + 1, log_index=i % 3)
                              for i in range(trades)]
                fake.head = fake.indexed = 110 + trades // 3 + 40
                fake.bad = bad
                for _ in range(bad_rounds):
                    clock.advance(15)
                    await poller.poll_once()
                    cursors.append(store.cursor(WALLET).block)
                fake.bad = None
                for _ in range(6):
                    clock.advance(3600)
                    fake.head = fake.indexed = fake.head + 5
                    await poller.poll_once()
                await pipe.flush_alerts(5.0)
                counters.update(poller.counters)
                counters["decode_errors"] = pipe.counters["decode_errors"]
                bad_rows.append(client.bad_rows)
            finally:
                store.close()

    asyncio.run(asyncio.wait_for(go(), 60))
    got = [(e.trade.block_number, e.trade.id) for e in sink.events
           if e.kind == "trade" and e.trade is not None]
    return got, cursors, counters, bad_rows[0], [k for k, _t in alerts.sent]


def _html(status: int) -> Answer:
    return lambda fake, q: web.Response(status=status, content_type="text/html",
                                        text="<html><body>Bad Gateway</body></html>")


def _body(obj: Any, status: int = 200) -> Answer:
    return lambda fake, q: web.json_response(obj, status=status)


_WHOLE_ANSWER_FAILS: dict[str, Answer] = {
    "html_200": _html(200),
    "html_502": _html(502),
    "html_503": _html(503),
    "json_array": _body([1, 2, 3]),
    "json_string": _body("Bad Gateway"),
    "json_null": _body(None),
    "result_string": _body({"status": "1", "message": "OK", "result": "oops"}),
    "result_object": _body({"status": "1", "message": "OK", "result": {"a": 1}}),
    "no_status": _body({"message": "OK", "result": []}),
    "notok_unknown": _body({"status": "0", "message": "NOTOK", "result": "Error! Oops"}),
    "empty_with_rows": lambda fake, q: web.json_response(
        {"status": "0", "message": "No records found", "result": _rows(fake, q)[:PAGE]}),
    "too_many_rows": lambda fake, q: _ok(_rows(fake, q) * 4),
    "huge_number_json": lambda fake, q: web.Response(
        text='{"status":"1","message":"OK","result":' + "9" * 5000 + "}",
        content_type="application/json"),
    "invalid_utf8": lambda fake, q: web.Response(
        body=b'{"status":"1","message":"\xff\xfe","result":[]}',
        content_type="application/json"),
    "too_large": lambda fake, q: web.Response(
        body=b'{"status":"1","message":"OK","result":[' + b'"x",' * 3_000_000 + b'"x"]}',
        content_type="application/json"),
}


@pytest.mark.parametrize("case", sorted(_WHOLE_ANSWER_FAILS))
def test_a_hostile_answer_is_a_counted_error_and_loses_no_trade(
        tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    got, cursors, counters, _bad, _alerts = _run(tmp_path, _WHOLE_ANSWER_FAILS[case],
                                                 trades=6)
    assert counters.get("errors", 0) >= 1, counters
    assert cursors == [99], cursors  # nothing read: the cursor stays
    assert len(got) == 6 and len(set(got)) == 6, got
    assert any(r.name.startswith("monitor") and r.levelno >= logging.WARNING
               and "poll of" in r.getMessage() for r in caplog.records)
    assert "Traceback" not in caplog.text


def _row(fake: IndexExplorer, q: dict[str, str], **change: Any) -> web.Response:
    """The answer with one more row: the first row changed by ``change``."""
    rows = _rows(fake, q)[:PAGE - 1]
    return _ok([*rows, dict(rows[0], **change)])


_BAD_ROWS: dict[str, dict[str, Any]] = {
    "block_huge": {"blockNumber": "0x" + "f" * 40},
    "block_no_0x": {"blockNumber": "9"},  # not "0x9": decimal, outside the range anyway
    "block_not_hex": {"blockNumber": "0xzz"},
    "log_index_list": {"logIndex": [1]},
    "tx_hash_number": {"transactionHash": 12345},
    "topics_string": {"topics": "0xabc"},
    "data_odd_hex": {"data": "0x123", "logIndex": "0x7"},
    "tx_hash_short": {"transactionHash": "0x1234", "logIndex": "0x8"},
    "block_hash_odd": {"blockHash": "0x123", "logIndex": "0x9"},
    "timestamp_future": {"timeStamp": hex(1 << 62), "logIndex": "0xa"},
    "timestamp_huge": {"timeStamp": "0x" + "f" * 40, "logIndex": "0xb"},
}


@pytest.mark.parametrize("case", sorted(_BAD_ROWS))
def test_a_hostile_row_is_skipped_and_counted_beside_good_rows(
        tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    change = _BAD_ROWS[case]
    got, _cursors, counters, bad, _alerts = _run(
        tmp_path, lambda fake, q: _row(fake, q, **change), trades=6)
    ids = {t for _b, t in got}
    assert len(got) == len(ids), got  # none twice
    assert len(ids) >= 6, got  # none of the six lost
    assert "Traceback" not in caplog.text
    assert bad or counters.get("bad_input", 0) or counters.get("decode_errors", 0) \
        or len(ids) == 7, (bad, counters)


@pytest.mark.parametrize("case", ["data_odd_hex", "tx_hash_short", "block_hash_odd",
                                  "topic_short"])
def test_a_row_cut_short_is_the_clients_bad_row_not_a_decode_error(
        tmp_path: Path, case: str) -> None:
    """A hash, a topic or the data cut short passed the client's row check and was
    refused later by the decoder: counted under the pipeline's ``decode_errors``, not the
    explorer client's bad rows (what the operator reads as "the explorer sends garbage")."""
    def answer(fake: IndexExplorer, q: dict[str, str]) -> web.Response:
        if case == "topic_short":
            first = _rows(fake, q)[0]
            topics = [first["topics"][0], "0x1234", *first["topics"][2:]]
            return _row(fake, q, topics=topics, logIndex="0xd")
        return _row(fake, q, **_BAD_ROWS[case])

    got, _cursors, counters, bad, _alerts = _run(tmp_path, answer, trades=6)
    assert len({t for _b, t in got}) == len(got) == 6, got  # none lost, none twice
    assert bad >= 1 and not counters.get("decode_errors"), (bad, counters)


def test_a_row_number_without_0x_is_a_bad_row_not_a_decimal(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """getLogs rows are hex. A ``blockNumber`` of "111" was read as decimal 111 (the
    explorer's hex would be 0x111 = 273): a row delivered as a trade of a block it is
    not in. (The proxy head's decimal stays read: test_provider_hunt_explorer.)"""
    caplog.set_level(logging.WARNING)
    got, _cursors, _counters, bad, _alerts = _run(
        tmp_path, lambda fake, q: _row(fake, q, blockNumber="111", logIndex="0xc"),
        trades=6)
    assert sorted(b for b, _t in got) == [110, 110, 110, 111, 111, 111], got
    assert bad >= 1
    assert "no 0x" in caplog.text


def test_rows_repeated_across_pages_are_delivered_once(tmp_path: Path) -> None:
    def overlapping(fake: Hostile, q: dict[str, str]) -> web.Response:
        page, offset = int(q["page"]), int(q["offset"])
        rows = _rows(fake, q)
        start = max((page - 1) * offset - 3, 0)  # each page repeats 3 rows of the last
        return _ok(rows[start:start + offset]) if rows[start:] else web.json_response(
            {"status": "0", "message": "No records found", "result": []})
    got, _cursors, _counters, _bad, _alerts = _run(tmp_path, overlapping, trades=45)
    assert len(got) == 45 and len(set(got)) == 45


def test_a_page_that_repeats_the_previous_one_is_an_error_not_a_loop(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A cache in front that ignores ``page``: every page is the first. It was asked
    page after page to the end of the result window and again from its last block, ~20
    calls a wallet a round for nothing new; now the repeat is a counted error, the pages
    before it are used and the rest asked next round."""
    calls: list[int] = []

    def first_page_always(fake: Hostile, q: dict[str, str]) -> web.Response:
        calls.append(int(q["page"]))
        return _ok(_rows(fake, q)[:PAGE])
    caplog.set_level(logging.WARNING)
    got, cursors, counters, _bad, _alerts = _run(tmp_path, first_page_always, trades=45)
    assert len(got) == 45 and len(set(got)) == 45
    assert counters.get("errors", 0) >= 1
    assert len(calls) <= 3, calls
    assert cursors[0] < 113, cursors  # page 1 held blocks 110..113: 113 not whole
    assert "repeats" in caplog.text


@pytest.mark.parametrize("delay_s,alert", [(3 * 3600, "explorer_quota"), (-60, None)])
def test_a_429_retry_after_as_an_http_date(tmp_path: Path, delay_s: int,
                                           alert: str | None,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """Retry-After as an HTTP-date: hours ahead is a quota (a long pause, one alert); in
    the past, a plain rate limit (retried, then a counted error)."""
    when = email.utils.formatdate(time.time() + delay_s, usegmt=True)

    def limited(fake: Hostile, q: dict[str, str]) -> web.Response:
        return web.Response(status=429, text="Too Many Requests",
                            headers={"Retry-After": when})
    caplog.set_level(logging.WARNING)
    got, cursors, counters, _bad, alerts = _run(tmp_path, limited, trades=6)
    assert cursors == [99]
    assert len(got) == 6 and len(set(got)) == 6
    assert counters.get("errors", 0) >= 1
    if alert is not None:
        assert alert in alerts and counters.get("quota_exhausted") == 1
    else:
        assert "explorer_quota" not in alerts
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("value", ["Wed, 21 Oct 99999 07:28:00 GMT", "inf", "nan", "-5",
                                   "1e400", "Mon, 32 Foo 2026 99:99:99 GMT", "",
                                   "\x00", "Fri, 31 Dec 9999 23:59:59 +9999"])
def test_a_hostile_retry_after_is_read_or_ignored(value: str) -> None:
    from polyvocab.policies import parse_retry_after
    got = parse_retry_after(value)
    assert got is None or got >= 0.0


def test_the_explorer_s_hostile_head_answers_are_counted_errors(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The proxy head (``eth_blockNumber``) answered as garbage: a counted error each,
    no traceback, no cursor moved."""
    answers: list[web.Response] = [
        web.Response(status=200, text="<html>oops</html>", content_type="text/html"),
        web.json_response([1]), web.json_response("0x10"),
        web.json_response({"jsonrpc": "2.0", "id": 1, "result": ["0x10"]}),
        web.json_response({"jsonrpc": "2.0", "id": 1, "result": "0x" + "f" * 40}),
        web.json_response({"jsonrpc": "2.0", "id": 1, "result": "12zz"}),
        web.json_response({"jsonrpc": "2.0", "id": 1, "result": 1e300}),
    ]
    caplog.set_level(logging.WARNING)
    clock = ManualClock()
    sink = MemorySink()
    errors: list[int] = []

    class HeadHostile(Hostile):
        async def handle(self, request: web.Request) -> web.StreamResponse:
            if request.query.get("module") == "proxy" and answers:
                return answers.pop(0)
            return await super().handle(request)
    fake = HeadHostile()

    async def go() -> None:
        async with served_explorer(fake) as url, aiohttp.ClientSession() as session:
            store = Store(tmp_path / "s.db")
            try:
                client = ExplorerClient(url, session, rate_per_s=1000, speed=1000)
                pipe = Pipeline(store, sink, wallets=(WALLET,), clock=clock)
                poller = PollingMonitor(client, pipe, store, wallets=(WALLET,),
                                        interval=15, overlap_blocks=16, start_block=100,
                                        clock=clock, block_interval=2.0)
                fake.logs.append(order_filled(block=105, tx=1))
                fake.head = fake.indexed = 130
                n = len(answers)
                for _ in range(n):
                    clock.advance(15)
                    await poller.poll_once()
                errors.append(poller.counters["errors"])
                clock.advance(15)
                await poller.poll_once()
            finally:
                store.close()

    asyncio.run(asyncio.wait_for(go(), 60))
    assert errors == [7]
    assert [e.trade.block_number for e in sink.events
            if e.kind == "trade" and e.trade is not None] == [105]
    assert "Traceback" not in caplog.text


def test_a_body_of_json_not_an_envelope_is_a_failed_call_in_the_counts(
        tmp_path: Path) -> None:
    """An array or a string as the body: the call was counted a success in the client's
    call metrics (the poller failed it later)."""
    failures: list[dict[str, int]] = []

    async def go() -> None:
        async def handle(request: web.Request) -> web.Response:
            return web.json_response(json.loads(request.query["body"]))
        app = web.Application()
        app.router.add_get("/v2/api", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v2/api"
        try:
            async with aiohttp.ClientSession() as session:
                client = ExplorerClient(url + "?body=%5B1%5D", session, rate_per_s=1000)
                with pytest.raises(Exception) as err:
                    await client.block_number()
                assert type(err.value).__name__ == "BadResponse"
                failures.append(dict(client.calls.failures))
        finally:
            await runner.cleanup()

    asyncio.run(asyncio.wait_for(go(), 30))
    assert failures == [{"bad_response": 1}]
