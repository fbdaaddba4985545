"""WebSocket handshakes refused for a spent quota: each refusal's status and body read
once, and refusals that never count toward ``max_reconnect_attempts`` (a month's quota
left the manager FAILED for good: no feed until a restart). The manager against a small
node on loopback, and the whole monitor against a scripted node (no fixed sleeps as
synchronisation)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hostile_node import HostileNode
from test_reliability import run_monitor, until
from websockets.asyncio.server import serve

import monitor.websocket_manager as wsm
from monitor.alerts import LogAlerter
from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.history import History
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 15.0
BACKOFF_MAX = 0.2
#: Alchemy's answer to a spent month (xmtp/xmtpd#672), at a 429 and at a 403
MONTHLY = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {
    "code": 429, "message": "Monthly capacity limit exceeded. Visit https://dashboard."
    "alchemy.com/settings/billing to upgrade your scaling policy for continued service."}})


class Refusing:
    """Refuses its first ``refuse`` handshakes with ``status`` and ``body``, then answers
    every ``eth_subscribe``."""

    def __init__(self, refuse: int, status: HTTPStatus, body: str) -> None:
        self.refuse, self.status, self.body = refuse, status, body
        self.handshakes = 0
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    def _process_request(self, conn: Any, request: Any) -> Any:
        self.handshakes += 1
        if self.handshakes <= self.refuse:
            return conn.respond(self.status, self.body)
        return None

    async def _handler(self, ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0x1"}))

    async def __aenter__(self) -> Refusing:
        self.server = await serve(self._handler, "127.0.0.1", 0,
                                  process_request=self._process_request)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def _manager(url: str, tmp_path: Path, alerts: LogAlerter, **kw: Any
             ) -> tuple[WebSocketManager, History]:
    history = History(tmp_path / "history.jsonl")
    settings = WsSettings(speed=1.0, staleness_blocks=0, seed=1, backoff_initial=0.02,
                          backoff_max=BACKOFF_MAX, min_timeout=5.0, **kw)
    return WebSocketManager(url, settings=settings, clock=SystemClock(), history=history,
                            alerts=alerts), history


@pytest.mark.parametrize("status", [HTTPStatus.TOO_MANY_REQUESTS, HTTPStatus.FORBIDDEN,
                                    HTTPStatus.PAYMENT_REQUIRED])
def test_a_refused_handshake_body_is_read_once_an_attempt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: HTTPStatus) -> None:
    """The refusal's body was classified up to three times an attempt (refused_key_status,
    retry_after, then the loop's own handshake_limit): one reading, passed on."""
    readings = 0
    classify = wsm.classify_http

    def counted(*args: Any, **kw: Any) -> Any:
        nonlocal readings
        readings += 1
        return classify(*args, **kw)

    monkeypatch.setattr(wsm, "classify_http", counted)

    async def go() -> None:
        async with Refusing(2, status, MONTHLY) as node:
            alerts = LogAlerter()
            mgr, history = _manager(node.url, tmp_path, alerts)
            await mgr.subscribe(["newHeads"], lambda result: None)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            assert node.handshakes == 3
    asyncio.run(go())
    assert readings == 2, readings


@pytest.mark.parametrize("status", [HTTPStatus.TOO_MANY_REQUESTS,
                                    HTTPStatus.PAYMENT_REQUIRED])
def test_a_spent_quota_never_uses_up_the_reconnect_attempts(
        tmp_path: Path, status: HTTPStatus) -> None:
    """``max_reconnect_attempts=2`` and a month's quota refusing five handshakes: the
    manager went FAILED (``max_attempts: quota_exhausted``) at the second and its loop
    ended - no feed for good, the quota restored or not. The refusals retry at
    ``backoff_max`` for as long as it takes (as a refused key): one ``quota_exhausted``
    alert, no ``failed``, and the feed back once the provider serves again."""
    async def go() -> None:
        async with Refusing(5, status, MONTHLY) as node:
            alerts = LogAlerter()
            mgr, history = _manager(node.url, tmp_path, alerts, max_reconnect_attempts=2)
            await mgr.subscribe(["newHeads"], lambda result: None)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT), [
                    (t.to_state, t.cause) for t in mgr.transitions]
            finally:
                await mgr.stop()
                history.close()
            assert node.handshakes == 6
            causes = [t.cause for t in mgr.transitions]
            assert not any(c.startswith("max_attempts") for c in causes), causes
            kinds = [a.kind for a in alerts.sent]
            assert kinds.count("quota_exhausted") == 1, kinds
            assert "failed" not in kinds, kinds
    asyncio.run(go())


def test_ordinary_failures_after_a_spent_quota_still_give_up(tmp_path: Path) -> None:
    """The refusals do not count, but the attempts that are an outage do: a node down
    (503) after the quota's refusals still gives up at ``max_reconnect_attempts``."""
    class Then503(Refusing):
        def _process_request(self, conn: Any, request: Any) -> Any:
            self.handshakes += 1
            if self.handshakes <= self.refuse:
                return conn.respond(self.status, self.body)
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "down")

    async def go() -> None:
        async with Then503(3, HTTPStatus.TOO_MANY_REQUESTS, MONTHLY) as node:
            alerts = LogAlerter()
            mgr, history = _manager(node.url, tmp_path, alerts, max_reconnect_attempts=2)
            await mgr.subscribe(["newHeads"], lambda result: None)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.FAILED, TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            assert node.handshakes == 5  # 3 refusals, then 2 failures of an outage
            causes = [t.cause for t in mgr.transitions]
            assert "max_attempts: handshake_503" in causes, causes
    asyncio.run(go())


def test_a_spent_quota_leaves_the_monitor_polling_and_the_feed_retrying(
        tmp_path: Path) -> None:
    """The whole monitor, ``max_reconnect_attempts=2``, a provider whose month is spent
    refusing every handshake: the fallback polls the explorer, the manager keeps trying
    (never FAILED: its loop alive), one ``quota_exhausted`` alert and no ``failed``; the
    feed comes back once the provider serves again."""
    class SpentNode(HostileNode):
        spent = True
        handshakes = 0

        async def _ws(self, request: web.Request) -> web.StreamResponse:
            if self.spent:
                self.handshakes += 1
                return web.Response(status=429, text=MONTHLY,
                                    content_type="application/json")
            return await super()._ws(request)

    async def go() -> None:
        async with SpentNode() as node:
            async def body(mon: WalletMonitor, _sink: MemorySink) -> None:
                shard = mon.shards[0]
                # speed 20: backoff_max 1 s is 0.05 s, fallback_after 30 s is 1.5 s
                await until(lambda: shard._poller is not None and shard._poller.polls >= 2,
                            "the fallback polling")
                assert node.handshakes > 4  # twice max_reconnect_attempts and more
                assert shard.manager.running
                assert shard.manager.state is not ConnState.FAILED
                assert isinstance(mon.alerts, LogAlerter)
                kinds = [a.kind for a in mon.alerts.sent]
                assert kinds.count("quota_exhausted") == 1 and "failed" not in kinds, kinds
                node.spent = False
                await until(lambda: shard.manager.state is ConnState.CONNECTED,
                            "the feed back")
            await run_monitor(node, tmp_path, body, max_reconnect_attempts=2)
    asyncio.run(go())
