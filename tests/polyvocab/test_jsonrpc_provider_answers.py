"""What real providers answer when they limit a caller, and what the JSON-RPC HTTP client
makes of it: against a scripted aiohttp server on loopback (no fixed sleeps as
synchronisation; times are read where the server got each request)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from polyvocab.errors import BadResponse, RateLimited
from polyvocab.jsonrpc_http import JsonRpcHttpClient
from polyvocab.policies import parse_retry_after

Answer = tuple[int, Any, dict[str, str]]  # status, JSON body (or text), headers


class Provider:
    """Answers request n with ``answers[n]`` (the last one repeats); keeps when each came."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.times: list[float] = []
        self.bodies: list[Any] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.times.append(asyncio.get_running_loop().time())
        self.bodies.append(await request.json())
        status, body, headers = self.answers[min(len(self.times), len(self.answers)) - 1]
        if callable(body):
            body = body(self.bodies[-1])
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=status, text=text, headers=headers,
                            content_type="application/json")

    async def __aenter__(self) -> Provider:
        app = web.Application()
        app.router.add_post("/", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def gaps(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.times)]


def run(answers: list[Answer],
        test: Callable[[JsonRpcHttpClient, Provider], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with Provider(answers) as provider, aiohttp.ClientSession() as session:
            client = JsonRpcHttpClient(provider.url, session, timeout=5.0, **kw)
            await asyncio.wait_for(test(client, provider), 30)
    asyncio.run(main())


def unaddressed(code: int, message: str, data: Any = None) -> dict[str, Any]:
    """An error object without the request's id, as providers refuse before reading it."""
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": None, "error": err}


def ok(req: Any) -> Any:
    if isinstance(req, list):
        return [{"jsonrpc": "2.0", "id": r["id"], "result": "0x10"} for r in req]
    return {"jsonrpc": "2.0", "id": req["id"], "result": "0x10"}


#: rate limits as providers send them at HTTP 200, without the request's id
LIMITS = [
    (-32005, "daily request count exceeded, request rate limited"),  # Infura
    (-32005, "project ID request rate exceeded"),  # Infura, per second
    (429, "Your app has exceeded its compute units per second capacity. If you have "
          "retries enabled, you can safely ignore this message."),  # Alchemy
    (-32007, "15/second request limit reached - reduce calls per second or upgrade your "
             "account at quicknode.com"),  # QuickNode
    (-32029, "Limit of requests exceeded"),  # TheRPC: its code
    (-32000, "Too Many Requests"),  # public Polygon RPCs, Ankr's words
    (-32090, "Too many requests, reason: call rate limit exhausted, retry in 10s"),
]


@pytest.mark.parametrize(("code", "message"), LIMITS)
def test_a_rate_limit_without_the_requests_id_is_a_rate_limit(code: int, message: str
                                                             ) -> None:
    """An HTTP 200 whose body is a rate-limit error object with ``"id": null`` was a
    bad response ("not the response to id 1", a ``bad_input`` row): retried on the
    backoff as garbage, never as the limit it is."""
    async def t(client: JsonRpcHttpClient, provider: Provider) -> None:
        with pytest.raises(RateLimited) as err:
            await client.call("eth_blockNumber", [])
        assert message[:20] in str(err.value)

    run([(200, unaddressed(code, message), {})], t, max_retries=0)


def test_the_wait_an_unaddressed_rate_limit_asks_is_waited() -> None:
    """Infura's ``data.backoff_seconds`` in an error object without the id is the wait of
    the retry, as with the id."""
    limited = unaddressed(-32005, "project ID request rate exceeded",
                          {"see": "https://infura.io/dashboard", "current_rps": 13.3,
                           "allowed_rps": 10.0, "backoff_seconds": 0.4})

    async def t(client: JsonRpcHttpClient, provider: Provider) -> None:
        assert await client.call("eth_blockNumber", []) == "0x10"
        assert len(provider.times) == 2 and provider.gaps()[0] >= 0.4 * 0.9

    run([(200, limited, {}), (200, ok, {})], t, max_retries=1,
        retry_policy=lambda: itertools.repeat(0.001))


def test_a_batch_answered_with_an_unaddressed_rate_limit_is_a_rate_limit() -> None:
    """A batch answered with a list holding a rate-limit error without an id (the calls
    the node refused) was "batch answer lacks id": a bad response."""
    def answer(req: Any) -> Any:
        return [ok([req[0]])[0], unaddressed(-32005, "daily request count exceeded, "
                                                     "request rate limited")]

    async def t(client: JsonRpcHttpClient, provider: Provider) -> None:
        with pytest.raises(RateLimited):
            await client.batch([("eth_blockNumber", []), ("eth_chainId", [])])

    run([(200, answer, {})], t, max_retries=0)


def test_an_unaddressed_error_that_is_no_rate_limit_stays_a_bad_response() -> None:
    async def t(client: JsonRpcHttpClient, provider: Provider) -> None:
        with pytest.raises(BadResponse):
            await client.call("eth_blockNumber", [])

    run([(200, unaddressed(-32600, "invalid request"), {})], t, max_retries=0)


@pytest.mark.parametrize("answer", [
    (429, "Too Many Requests", {"Retry-After": "0"}),
    (429, "Too Many Requests", {"Retry-After": "-3"}),
    (503, "busy", {"Retry-After": "0.000001"}),
    (429, unaddressed(-32005, "project ID request rate exceeded",
                      {"backoff_seconds": 0}), {}),
    (200, {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005, "message": "project ID "
           "request rate exceeded", "data": {"backoff_seconds": 0.0}}}, {}),
], ids=["retry_after_0", "retry_after_negative", "retry_after_tiny", "backoff_0_in_429",
        "backoff_0_in_200"])
def test_a_provider_asking_for_no_wait_gets_the_backoff(answer: Answer) -> None:
    """``Retry-After: 0`` (or less, or a ``backoff_seconds`` of 0) retried at once,
    whatever the backoff: a hot loop against a provider refusing for its load. What a
    server asks lengthens the backoff, never shortens it."""
    async def t(client: JsonRpcHttpClient, provider: Provider) -> None:
        assert await client.call("eth_blockNumber", []) == "0x10"
        assert len(provider.times) == 3
        assert min(provider.gaps()) >= 0.2 * 0.9, provider.gaps()

    run([answer, answer, (200, ok, {})], t, max_retries=2,
        retry_policy=lambda: itertools.repeat(0.2))


@pytest.mark.parametrize("value", ["99999999999999999999",
                                   "Fri, 31 Dec 9999 23:59:59 GMT",
                                   "Fri, 31 Dec 9999 23:59:59 -2359"])
def test_a_huge_retry_after_is_capped_at_a_day(value: str) -> None:
    """"1e400" was read as infinity and an HTTP-date in the year 9999 as ~8,000 centuries:
    capped at a day (each client caps lower still). ("1e400" and "inf" are no
    delay-seconds at all now: test_retry_after_digits.py)"""
    got = parse_retry_after(value, now_wall=1_800_000_000.0)
    assert got == 86_400.0


def test_a_retry_after_of_nan_is_unreadable() -> None:
    assert parse_retry_after("nan") is None
    assert parse_retry_after("0") == 0.0 and parse_retry_after("-5") == 0.0


@pytest.mark.parametrize("status", [503, 400])
def test_a_rate_limit_body_keeps_the_retry_after_of_its_answer(status: int) -> None:
    """A 503 (or 400) whose body is a JSON-RPC rate-limit error and whose header says
    ``Retry-After: 1``: the body's RateLimited was returned without the header's wait,
    and the retry came on the backoff alone."""
    body = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32005,
                                                 "message": "request rate limited"}}

    async def t(client: JsonRpcHttpClient, provider: Provider) -> None:
        assert await client.call("eth_blockNumber", []) == "0x10"
        assert len(provider.times) == 2 and provider.gaps()[0] >= 0.9, provider.gaps()

    run([(status, body, {"Retry-After": "1"}), (200, ok, {})], t, max_retries=1,
        retry_policy=lambda: itertools.repeat(0.01))


def test_a_batch_answer_with_one_id_twice_is_refused_and_asked_again() -> None:
    """A batch answer that answers one call twice (a proxy joining two backends'
    answers: one has the logs, one is empty) gave the call whichever came last: an
    empty eth_getLogs could stand for the one that held a trade. Which is right cannot
    be told: the answer is refused (``batch_refused``) and the batch asked again."""
    def twice(req: Any) -> Any:
        first = {"jsonrpc": "2.0", "id": req[0]["id"], "result": ["log"]}
        return [first, {**first, "result": []}, *ok(req[1:])]

    async def t(client: JsonRpcHttpClient, provider: Provider) -> None:
        got = await client.batch([("eth_getLogs", [{}]), ("eth_blockNumber", [])])
        assert got == ["0x10", "0x10"]
        assert len(provider.bodies) == 2

    run([(200, twice, {}), (200, ok, {})], t, max_retries=1,
        retry_policy=lambda: itertools.repeat(0.001))
