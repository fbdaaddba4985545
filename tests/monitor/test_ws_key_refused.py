"""A WebSocket handshake refused with HTTP 401/403 (a revoked or wrong key: Alchemy,
QuickNode and Infura answer the upgrade so) is a setting to fix, not an outage.

Before, the manager booked it as an ordinary failed attempt (``handshake_401``), alerted
``disconnected`` and retried with backoff for ever (``max_reconnect_attempts = 0``),
never reaching FAILED; ``monitor run`` started and printed READY on a key that could
never work. Now:

* at ``monitor run`` start, the first connection of all refused: exit 2, one line
  naming the URL with its key masked;
* once connected before: FAILED at once, ONE ``failed`` alert saying the provider
  refused the key (HTTP status), the wallet monitor delivers through its polling
  fallback, and the manager tries again every ``backoff_max`` (no new alert each try)
  until the key works again (``recovered``, no restart).

Every server here is a real one on loopback.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hostile_node import HostileNode, explorer_ok, explorer_row
from monitor_helpers import WALLET, order_filled
from test_cli import run_cli
from test_reliability import settings
from websockets.asyncio.server import ServerConnection, serve

from monitor.alerts import LogAlerter
from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.history import History
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 30.0
KEY = "k3yR3v0k3dAbCdEf0123456789"  # key-like: masked in a URL


async def _until(pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.01)


class RefusingServer:
    """A ``websockets`` server on loopback that answers every upgrade with ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.handshakes = 0
        self.port = 0

    def _process_request(self, conn: ServerConnection, request: Any) -> Any:
        self.handshakes += 1
        return conn.respond(HTTPStatus(self.status), "Must be authenticated!\n")

    async def _handler(self, ws: ServerConnection) -> None:  # never reached
        await ws.close()


# -- the manager alone ------------------------------------------------------------------

@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_failed_at_once_and_tried_again_quietly(tmp_path: Path,
                                                                  status: int) -> None:
    """Before: RECONNECTING with ``handshake_401`` for ever, a ``disconnected`` alert, no
    FAILED. Now FAILED at the first refusal, one ``failed`` alert naming the refusal,
    and further attempts (every backoff_max) alert nothing more."""
    server = RefusingServer(status)
    alerter = LogAlerter()
    history_path = tmp_path / "history.jsonl"

    async def go() -> WebSocketManager:
        async with serve(server._handler, "127.0.0.1", 0,
                         process_request=server._process_request) as srv:
            port = srv.sockets[0].getsockname()[1]
            mgr = WebSocketManager(
                f"ws://127.0.0.1:{port}/v2/{KEY}",
                settings=WsSettings(speed=100.0, staleness_blocks=0, seed=1,
                                    backoff_initial=1.0, backoff_max=5.0, min_timeout=1.0),
                clock=SystemClock(), history=History(history_path), alerts=alerter)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.FAILED, TIMEOUT)
                assert mgr.key_refused == status and not mgr.ever_connected
                # still trying, every backoff_max: a key restored would come back
                await _until(lambda: server.handshakes >= 4, "attempts after FAILED")
            finally:
                await mgr.stop()
            return mgr

    asyncio.run(asyncio.wait_for(go(), 2 * TIMEOUT))
    kinds = [a.kind for a in alerter.sent]
    assert kinds == ["failed"], kinds  # before: ["disconnected"]
    text = alerter.sent[0].text
    assert "refused the key" in text and f"HTTP {status}" in text, text
    assert KEY not in text
    states = [json.loads(x) for x in history_path.read_text().splitlines()]
    causes = [(r["to"], r["cause"]) for r in states if r["event"] == "state"]
    assert ("FAILED", f"key_refused: handshake_{status}") in causes, causes
    assert KEY not in history_path.read_text()


# -- monitor run: the first connection refused --------------------------------------------

