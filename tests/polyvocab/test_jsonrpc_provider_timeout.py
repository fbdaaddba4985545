"""A provider's own timeout of a request: dRPC's free tier answers HTTP 408 with a
JSON-RPC error of code 30 ("Request timeout on the free tier, please upgrade your tier
to the paid one"; also "... on the free plan, please upgrade to paid plan"), geth -32002
"request timed out". A timeout, retried (a heavy eth_getLogs range asked in halves by the
monitor), never an :class:`RpcError` refusing the request for good. ``classify_http``
is pure; the client runs against an aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from polyvocab.errors import RpcError, ServiceError, Timeout, is_retryable
from polyvocab.jsonrpc_http import JsonRpcHttpClient, _result_of, classify_http

DRPC_TIER = {"code": 30, "message": "Request timeout on the free tier, please upgrade "
             "your tier to the paid one"}
DRPC_PLAN = {"code": 30, "message": "Request timeout on the free plan, please upgrade to "
             "paid plan"}
GETH = {"code": -32002, "message": "request timed out"}


def answer(status: int, error: dict[str, Any]) -> Any:
    got = classify_http(status, json.dumps({"jsonrpc": "2.0", "id": 1, "error": error}))
    if isinstance(got, ServiceError):
        return got
    try:
        return _result_of(got, 1)
    except ServiceError as exc:
        return exc


@pytest.mark.parametrize("status,error", [(408, DRPC_TIER), (408, DRPC_PLAN),
                                          (200, DRPC_TIER), (200, GETH),
                                          (408, {"code": -32000, "message": "x"})],
                         ids=["drpc_408_tier", "drpc_408_plan", "drpc_200", "geth_200",
                              "any_408"])
def test_a_provider_timeout_is_a_timeout(status: int, error: dict[str, Any]) -> None:
    """An RpcError (code 30, -32002): the request taken for wrong, never retried. A
    :class:`Timeout`, retried as one of the client's own."""
    got = answer(status, error)
    assert isinstance(got, Timeout), repr(got)
    assert is_retryable(got)


def test_an_ordinary_error_stays_an_rpc_error() -> None:
    got = answer(200, {"code": -32602, "message": "invalid argument 0"})
    assert isinstance(got, RpcError) and not is_retryable(got)


def test_the_client_retries_a_drpc_timeout_and_gets_the_answer() -> None:
    """The first eth_getLogs answered 408 code 30, the second with the logs: the caller
    got an RpcError (not retried) before; now the logs."""
    async def go() -> tuple[Any, int]:
        calls = 0

        async def handle(request: web.Request) -> web.Response:
            nonlocal calls
            calls += 1
            req = await request.json()
            if calls == 1:
                return web.json_response({"jsonrpc": "2.0", "id": req["id"],
                                          "error": DRPC_TIER}, status=408)
            return web.json_response({"jsonrpc": "2.0", "id": req["id"], "result": []})

        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with aiohttp.ClientSession() as session:
                client = JsonRpcHttpClient(f"http://127.0.0.1:{port}/", session,
                                           max_retries=2, timeout=10.0,
                                           retry_policy=lambda: iter([0.01] * 5))
                return await client.call("eth_getLogs", [{}]), calls
        finally:
            await runner.cleanup()
    got, calls = asyncio.run(go())
    assert got == [] and calls == 2
