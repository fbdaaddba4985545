"""Explorer answers the client read wrong: each against an aiohttp server on loopback
(the real client, the real HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.errors import BadResponse
from monitor.explorer_client import ExplorerClient, ExplorerKeyRefused, explorer_log_to_rpc

#: Cloudflare's block page as Etherscan's API answered it (a 403 "Attention Required! |
#: Cloudflare", eth-brownie/brownie#642, Ekultek/WhatWaf#778), shortened
CLOUDFLARE_403 = """<!DOCTYPE html>
<html class="no-js" lang="en-US"><head>
<title>Attention Required! | Cloudflare</title>
<meta charset="utf-8"/></head><body>
<h1>Sorry, you have been blocked</h1>
<span>Cloudflare Ray ID: <strong>583a0b958da9c6f0</strong></span>
<span>Performance &amp; security by Cloudflare</span></body></html>"""


async def _ask(answer: Callable[[web.Request], Awaitable[web.StreamResponse]],
               call: Callable[[ExplorerClient], Awaitable[Any]]) -> tuple[Any, ExplorerClient]:
    app = web.Application()
    app.router.add_get("/v2/api", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            client = ExplorerClient(f"http://127.0.0.1:{port}/v2/api", session,
                                    rate_per_s=1000.0, speed=1000.0, timeout=10.0)
            try:
                return await call(client), client
            except Exception as exc:
                return exc, client
    finally:
        await runner.cleanup()


def _head(client: ExplorerClient) -> Awaitable[int]:
    return client.block_number()


def test_a_cloudflare_block_page_at_403_is_no_refused_key() -> None:
    """Etherscan behind Cloudflare answers a blocked client (its address, its User-Agent)
    with a 403 HTML page: it was an :class:`ExplorerKeyRefused`, and the poller alerted
    the operator to fix a key that is good. A :class:`BadResponse` of kind
    ``cdn_blocked`` saying the CDN blocks the client."""
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=403, text=CLOUDFLARE_403, content_type="text/html")

    got, client = asyncio.run(_ask(answer, _head))
    assert isinstance(got, BadResponse) and not isinstance(got, ExplorerKeyRefused), \
        repr(got)
    assert got.kind == "cdn_blocked" and got.status == 403
    assert "Cloudflare" in str(got)
    assert client.calls.failures == {"blocked": 1}


def test_a_403_that_is_no_cloudflare_page_still_refuses_the_key() -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=403, text="Forbidden")

    got, _ = asyncio.run(_ask(answer, _head))
    assert isinstance(got, ExplorerKeyRefused) and got.status == 403


_ROW = {"address": "0x" + "a" * 40, "topics": ["0x" + "1" * 64], "data": "0x",
        "blockNumber": "0x10", "blockHash": "0x" + "b" * 64, "timeStamp": "0x6620f5e3",
        "transactionHash": "0x" + "c" * 64, "transactionIndex": "0x", "logIndex": "0x1"}


@pytest.mark.parametrize("value", ["0x1_0", "0x+10", "0x 10", "0x10 ", "0x\u0661\u0660",
                                   "0x-0"])
@pytest.mark.parametrize("key", ["blockNumber", "logIndex", "timeStamp"])
def test_a_row_number_of_a_form_no_explorer_writes_is_a_bad_row(key: str,
                                                                value: str) -> None:
    """Python's ``int(digits, 16)`` read "0x1_0", "0x+10", "0x 10" and Arabic-Indic
    digits as 0x10: a row no explorer sends was taken for a log of block 16. A bad row."""
    with pytest.raises(ValueError, match="not a hex quantity"):
        explorer_log_to_rpc(dict(_ROW, **{key: value}))


@pytest.mark.parametrize("stamp", [None, "0x", "absent"])
def test_a_row_without_a_time_gives_a_log_without_one(stamp: str | None) -> None:
    """A row without ``timeStamp`` (or "0x") became ``blockTimestamp`` 0x0: the trade read
    as made on 1970-01-01, a latency of 56 years in the pilot's statistics. No time: the
    log has no ``blockTimestamp``, the trade none, as an ``eth_getLogs`` log without it."""
    row = dict(_ROW, timeStamp=stamp)
    if stamp == "absent":
        del row["timeStamp"]
    out = explorer_log_to_rpc(row)
    assert "blockTimestamp" not in out
    assert explorer_log_to_rpc(_ROW)["blockTimestamp"] == "0x6620f5e3"
