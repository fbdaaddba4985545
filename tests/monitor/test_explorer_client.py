"""The explorer client against a scripted Etherscan-like server on loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from monitor_helpers import order_filled

from monitor.errors import BadResponse, ConnectError, RateLimited, ServerError, Timeout
from monitor.explorer_client import ExplorerClient, ExplorerNotOk, explorer_log_to_rpc
from monitor.history import History
from monitor.trades import decode_order_filled

KEY = "EXPLORERKEY1234567890SECRET"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ok(result: Any) -> web.Response:
    return web.json_response({"status": "1", "message": "OK", "result": result})


def notok(text: str) -> web.Response:
    return web.json_response({"status": "0", "message": "NOTOK", "result": text})


def as_row(log: dict[str, Any]) -> dict[str, Any]:
    """A log as the explorer's getLogs shows it (hex strings, zero as "0x", timeStamp)."""
    return {"address": log["address"], "topics": log["topics"], "data": log["data"],
            "blockNumber": log["blockNumber"], "blockHash": log["blockHash"],
            "timeStamp": log["blockTimestamp"], "gasPrice": "0x", "gasUsed": "0x",
            "logIndex": "0x" if log["logIndex"] == "0x0" else log["logIndex"],
            "transactionHash": log["transactionHash"], "transactionIndex": "0x"}


Body = Callable[[ExplorerClient, list[dict]], Awaitable[Any]]


async def with_server(handler: Handler, body: Body, tmp_path: Path | None = None, **kw: Any) -> Any:
    seen: list[dict] = []

    async def wrapped(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.query))
        return await handler(request)

    app = web.Application()
    app.router.add_get("/v2/api", wrapped)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            hist = History(tmp_path / "h.jsonl") if tmp_path else None
            client = ExplorerClient(f"http://127.0.0.1:{port}/v2/api", session, api_key=KEY,
                                    rate_per_s=kw.pop("rate_per_s", 1000), history=hist, **kw)
            return await body(client, seen)
    finally:
        await runner.cleanup()


def test_block_number_and_logs_in_decoder_shape(tmp_path: Path) -> None:
    log = order_filled(block=100, log_index=0)

    async def handler(request: web.Request) -> web.Response:
        if request.query["module"] == "proxy":
            return web.json_response({"jsonrpc": "2.0", "id": 83, "result": "0x1f4"})
        return ok([as_row(log)])

    async def body(c: ExplorerClient, seen: list[dict]) -> None:
        assert await c.block_number() == 500
        logs = await c.get_logs(from_block=1, to_block=500, topics={2: log["topics"][2]})
        t = decode_order_filled(logs[0])
        assert t == decode_order_filled(log)
        assert seen[1]["topic2"] == log["topics"][2] and seen[1]["chainid"] == "137"
        assert seen[1]["apikey"] == KEY and seen[1]["offset"] == "1000"
        assert c.calls.total == 2
    asyncio.run(with_server(handler, body, tmp_path))
    rows = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [(r["event"], r["kind"], r["method"], r["ok"]) for r in rows] == [
        ("api_call", "explorer", "proxy.eth_blockNumber", True),
        ("api_call", "explorer", "logs.getLogs", True)]
    assert KEY not in (tmp_path / "h.jsonl").read_text()


def test_no_records_found_is_empty_success() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"status": "0", "message": "No records found", "result": []})

    async def body(c: ExplorerClient, seen: list[dict]) -> None:
        assert await c.get_logs(from_block=1, to_block=2, topics={0: "0x" + "00" * 32}) == []
        assert c.calls.failures == {}
    asyncio.run(with_server(handler, body))


@pytest.mark.parametrize("text", [
    "Max calls per sec rate limit reached (3/sec)",
    "Max rate limit reached, please use API Key for higher rate limit",
])
def test_rate_limit_texts_are_retried_with_backoff(text: str) -> None:
    calls = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        calls["n"] += 1
        return notok(text) if calls["n"] <= 2 else ok([])

    async def body(c: ExplorerClient, seen: list[dict]) -> None:
        assert await c.get_logs(from_block=1, to_block=2, address="0x" + "11" * 20) == []
        assert c.calls.total == 3 and c.calls.retries == 2
        assert c.calls.failures["rate_limited"] == 2
    asyncio.run(with_server(handler, body, speed=100))


