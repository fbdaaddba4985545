"""Rate-limit and quota texts of real providers: the wait a text writes ("retry in
10s"), a quota spent for hours (Alchemy "Monthly capacity limit exceeded", Infura "daily
request count exceeded") told apart from a per-second limit. ``classify_http`` is pure;
the client runs against an aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from polyvocab.errors import QuotaExhausted, RateLimited, RpcError, ServiceError
from polyvocab.jsonrpc_http import (
    JsonRpcHttpClient,
    _for_method,
    _result_of,
    classify_http,
    is_rate_limit_reply,
)
from polyvocab.policies import text_retry_after

ANKR = {"code": -32090, "message": "Too many requests, reason: call rate limit exhausted, "
        "retry in 10s"}
ALCHEMY_MONTHLY = {"code": 429, "message": "Monthly capacity limit exceeded. Visit "
                   "https://dashboard.alchemy.com/settings/billing to upgrade your scaling "
                   "policy for continued service."}
INFURA_DAILY = {"code": -32005, "message": "daily request count exceeded, request rate "
                "limited", "data": {"rate": {"allowed_rps": 1, "backoff_seconds": 30,
                                             "current_rps": 2.2},
                                    "see": "https://infura.io/dashboard"}}
QUICKNODE_CREDITS = {"code": -32012, "message": "credits limited to 6000/sec"}


def body(error: dict[str, Any], rid: int | None = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "error": error})


def answer(status: int, text: str) -> Any:
    """The error an HTTP answer to the call of id 1 is (or its result)."""
    got = classify_http(status, text)
    if isinstance(got, ServiceError):
        return got
    try:
        return _result_of(got, 1)
    except ServiceError as exc:
        return exc


@pytest.mark.parametrize("text,seconds", [
    (ANKR["message"], 10.0),
    ("Too many requests, reason: call rate limit exhausted, retry in 10m0s", 600.0),
    ("Too many requests, reason: call rate limit exhausted, retry in 24h0m0s", 86_400.0),
    ("rate limited, retry in 1m30.5s", 90.5),
    ("rate limited, retry in 500ms", 0.5),
    ("Too many requests, please try again in 30 seconds", 30.0),
    ("rate limited, retry in 99999999h", 86_400.0),
    ("Too many requests", None),
    ("retry in a moment", None),
])
def test_the_wait_a_text_writes(text: str, seconds: float | None) -> None:
    assert text_retry_after(text) == seconds


@pytest.mark.parametrize("status,rid", [(429, None), (200, None), (200, 1)],
                         ids=["http_429", "id_null", "with_id"])
def test_ankr_s_retry_in_text_is_the_wait(status: int, rid: int | None) -> None:
    """The public Polygon RPC (Ankr's, -32090 "call rate limit exhausted, retry in 10s")
    names its wait only in the text: it was retried on the backoff alone (0.25 s, 0.5 s,
    ...), each retry refused again for the 10 s it had asked."""
    got = answer(status, body(ANKR, rid))
    assert type(got) is RateLimited and got.retry_after == 10.0


def test_a_header_or_a_data_field_wins_over_the_text() -> None:
    got = classify_http(429, body(ANKR), {"Retry-After": "3"})
    assert isinstance(got, RateLimited) and got.retry_after == 3.0


@pytest.mark.parametrize("status,error", [(429, ALCHEMY_MONTHLY),
                                          (403, dict(ALCHEMY_MONTHLY, code=-32600)),
                                          (200, dict(ALCHEMY_MONTHLY, code=-32000)),
                                          (200, INFURA_DAILY)],
                         ids=["alchemy_429", "alchemy_403", "alchemy_200", "infura_daily"])
def test_a_spent_quota_is_no_per_second_limit(status: int, error: dict[str, Any]) -> None:
    """Alchemy's "Monthly capacity limit exceeded" (HTTP 429, or 403 with -32600, as
    providers answer it) and Infura's "daily request count exceeded" were a rate limit
    retried at its pace (or, at 403, a key refused): a :class:`QuotaExhausted`, with the
    wait it named (Infura's backoff_seconds), else none."""
    got = answer(status, body(error))
    assert isinstance(got, QuotaExhausted), repr(got)
    assert got.retry_after == (30.0 if error is INFURA_DAILY else None)


def test_quicknode_s_credits_limit_is_a_rate_limit() -> None:
    """QuickNode's -32012 "credits limited to 6000/sec" was an RpcError: the request
    refused as wrong, never retried."""
    assert type(answer(200, body(QUICKNODE_CREDITS))) is RateLimited
    assert type(answer(200, body({"code": -32012, "message": "x"}))) is RpcError


class Rows:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def record(self, event: str, **fields: Any) -> None:
        self.rows.append((event, fields))


def test_the_client_does_not_retry_a_spent_quota_and_says_so_once_an_episode() -> None:
    """A spent quota was retried ``max_retries`` times at the rate-limit pace on every
    call, and nothing told a human. Naming no wait (Alchemy's monthly capacity), it is
    raised at once (one request a call); the first
    of an episode is a ``quota_exhausted`` row and ``on_quota_exhausted``; an answer ends
    the episode, and the next spent quota is said again."""
    answers = [(429, body(ALCHEMY_MONTHLY))] * 2 + [(200, json.dumps(
        {"jsonrpc": "2.0", "id": 3, "result": "0x10"}))] + [(429, body(ALCHEMY_MONTHLY))]
    seen: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(1)
        status, text = answers[len(seen) - 1]
        return web.Response(status=status, text=text, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        rows, told = Rows(), []
        try:
            async with aiohttp.ClientSession() as session:
                # (said again at once: no bound on the alert rate here; the bound is
                # test_jsonrpc_quota_episodes')
                client = JsonRpcHttpClient(url, session, max_retries=3, history=rows,
                                           retry_policy=lambda: iter([0.01] * 10),
                                           on_quota_exhausted=told.append,
                                           quota_alert_every=0.0)
                for _ in range(2):
                    with pytest.raises(QuotaExhausted):
                        await client.call("eth_blockNumber")
                assert len(seen) == 2 and client.counter.retries == 0
                assert len(told) == 1 and client.quota_exhausted_since is not None
                assert await client.call("eth_blockNumber") == "0x10"
                assert client.quota_exhausted_since is None
                with pytest.raises(QuotaExhausted):
                    await client.call("eth_blockNumber")
                assert len(told) == 2
                assert [e for e, _ in rows.rows].count("quota_exhausted") == 2
        finally:
            await runner.cleanup()
    asyncio.run(main())


def test_a_spent_quota_that_names_a_wait_is_retried_after_it() -> None:
    """Infura's "daily request count exceeded" with ``backoff_seconds``: after its daily
    count it serves a trickle (``allowed_rps``); the wait it names is waited, the call
    asked again, and the quota is said once all the same."""
    limited = body(dict(INFURA_DAILY, data={"backoff_seconds": 0.2}))
    answers = [(200, limited), (200, json.dumps({"jsonrpc": "2.0", "id": 1,
                                                 "result": "0x10"}))]
    times: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        times.append(asyncio.get_running_loop().time())
        status, text = answers[len(times) - 1]
        return web.Response(status=status, text=text, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        told: list[QuotaExhausted] = []
        try:
            async with aiohttp.ClientSession() as session:
                client = JsonRpcHttpClient(url, session, max_retries=3,
                                           retry_policy=lambda: iter([0.01] * 10),
                                           on_quota_exhausted=told.append)
                assert await client.call("eth_blockNumber") == "0x10"
                assert len(times) == 2 and times[1] - times[0] >= 0.2 * 0.9
                assert len(told) == 1 and client.quota_exhausted_since is None
        finally:
            await runner.cleanup()
    asyncio.run(main())


@pytest.mark.parametrize("text", ["Payment Required", body({"code": -32000,
                                                            "message": "upgrade your tier"})])
def test_payment_required_is_a_spent_quota(text: str) -> None:
    """HTTP 402 (dRPC's free tier spent) was a 4xx bad response or, with a JSON-RPC error
    body, an RpcError: a request refused as wrong, and no one told of the quota."""
    got = answer(402, text)
    assert isinstance(got, QuotaExhausted) and got.retry_after is None


def test_a_limit_exceeded_without_the_id_is_a_rate_limit_even_for_get_logs() -> None:
    """-32005 "limit exceeded" with ``"id": null`` answering an eth_getLogs was "not the
    response to id 1", a bad response: an error given before the request was read is
    never a range refusal (that one names the request), it is a rate limit."""
    parsed = classify_http(200, body({"code": -32005, "message": "limit exceeded"}, None))
    with pytest.raises(RateLimited):
        _result_of(parsed, 1, _for_method(is_rate_limit_reply, "eth_getLogs"))
    # with the id, it stays the range refusal it may be
    parsed = classify_http(200, body({"code": -32005, "message": "limit exceeded"}, 1))
    with pytest.raises(RpcError):
        _result_of(parsed, 1, _for_method(is_rate_limit_reply, "eth_getLogs"))
