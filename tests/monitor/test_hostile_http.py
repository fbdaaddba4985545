"""What hostile or overloaded JSON-RPC HTTP servers answer, and what the shared client
(:class:`polyvocab.jsonrpc_http.JsonRpcHttpClient`) makes of it: each defect found as a
regression test against a small aiohttp server on loopback. No fixed sleeps as
synchronisation.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time

import aiohttp
import pytest
from aiohttp import web

from polyvocab.errors import BadResponse
from polyvocab.jsonrpc_http import MAX_ANSWER_VALUES, JsonRpcHttpClient


class Overloaded:
    """Answers the first ``refuse`` requests with 503 and ``headers``, then the call's
    result; records when each request came (loop time)."""

    def __init__(self, refuse: int, headers: dict[str, str]) -> None:
        self.refuse, self.headers = refuse, headers
        self.times: list[float] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        self.times.append(asyncio.get_running_loop().time())
        body = await request.json()
        if len(self.times) <= self.refuse:
            return web.Response(status=503, text="Service Unavailable",
                                headers=self.headers)
        return web.Response(text=json.dumps({"jsonrpc": "2.0", "id": body["id"],
                                             "result": "0x10"}),
                            content_type="application/json")

    async def __aenter__(self) -> Overloaded:
        app = web.Application()
        app.router.add_post("/", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.mark.parametrize("when", ["seconds", "http_date"])
def test_a_503_with_retry_after_is_retried_no_sooner_than_asked(when: str) -> None:
    """A node in maintenance answers 503 with ``Retry-After`` (seconds, or an HTTP
    date). Only a 429's header was read: a 503's retries came on the backoff alone
    (here 10 ms), each one more request to a node that asked for quiet. The wait is now
    at least what was asked (capped at ``max_retry_after``), as for a 429."""

    async def go() -> None:
        value = ("2" if when == "seconds"
                 else email.utils.formatdate(time.time() + 3, usegmt=True))
        async with Overloaded(refuse=1, headers={"Retry-After": value}) as node, \
                aiohttp.ClientSession() as session:
            client = JsonRpcHttpClient(node.url, session, max_retries=2, timeout=10.0,
                                       retry_policy=lambda: iter([0.01] * 10))
            assert await client.call("eth_blockNumber") == "0x10"
            assert len(node.times) == 2
            gap = node.times[1] - node.times[0]
            assert gap >= 1.0, f"retried after {gap:.3f} s; Retry-After {value!r}"
    asyncio.run(go())


def test_a_503_with_a_garbage_retry_after_keeps_the_backoff() -> None:
    async def go() -> None:
        async with Overloaded(refuse=1, headers={"Retry-After": "soon-ish"}) as node, \
                aiohttp.ClientSession() as session:
            client = JsonRpcHttpClient(node.url, session, max_retries=2, timeout=10.0,
                                       retry_policy=lambda: iter([0.01] * 10))
            assert await client.call("eth_blockNumber") == "0x10"
            assert node.times[1] - node.times[0] < 1.0
    asyncio.run(go())




class Flat:
    """Answers every call with ``body`` (status 200, JSON)."""

    def __init__(self, body: str) -> None:
        self.body = body
        self.calls = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _post(self, request: web.Request) -> web.Response:
        self.calls += 1
        await request.read()
        return web.Response(text=self.body, content_type="application/json")

    async def __aenter__(self) -> Flat:
        app = web.Application()
        app.router.add_post("/", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def test_an_answer_of_millions_of_tiny_values_is_refused_before_it_is_parsed() -> None:
    """Under the 64 MB body bound, an answer of ``[],`` three bytes a value is 21 M
    empty lists: ~1.5 GB and seconds of the event loop to parse (15 MB: 357 MB, 0.8-3 s),
    before anything looked at it. Past :data:`MAX_ANSWER_VALUES` values it is now refused
    unparsed, as ``too_large`` (an eth_getLogs range is then asked again in halves)."""
    n = MAX_ANSWER_VALUES + 10
    body = '{"jsonrpc":"2.0","id":1,"result":[' + "[]," * n + "[]]}"

    async def go() -> None:
        async with Flat(body) as node, aiohttp.ClientSession() as session:
            client = JsonRpcHttpClient(node.url, session, max_retries=0, timeout=30.0)
            with pytest.raises(BadResponse) as err:
                await client.call("eth_getLogs", [{}])
            assert err.value.kind == "too_large"
    asyncio.run(go())


def test_an_honest_answer_of_the_body_bound_is_under_the_value_bound() -> None:
    """The bound leaves honest answers alone: 64 MB of eth_getLogs logs (~1.1 KB, ~13
    values each) holds fewer values than :data:`MAX_ANSWER_VALUES`."""
    log = {"address": "0x" + "4b" * 20, "topics": ["0x" + "11" * 32] * 4,
           "data": "0x" + "00" * 32 * 7, "blockNumber": "0x4c4b40",
           "blockHash": "0x" + "22" * 32, "blockTimestamp": "0x6650a0c0",
           "transactionHash": "0x" + "33" * 32, "transactionIndex": "0x1",
           "logIndex": "0x2", "removed": False}
    text = json.dumps(log)
    per_log = text.count(",") + 1
    assert (64 << 20) // len(text) * per_log < MAX_ANSWER_VALUES


class InfuraLimited(Overloaded):
    """Infura's rate limit: HTTP 429, no ``Retry-After``, the wait in the JSON-RPC error's
    ``data.backoff_seconds`` (status-im/status-go#4807 quotes one)."""

    async def _post(self, request: web.Request) -> web.Response:
        self.times.append(asyncio.get_running_loop().time())
        body = await request.json()
        if len(self.times) <= self.refuse:
            return web.Response(status=429, content_type="application/json", text=json.dumps(
                {"jsonrpc": "2.0", "id": body["id"], "error": {
                    "code": -32005, "message": "project ID request rate exceeded",
                    "data": {"see": "https://infura.io/dashboard", "current_rps": 13.3,
                             "allowed_rps": 10.0, "backoff_seconds": 1.5}}}))
        return web.Response(text=json.dumps({"jsonrpc": "2.0", "id": body["id"],
                                             "result": "0x10"}),
                            content_type="application/json")


def test_an_infura_429_is_retried_after_the_backoff_its_body_asks() -> None:
    """Infura answers its rate limit with HTTP 429 and the wait in the body
    (``error.data.backoff_seconds``), not in a ``Retry-After``. The body of a 429 was
    not read: the retries came on the backoff alone (here 10 ms), each one more
    request over the limit. The body's wait is now taken, as it is from a 200."""

    async def go() -> None:
        async with InfuraLimited(refuse=1, headers={}) as node, \
                aiohttp.ClientSession() as session:
            client = JsonRpcHttpClient(node.url, session, max_retries=2, timeout=10.0,
                                       retry_policy=lambda: iter([0.01] * 10))
            assert await client.call("eth_blockNumber") == "0x10"
            assert len(node.times) == 2
            gap = node.times[1] - node.times[0]
            assert gap >= 1.4, f"retried after {gap:.3f} s; 1.5 s was asked"
    asyncio.run(go())