def test_an_http_429_is_a_rate_limit_whatever_its_body_and_its_retry_after_is_kept(
        ) -> None:
    """A 429 with a plain-text or HTML body was a bad response (not retried as a rate
    limit), and its Retry-After was never read."""
    calls = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return web.Response(status=429, text="Too Many Requests",
                                headers={"Retry-After": "20"})
        return ok([])

    async def body(c: ExplorerClient, seen: list[dict]) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await c.get_logs(from_block=1, to_block=2, address="0x" + "11" * 20) == []
        assert c.calls.failures == {"rate_limited": 1} and c.calls.retries == 1
        assert loop.time() - t0 >= 20 / 100 * 0.9  # Retry-After 20 s at speed 100, not 1 s
    asyncio.run(with_server(handler, body, speed=100))


def test_a_redirect_is_refused_and_the_key_never_travels_on() -> None:
    """aiohttp follows redirects by default: an explorer answering 302 had the client ask
    whatever host the Location named."""
    elsewhere: list[str] = []

    async def other(request: web.Request) -> web.Response:
        elsewhere.append(request.path_qs)
        return ok([])

    async def body(c: ExplorerClient, seen: list[dict]) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", other)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        target["url"] = f"http://127.0.0.1:{runner.addresses[0][1]}/api?apikey={KEY}"
        try:
            with pytest.raises(BadResponse) as err:
                await c.get_logs(from_block=1, to_block=2, address="0x" + "11" * 20)
        finally:
            await runner.cleanup()
        assert err.value.kind == "redirect" and err.value.status == 302
        assert "redirected to http://127.0.0.1:" in str(err.value)
        assert KEY not in str(err.value) and "apikey=***" in str(err.value)

    target: dict[str, str] = {}

    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": target["url"]})

    asyncio.run(with_server(handler, body))
    assert elsewhere == []


def test_persistent_rate_limit_gives_up_with_rate_limited() -> None:
    async def handler(request: web.Request) -> web.Response:
        return notok("Max calls per sec rate limit reached (3/sec)")

    async def body(c: ExplorerClient, seen: list[dict]) -> None:
        with pytest.raises(RateLimited):
            await c.get_logs(from_block=1, to_block=2, address="0x" + "11" * 20)
        assert c.calls.total == 3
    asyncio.run(with_server(handler, body, speed=100, rate_limit_retries=2))


def test_html_502_notok_and_timeout_are_errors_not_crashes(tmp_path: Path) -> None:
    mode = {"m": "html"}

    async def handler(request: web.Request) -> web.Response:
        if mode["m"] == "html":
            return web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>",
                                content_type="text/html")
        if mode["m"] == "html200":
            return web.Response(status=200, text="<html>oops</html>", content_type="text/html")
        if mode["m"] == "notok":
            return notok("Invalid API Key")
        await asyncio.sleep(1.5)
        return ok([])

    async def body(c: ExplorerClient, seen: list[dict]) -> None:
        with pytest.raises(ServerError) as e1:
            await c.get_logs(from_block=1, to_block=2, address="0x" + "11" * 20)
        assert "502" in str(e1.value)
        mode["m"] = "html200"
        with pytest.raises(BadResponse):
            await c.get_logs(from_block=1, to_block=2, address="0x" + "11" * 20)
        mode["m"] = "notok"
        with pytest.raises(ExplorerNotOk, match="Invalid API Key"):
            await c.get_logs(from_block=1, to_block=2, address="0x" + "11" * 20)
        mode["m"] = "hang"
        with pytest.raises(Timeout):
            await c.get_logs(from_block=1, to_block=2, address="0x" + "11" * 20)
        assert c.calls.total == 4
        assert dict(c.calls.failures) == {"bad_response": 2, "notok": 1, "timeout": 1}
    asyncio.run(with_server(handler, body, tmp_path, timeout=0.6))
    text = (tmp_path / "h.jsonl").read_text()
    assert text.count('"ok":false') == 4 and KEY not in text


