"""A WebSocket handshake refused with HTTP 403 whose body is a spent quota (Alchemy
answers "Monthly capacity limit exceeded" with a 403 too, the key being good): a quota
to raise, not a key to fix. The manager against a small node on loopback (no fixed
sleeps as synchronisation)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import serve

from monitor.alerts import LogAlerter
from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.history import History
from monitor.websocket_manager import WebSocketManager
from polyvocab.errors import QuotaExhausted
from polyvocab.jsonrpc_http import classify_http

TIMEOUT = 15.0
BACKOFF_MAX = 0.6
#: Alchemy's answer (xmtp/xmtpd#672: "403 Forbidden: {...}")
ALCHEMY_403 = json.dumps({"jsonrpc": "2.0", "id": 6570, "error": {
    "code": -32600, "message": "Monthly capacity limit exceeded. Visit https://dashboard."
    "alchemyapi.io/settings/billing to upgrade your scaling policy for continued "
    "service."}})
PLAIN_403 = "Monthly capacity limit exceeded. Visit https://dashboard.alchemy.com/settings"


class Refusing403:
    """Refuses its first ``refuse`` handshakes with ``status`` (403) and ``body``, then
    answers every ``eth_subscribe``."""

    def __init__(self, refuse: int, body: str,
                 status: HTTPStatus = HTTPStatus.FORBIDDEN) -> None:
        self.refuse, self.body, self.status = refuse, body, status
        self.handshakes: list[float] = []
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    def _process_request(self, conn: Any, request: Any) -> Any:
        self.handshakes.append(asyncio.get_running_loop().time())
        if len(self.handshakes) <= self.refuse:
            return conn.respond(self.status, self.body)
        return None

    async def _handler(self, ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0x1"}))

    async def __aenter__(self) -> Refusing403:
        self.server = await serve(self._handler, "127.0.0.1", 0,
                                  process_request=self._process_request)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize("status,body", [
    (HTTPStatus.FORBIDDEN, ALCHEMY_403), (HTTPStatus.FORBIDDEN, PLAIN_403),
    (HTTPStatus.PAYMENT_REQUIRED, "Payment Required")],
    ids=["json_rpc", "plain_text", "payment_required"])
def test_a_403_handshake_with_a_spent_quota_is_no_refused_key(
        tmp_path: Path, status: HTTPStatus, body: str) -> None:
    """A 403 handshake saying "Monthly capacity limit exceeded" was a refused key: FAILED
    (cause ``key_refused: handshake_403``), a ``failed`` alert telling the operator to fix
    the key. It is a spent quota: one ``quota_exhausted`` alert, no key refused, the next
    attempt after ``backoff_max``. So is a 402 Payment Required (dRPC's spent free tier,
    as the HTTP client reads it), which was an outage like any, retried on the backoff."""
    async def go() -> None:
        async with Refusing403(refuse=1, body=body, status=status) as node:
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
            causes = [t.cause for t in mgr.transitions]
            assert not any("key_refused" in c for c in causes), causes
            assert ConnState.FAILED not in {t.to_state for t in mgr.transitions}
            kinds = [a.kind for a in alerts.sent]
            assert kinds.count("quota_exhausted") == 1, kinds
            assert "failed" not in kinds, kinds
            assert len(node.handshakes) == 2
            assert node.handshakes[1] - node.handshakes[0] >= BACKOFF_MAX * 0.9
    asyncio.run(go())


def test_a_403_refusing_the_key_is_still_a_refused_key() -> None:
    """The status stays the answer for any other 403 body (Alchemy "Must be
    authenticated!"): only a spent-quota text reads otherwise."""
    out = classify_http(403, json.dumps({"jsonrpc": "2.0", "id": 1, "error": {
        "code": -32600, "message": "Must be authenticated!"}}))
    assert not isinstance(out, QuotaExhausted) and getattr(out, "status", None) == 403
    assert isinstance(classify_http(403, PLAIN_403), QuotaExhausted)
