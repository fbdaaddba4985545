"""An ``eth_subscribe`` answered with a provider's rate limit (a JSON-RPC error object
over the WebSocket): the WebSocket manager against a small node on loopback (no fixed
sleeps as synchronisation; times are read where the node got each connection)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.history import History
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 15.0
ALCHEMY = {"code": 429, "message": "Your app has exceeded its compute units per second "
           "capacity. If you have retries enabled, you can safely ignore this message."}
INFURA = {"code": -32005, "message": "project ID request rate exceeded",
          "data": {"see": "https://infura.io/dashboard", "current_rps": 13.3,
                   "allowed_rps": 10.0, "backoff_seconds": 0.6}}


class LimitingNode:
    """Answers the first ``refuse`` ``eth_subscribe`` calls with ``error``, the others
    with an id, followed by one notification of it."""

    def __init__(self, refuse: int, error: dict[str, Any]) -> None:
        self.refuse, self.error = refuse, error
        self.opened: list[float] = []
        self.server: Any = None
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _handler(self, ws: ServerConnection) -> None:
        self.opened.append(asyncio.get_running_loop().time())
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                if self.refuse > 0:
                    self.refuse -= 1
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"],
                                              "error": self.error}))
                    continue
                sid = f"0x{next(self._ids):x}"
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": sid}))
                await ws.send(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                          "params": {"subscription": sid,
                                                     "result": {"number": "0x1"}}}))

    async def __aenter__(self) -> LimitingNode:
        self.server = await serve(self._handler, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def manager(url: str, history: History) -> WebSocketManager:
    return WebSocketManager(url, settings=WsSettings(
        speed=1.0, staleness_blocks=0, seed=1, backoff_initial=0.05, backoff_max=5.0,
        min_timeout=5.0), clock=SystemClock(), history=history)


def test_a_rate_limited_subscribe_waits_the_backoff_the_provider_asked(
        tmp_path: Path) -> None:
    """Infura answering the ``eth_subscribe`` of a new connection with its rate limit
    (-32005 "project ID request rate exceeded", ``data.backoff_seconds``) was a
    subscription the node refused ("subscribe_rejected", as for params it does not
    know), and the next connection came on the backoff alone (here 0.05 s), one more
    handshake and subscribe over the limit. It is a rate limit: cause ``rate_limited``,
    and the next attempt waits what the provider asked."""
    async def go() -> None:
        async with LimitingNode(refuse=1, error=INFURA) as node:
            history = History(tmp_path / "history.jsonl")
            got: list[Any] = []
            mgr = manager(node.url, history)
            await mgr.subscribe(["newHeads"], got.append)
            await mgr.start()
            try:
                assert await mgr.wait_until(lambda: bool(got), TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            causes = [t.cause for t in mgr.transitions]
            assert "rate_limited" in causes and "subscribe_rejected" not in causes, causes
            assert len(node.opened) == 2
            assert node.opened[1] - node.opened[0] >= 0.6 * 0.9
    asyncio.run(go())


def test_a_subscribe_while_connected_answered_with_a_rate_limit_is_made_again(
        tmp_path: Path) -> None:
    """``subscribe`` on a connection that is up, answered with Alchemy's 429: it raised
    the error as a refusal of its params and forgot the subscription, which a moment
    later would have been made. It is kept and made on the next connection."""
    async def go() -> None:
        async with LimitingNode(refuse=0, error=ALCHEMY) as node:
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
            assert got == [{"number": "0x1"}]
            assert len(node.opened) == 2
    asyncio.run(go())
