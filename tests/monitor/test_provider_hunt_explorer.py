"""The explorer's proxy module answering a refusal in JSON-RPC clothes, as Etherscan does:
its rate limit as a *result* string (``{"jsonrpc":"2.0","id":1,"result":"Max calls per sec
rate limit reached (3/sec)..."}``, seen in reth#17140), a key refusal likewise, a node's
error as an ``error`` object. Against a real loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.explorer_client import ExplorerClient, ExplorerNotOk

KEY = "EXPLORERKEY1234567890SECRET"


async def _serve(answers: list[dict[str, Any]],
                 body: Callable[[ExplorerClient], Awaitable[Any]]) -> Any:
    """Each request gets the next answer (the last one repeated)."""
    left = list(answers)

    async def handler(request: web.Request) -> web.Response:
        return web.json_response(left.pop(0) if len(left) > 1 else left[0])

    app = web.Application()
    app.router.add_get("/v2/api", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            client = ExplorerClient(f"http://127.0.0.1:{port}/v2/api", session, api_key=KEY,
                                    rate_per_s=1000, speed=1000, rate_limit_retries=3)
            return await body(client)
    finally:
        await runner.cleanup()


def _rpc(result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": result}


def test_the_proxys_rate_limit_as_a_result_is_retried_as_a_rate_limit() -> None:
    """Before: BadResponse 'eth_blockNumber result is not a number: Max calls per sec
    ...', counted as a successful call, never retried, the limiter never pushed back."""
    limited = _rpc("Max calls per sec rate limit reached (3/sec). Please switch to API V2")

    async def body(c: ExplorerClient) -> tuple[int, dict[str, Any]]:
        return await c.block_number(), c.calls.to_dict()

    head, calls = asyncio.run(_serve([limited, limited, _rpc("0x10")], body))
    assert head == 16
    assert calls["retries"] == 2 and calls["failures"] == {"rate_limited": 2}


@pytest.mark.parametrize("answer", [
    _rpc("Invalid API Key"), _rpc("Missing/Invalid API Key"),
    {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "Invalid API Key"}}])
def test_a_key_refused_through_the_proxy_is_explorer_notok(answer: dict[str, Any]) -> None:
    """Before: BadResponse ('result is not a number' / 'not an Etherscan envelope'),
    and the key's refusal was counted as a successful call."""
    async def body(c: ExplorerClient) -> Any:
        with pytest.raises(ExplorerNotOk, match="Invalid API Key"):
            await c.block_number()
        return c.calls.to_dict()

    calls = asyncio.run(_serve([answer], body))
    assert calls["failures"] == {"notok": 1}


def test_a_decimal_or_hex_proxy_result_is_still_a_number() -> None:
    async def body(c: ExplorerClient) -> list[int]:
        return [await c.block_number(), await c.block_number()]

    assert asyncio.run(_serve([_rpc("12345"), _rpc("0x1f4")], body)) == [12345, 500]
