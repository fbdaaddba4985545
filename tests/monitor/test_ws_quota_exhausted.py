"""An ``eth_subscribe`` answered with a spent quota (Alchemy's "Monthly capacity limit
exceeded"): the WebSocket manager against a small node on loopback (no fixed sleeps as
synchronisation; times are read where the node got each connection)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from monitor.alerts import LogAlerter
from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.history import History
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 15.0
BACKOFF_MAX = 0.6
MONTHLY = {"code": 429, "message": "Monthly capacity limit exceeded. Visit "
           "https://dashboard.alchemy.com/settings/billing to upgrade your scaling policy "
           "for continued service."}


class QuotaNode:
    """Answers every ``eth_subscribe`` with the spent quota; keeps when each connection
    came."""

    def __init__(self) -> None:
        self.opened: list[float] = []
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _handler(self, ws: ServerConnection) -> None:
        self.opened.append(asyncio.get_running_loop().time())
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"],
                                          "error": MONTHLY}))

    async def __aenter__(self) -> QuotaNode:
        self.server = await serve(self._handler, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_a_spent_quota_is_alerted_once_and_asked_again_slowly(tmp_path: Path) -> None:
    """A spent monthly quota was a rate limit: cause ``rate_limited``, attempts on the
    backoff (0.05 s, 0.1 s, ...) and one ``disconnected`` alert that did not say a human
    must act. Cause ``quota_exhausted``, one ``quota_exhausted`` alert saying so, and the
    attempts every ``backoff_max``."""
    async def go() -> None:
        async with QuotaNode() as node:
            history = History(tmp_path / "history.jsonl")
            alerts = LogAlerter()
            mgr = WebSocketManager(node.url, settings=WsSettings(
                speed=1.0, staleness_blocks=0, seed=1, backoff_initial=0.05,
                backoff_max=BACKOFF_MAX, max_reconnect_attempts=100, min_timeout=5.0),
                clock=SystemClock(), history=history, alerts=alerts)
            await mgr.subscribe(["newHeads"], lambda result: None)
            await mgr.start()
            try:
                assert await mgr.wait_until(lambda: len(node.opened) >= 3, TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            causes = {t.cause for t in mgr.transitions}
            assert "quota_exhausted" in causes and "rate_limited" not in causes, causes
            kinds = [a.kind for a in alerts.sent]
            assert kinds.count("quota_exhausted") == 1, kinds
            quota = next(a for a in alerts.sent if a.kind == "quota_exhausted")
            assert "EXHAUSTED" in quota.text and "Monthly capacity" in quota.text
            gaps = [b - a for a, b in zip(node.opened, node.opened[1:], strict=False)]
            assert min(gaps) >= BACKOFF_MAX * 0.9, gaps
    asyncio.run(go())


class RefusingNode:
    """Refuses its first ``refuse`` handshakes with 429 and ``body`` (no Retry-After),
    then answers every ``eth_subscribe``; keeps when each handshake came."""

    def __init__(self, refuse: int, body: dict[str, Any]) -> None:
        self.refuse, self.body = refuse, body
        self.handshakes: list[float] = []
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    def _process_request(self, conn: Any, request: Any) -> Any:
        self.handshakes.append(asyncio.get_running_loop().time())
        if len(self.handshakes) <= self.refuse:
            return conn.respond(HTTPStatus.TOO_MANY_REQUESTS, json.dumps(self.body))
        return None

    async def _handler(self, ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0x1"}))

    async def __aenter__(self) -> RefusingNode:
        self.server = await serve(self._handler, "127.0.0.1", 0,
                                  process_request=self._process_request)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


ANKR = {"jsonrpc": "2.0", "id": None, "error": {
    "code": -32090, "message": "Too many requests, reason: call rate limit exhausted, "
    "retry in 10s"}}


@pytest.mark.parametrize("answer", [ANKR, {"jsonrpc": "2.0", "id": None, "error": MONTHLY}],
                         ids=["ankr_retry_in", "alchemy_monthly"])
def test_a_429_handshake_reads_the_wait_and_the_quota_in_its_body(
        tmp_path: Path, answer: dict[str, Any]) -> None:
    """A handshake refused with 429 and no Retry-After, the wait or the spent quota in its
    JSON-RPC body (as the provider answers its HTTP calls): the next handshake came on the
    backoff alone (0.05 s), and a spent quota was an outage like any. The body is read as
    the HTTP client reads a 429: the wait it names (here capped at backoff_max), a
    ``quota_exhausted`` alert."""
    async def go() -> None:
        async with RefusingNode(refuse=1, body=answer) as node:
            history = History(tmp_path / "history.jsonl")
            alerts = LogAlerter()
            mgr = WebSocketManager(node.url, settings=WsSettings(
                speed=1.0, staleness_blocks=0, seed=1, backoff_initial=0.05,
                backoff_max=BACKOFF_MAX, min_timeout=5.0),
                clock=SystemClock(), history=history, alerts=alerts)
            await mgr.subscribe(["newHeads"], lambda result: None)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            assert len(node.handshakes) == 2
            gap = node.handshakes[1] - node.handshakes[0]
            assert gap >= BACKOFF_MAX * 0.9, gap
            kinds = [a.kind for a in alerts.sent]
            assert ("quota_exhausted" in kinds) is (answer is not ANKR), kinds
    asyncio.run(go())
