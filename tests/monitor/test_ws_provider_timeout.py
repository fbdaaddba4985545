"""An ``eth_subscribe`` answered with the provider's own timeout (dRPC's free tier, code
30 "Request timeout on the free tier, ..."; geth -32002 "request timed out"): the request
is not wrong. The WebSocket manager against a small node on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_ws_unaddressed_and_bad_heads import HEADER, TIMEOUT, UnaddressedNode, manager

from monitor.connection import ConnState
from monitor.history import History

DRPC = {"code": 30, "message": "Request timeout on the free tier, please upgrade your "
        "tier to the paid one"}
GETH = {"code": -32002, "message": "request timed out"}


@pytest.mark.parametrize("error", [DRPC, GETH], ids=["drpc", "geth"])
def test_a_subscribe_the_provider_timed_out_keeps_the_subscription(
        tmp_path: Path, error: dict[str, Any]) -> None:
    """``subscribe`` on a connection that is up, answered with the provider's timeout: it
    was an RpcError, a refusal of the params, and the subscription was forgotten for
    good (no heads ever). It is a timeout: the subscription kept, made on the next
    connection."""
    async def go() -> None:
        async with UnaddressedNode(refuse=0, error=error, addressed=True) as node:
            history = History(tmp_path / "history.jsonl")
            got: list[Any] = []
            mgr = manager(node.url, history)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
                node.refuse = 1
                stable = await mgr.subscribe(["newHeads"], got.append)
                assert stable in mgr.subscriptions
                assert await mgr.wait_until(lambda: bool(got), TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            assert got == [HEADER] and len(node.opened) == 2
    asyncio.run(go())
