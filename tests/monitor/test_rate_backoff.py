"""A provider's rate-limit error that says how long to wait (Infura's -32005 with
``data.backoff_seconds``) is waited out, as a ``Retry-After`` header is."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from test_jsonrpc_client import json_reply, ok, run_client

from monitor.errors import RateLimited
from monitor.jsonrpc_client import JsonRpcHttpClient
from polyvocab.jsonrpc_http import _rpc_error


def _infura_limit(data: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": 1, "error": {
        "code": -32005, "message": "daily request count exceeded, request rate limited",
        "data": data}})


@pytest.mark.parametrize(("data", "wait"), [
    ({"see": "https://infura.io/dashboard", "current_rps": 13.3, "allowed_rps": 10.0,
      "backoff_seconds": 30.0}, 30.0),
    ({"rate": {"allowed_rps": 1, "backoff_seconds": 2.5, "current_rps": 1.4}}, 2.5),
    ({"backoff_seconds": 0}, 0.0),
    ({"backoff_seconds": -1}, None), ({"backoff_seconds": "30"}, None),
    ({"backoff_seconds": float("nan")}, None), ({"backoff_seconds": True}, None),
    (None, None), ("30", None), ({}, None)])
def test_an_infura_rate_limit_error_carries_its_backoff(data: Any, wait: float | None
                                                        ) -> None:
    exc = _rpc_error(json.loads(_infura_limit(data))["error"])
    assert isinstance(exc, RateLimited) and exc.retry_after == wait


def test_the_client_waits_the_backoff_the_provider_asked_for(tmp_path: Path) -> None:
    """The client retried an Infura -32005 on its own short schedule (here 1 ms), asking
    again at once from a provider that had said to wait."""
    async def t(client: JsonRpcHttpClient, server: Any) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await client.call("eth_getLogs", [{}]) == "0x10"
        assert len(server.bodies) == 2 and loop.time() - t0 >= 0.3

    limit = json.loads(_infura_limit({"backoff_seconds": 0.3}))["error"]
    run_client(tmp_path, [json_reply(lambda b: {"jsonrpc": "2.0", "id": b["id"],
                                                "error": limit}), json_reply(ok)], t)