def test_monitor_run_whose_first_connection_is_refused_exits_2_naming_the_url(
        tmp_path: Path) -> None:
    """Before: it started, printed READY after 15 s and retried the handshake for as long
    as it ran. Now: exit 2, one error line naming the URL with its key masked."""
    server = RefusingServer(401)
    ready = threading.Event()
    done = threading.Event()
    port: list[int] = []

    def serve_thread() -> None:
        async def main() -> None:
            async with serve(server._handler, "127.0.0.1", 0,
                             process_request=server._process_request) as srv:
                port.append(srv.sockets[0].getsockname()[1])
                ready.set()
                while not done.is_set():
                    await asyncio.sleep(0.05)
        asyncio.run(main())

    thread = threading.Thread(target=serve_thread, daemon=True)
    thread.start()
    try:
        assert ready.wait(TIMEOUT)
        url = f"ws://127.0.0.1:{port[0]}/v2/{KEY}"
        r = run_cli("run", "--wallet", WALLET, "--ws-url", url,
                    "--rpc-url", "http://127.0.0.1:1/", "--websocket-share", "100",
                    "--db", str(tmp_path / "state.db"),
                    "--detections", str(tmp_path / "detections.jsonl"),
                    "--history", str(tmp_path / "history.jsonl"))
    finally:
        done.set()
        thread.join(TIMEOUT)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])  # before: 0 after READY
    assert "READY" not in r.stdout
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, r.stderr[-2000:]
    assert f"ws://127.0.0.1:{port[0]}/v2/***" in errors[0] and "401" in errors[0], errors
    assert "refuses the key" in errors[0], errors
    assert KEY not in r.stderr + r.stdout
    assert server.handshakes >= 1


# -- the wallet monitor: refused after it ran ---------------------------------------------

class KeyNode(HostileNode):
    """The hostile node, whose WebSocket upgrade answers 401 while ``refuse_ws`` is set;
    its explorer has the trades of :attr:`logs` (getLogs by topic2, in range)."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse_ws = False
        self.refused = 0
        self.explorer = self._explorer_answer

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_ws:
            self.refused += 1
            return web.json_response({"jsonrpc": "2.0", "id": None, "error": {
                "code": -32000, "message": "Must be authenticated!"}}, status=401)
        return await super()._ws(request)

    def _explorer_answer(self, query: dict[str, str]) -> Any:
        if query.get("module") == "proxy":
            return json.dumps({"jsonrpc": "2.0", "id": 1, "result": hex(self.head)})
        if query.get("module") == "logs":
            a, b = int(query["fromBlock"]), int(query["toBlock"])
            rows = [explorer_row(lg) for lg in self.logs
                    if a <= int(lg["blockNumber"], 16) <= b
                    and lg["topics"][2] == query.get("topic2", lg["topics"][2])]
            if rows:
                return explorer_ok(rows)
        return json.dumps({"status": "0", "message": "No records found", "result": []})


def test_a_key_refused_mid_run_fails_once_falls_back_and_recovers(tmp_path: Path) -> None:
    """Connected, then the provider refuses the key at every reconnect. Before: an
    ordinary outage for ever (RECONNECTING, ``handshake_401``, no FAILED). Now: FAILED
    at once with one ``failed`` alert naming the refusal; the polling fallback delivers a
    trade meanwhile; attempts go on (no alert each); the key restored, CONNECTED again
    and ``recovered``."""
    alerter = LogAlerter()
    sink = MemorySink()

    async def go() -> tuple[WalletMonitor, int]:
        async with KeyNode() as node:
            node.head = 100
            s = settings(node, tmp_path, fallback_after=2.0, backoff_max=2.0)
            mon = WalletMonitor(s, sink=sink)
            mon.alerts = alerter
            await mon.start()
            try:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                manager = mon.shards[0].manager
                assert await manager.wait_state(ConnState.CONNECTED, TIMEOUT)
                node.refuse_ws = True
                for ws in list(node.sockets):  # the provider drops the socket
                    await ws.close()
                assert await manager.wait_state(ConnState.FAILED, TIMEOUT)
                assert manager.key_refused == 401
                assert mon.key_refused_at_start() is None  # it had connected
                # the fallback polls: a trade mined meanwhile is delivered
                node.head = 110
                node.logs.append(order_filled(block=105, tx=7))
                await _until(lambda: any(e.kind == "trade" for e in sink.events),
                             "the fallback's delivery")
                refused = node.refused
                await _until(lambda: node.refused >= refused + 3, "attempts go on")
                assert manager.running
                node.refuse_ws = False
                assert await manager.wait_state(ConnState.CONNECTED, TIMEOUT)
                await _until(lambda: any(a.kind == "recovered" for a in alerter.sent),
                             "the recovered alert")
            finally:
                await mon.stop()
            return mon, node.refused

    asyncio.run(asyncio.wait_for(go(), 4 * TIMEOUT))
    failed = [a for a in alerter.sent if a.kind == "failed"]
    assert len(failed) == 1, [a.kind for a in alerter.sent]  # before: none
    assert "refused the key" in failed[0].text and "HTTP 401" in failed[0].text
    trades = [e.trade.block_number for e in sink.events
              if e.kind == "trade" and e.trade is not None]
    assert trades == [105], trades
