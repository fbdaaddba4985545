"""Explorer answers the client read wrong: each against an aiohttp server on loopback
(the real client, the real HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from monitor.errors import BadResponse
from monitor.explorer_client import ExplorerClient, ExplorerKeyRefused

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