def test_connection_refused_is_a_connect_error() -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as session:
            c = ExplorerClient("http://127.0.0.1:1/v2/api", session, api_key=KEY)
            with pytest.raises(ConnectError) as info:
                await c.block_number()
            assert KEY not in str(info.value)
    asyncio.run(go())


def test_paging_asks_again_when_a_page_is_full_and_restarts_past_the_window() -> None:
    logs = [order_filled(block=100 + i // 3, tx=i, log_index=i % 3) for i in range(25)]

    async def handler(request: web.Request) -> web.Response:
        q = request.query
        frm, page, off = int(q["fromBlock"]), int(q["page"]), int(q["offset"])
        if page * off > 12:  # a tiny result window: page * offset <= 12
            return notok("Result window is too large, PageNo x Offset size must be less than "
                         "or equal to 10000")
        match = [as_row(x) for x in logs if int(x["blockNumber"], 16) >= frm]
        return ok(match[(page - 1) * off: page * off])

    async def body(c: ExplorerClient, seen: list[dict]) -> None:
        import monitor.explorer_client as ec
        old = ec.RESULT_WINDOW
        ec.RESULT_WINDOW = 12
        try:
            got = await c.get_logs(from_block=100, to_block=200, address="0x" + "11" * 20)
        finally:
            ec.RESULT_WINDOW = old
        assert [decode_order_filled(g).id for g in got] == [decode_order_filled(x).id
                                                             for x in logs]
        pages = [(s["fromBlock"], s["page"]) for s in seen]
        assert pages[:3] == [("100", "1"), ("100", "2"), ("100", "3")]
        assert len(pages) > 3 and pages[3][1] == "1" and int(pages[3][0]) > 100
    asyncio.run(with_server(handler, body, page_size=4))


def test_client_side_limiter_spaces_calls() -> None:
    import time
    stamps: list[float] = []

    async def handler(request: web.Request) -> web.Response:
        stamps.append(time.monotonic())
        return ok([])

    async def body(c: ExplorerClient, seen: list[dict]) -> None:
        for _ in range(4):
            await c.get_logs(from_block=1, to_block=2, address="0x" + "11" * 20)
    asyncio.run(with_server(handler, body, rate_per_s=5))  # 5/s, speed 1
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.15


def test_explorer_row_conversion_handles_bare_0x() -> None:
    row = as_row(order_filled(block=7))
    row["transactionIndex"] = "0x"
    out = explorer_log_to_rpc(row)
    assert out["blockTimestamp"] == hex(1_700_000_014) and out["transactionIndex"] == "0x0"
    assert out["logIndex"] == "0x0" and out["removed"] is False


def test_a_page_larger_than_asked_is_refused_and_bad_rows_are_one_history_row_a_page(
        tmp_path: Path) -> None:
    """A page of a million bad rows wrote 750 MB of history (a row each) and held the loop
    for seconds; ``{}`` rows were taken as logs with empty fields."""
    good = as_row(order_filled(block=100, log_index=0))
    pages = {"big": [good] * 11, "bad": [good, {}, {"address": "0xab"}, 5] + [{}] * 5}

    async def handler(request: web.Request) -> web.Response:
        return ok(pages[request.query["topic1"]])

    async def body(c: ExplorerClient, seen: list[dict]) -> None:
        with pytest.raises(BadResponse, match="answered 11 rows for a page of 10"):
            await c.get_logs(from_block=1, to_block=2, topics={1: "big"})
        logs = await c.get_logs(from_block=1, to_block=200, topics={1: "bad"})
        assert len(logs) == 1 and c.bad_rows == 8
    asyncio.run(with_server(handler, body, tmp_path, page_size=10))
    rows = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    bad = [r for r in rows if r["event"] == "bad_input"]
    assert [(r["kind"], r["rows"]) for r in bad] == [("explorer_bad_row", 8)]
    assert bad[0]["reason"] == "ValueError: no address"
