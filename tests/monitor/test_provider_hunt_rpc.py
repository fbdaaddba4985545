"""JSON-RPC rate-limit answers as providers send them, against a loopback server:
QuickNode's -32007 "15/second request limit reached", and -32005 "limit exceeded" (public
BSC/Polygon nodes) on a method that has no block range."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.errors import RpcError
from monitor.jsonrpc_client import JsonRpcHttpClient

QUICKNODE = (-32007, "15/second request limit reached - reduce calls per second or upgrade "
                     "your account at quicknode.com")
LIMIT_EXCEEDED = (-32005, "limit exceeded")


async def _serve(errors: int, error: tuple[int, str],
                 body: Callable[[JsonRpcHttpClient], Awaitable[Any]]) -> tuple[Any, int]:
    """The first ``errors`` requests get ``error`` (for each call of a batch), the rest
    the answer: 0x10. Returns what ``body`` returned and the requests served."""
    served = 0

    def one(call: dict[str, Any], refuse: bool) -> dict[str, Any]:
        if refuse:
            return {"jsonrpc": "2.0", "id": call["id"],
                    "error": {"code": error[0], "message": error[1]}}
        return {"jsonrpc": "2.0", "id": call["id"], "result": "0x10"}

    async def handler(request: web.Request) -> web.Response:
        nonlocal served
        served += 1
        asked = json.loads(await request.read())
        refuse = served <= errors
        if isinstance(asked, list):
            return web.json_response([one(c, refuse) for c in asked])
        return web.json_response(one(asked, refuse))

    app = web.Application()
    app.router.add_post("/v2/KEY0123456789abcdefXYZ", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            client = JsonRpcHttpClient(f"http://127.0.0.1:{port}/v2/KEY0123456789abcdefXYZ",
                                       session, max_retries=3,
                                       retry_policy=lambda: iter([0.01] * 10))
            return await body(client), served
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("error", [QUICKNODE, LIMIT_EXCEEDED], ids=["quicknode", "-32005"])
def test_a_rate_limit_on_eth_block_number_is_retried(error: tuple[int, str]) -> None:
    """Before: RpcError at once (the pilot's start-block eth_blockNumber failed the start,
    exit 1, on one such answer)."""
    async def body(c: JsonRpcHttpClient) -> Any:
        return await c.call("eth_blockNumber", [])

    assert asyncio.run(_serve(2, error, body)) == ("0x10", 3)


def test_quicknodes_rate_limit_in_a_batch_is_retried() -> None:
    async def body(c: JsonRpcHttpClient) -> Any:
        return await c.batch([("eth_blockNumber", []), ("eth_getLogs", [{}])])

    assert asyncio.run(_serve(1, QUICKNODE, body)) == (["0x10", "0x10"], 2)


def test_limit_exceeded_on_eth_get_logs_stays_a_range_refusal() -> None:
    """The caller splits the range on it: unchanged."""
    async def body(c: JsonRpcHttpClient) -> Any:
        with pytest.raises(RpcError) as err:
            await c.call("eth_getLogs", [{"fromBlock": "0x1", "toBlock": "0x2710"}])
        return err.value.code

    assert asyncio.run(_serve(5, LIMIT_EXCEEDED, body)) == (-32005, 1)
