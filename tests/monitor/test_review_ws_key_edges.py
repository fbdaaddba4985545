"""Edges of a WebSocket key refused at the handshake (826bdb5), over real loopback
servers: a refusal in among ordinary failures, a stop while refused, the retry pace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web
from hostile_node import HostileNode
from monitor_helpers import WALLET
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


async def _until(pred: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        await asyncio.sleep(0.01)


class ScriptedServer:
    """Answers the n-th upgrade with ``script[n]`` (an HTTP status), then ``last``."""

    def __init__(self, script: list[int], last: int) -> None:
        self.script = list(script)
        self.last = last
        self.handshakes = 0

    def process_request(self, conn: ServerConnection, request: Any) -> Any:
        self.handshakes += 1
        status = self.script.pop(0) if self.script else self.last
        headers = [("Retry-After", "0")] if status in (429, 503) else []
        resp = conn.respond(HTTPStatus(status), "no\n")
        for k, v in headers:
            resp.headers[k] = v
        return resp

    async def handler(self, ws: ServerConnection) -> None:
        await ws.close()


def _manager(port: int, tmp: Path, alerter: LogAlerter, **ws: Any) -> WebSocketManager:
    base: dict[str, Any] = dict(speed=100.0, staleness_blocks=0, seed=1, backoff_initial=1.0,
                                backoff_max=5.0, min_timeout=1.0)
    base.update(ws)
    return WebSocketManager(f"ws://127.0.0.1:{port}/v2/key", settings=WsSettings(**base),
                            clock=SystemClock(), history=History(tmp / "history.jsonl"),
                            alerts=alerter)


def test_refusals_do_not_use_up_the_reconnect_attempts(tmp_path: Path) -> None:
    """max_reconnect_attempts = 3: the key refused 5 times (each a quiet retry every
    backoff_max, 'for as long as it takes'), then the key is back but the provider
    answers one 503 (and refuses again after it): an ordinary failed attempt, retried.
    Before: the 503 was the sixth failed attempt of an outage the refusals had filled,
    and the manager gave up for good ('FAILED after 6 attempts'), a restored key never
    tried again."""
    server = ScriptedServer([401] * 5 + [503], last=401)
    alerter = LogAlerter()

    async def go() -> tuple[bool, ConnState]:
        async with serve(server.handler, "127.0.0.1", 0,
                         process_request=server.process_request) as srv:
            port = srv.sockets[0].getsockname()[1]
            mgr = _manager(port, tmp_path, alerter, max_reconnect_attempts=3)
            await mgr.start()
            try:
                await _until(lambda: server.handshakes >= 8 or not mgr.running,
                             "the attempts after the 503")
                return mgr.running, mgr.state
            finally:
                await mgr.stop()

    running, state = asyncio.run(asyncio.wait_for(go(), 3 * TIMEOUT))
    assert running, (state, [a.text for a in alerter.sent])
    assert [a.kind for a in alerter.sent] == ["failed"], [a.text for a in alerter.sent]


def test_a_429_or_503_alone_is_still_an_ordinary_retry(tmp_path: Path) -> None:
    for status in (429, 503):
        server = ScriptedServer([], last=status)
        alerter = LogAlerter()

        async def go(server: ScriptedServer = server,
                     alerter: LogAlerter = alerter) -> WebSocketManager:
            async with serve(server.handler, "127.0.0.1", 0,
                             process_request=server.process_request) as srv:
                port = srv.sockets[0].getsockname()[1]
                mgr = _manager(port, tmp_path, alerter)
                await mgr.start()
                try:
                    await _until(lambda: server.handshakes >= 3, "retries")
                    assert mgr.state is ConnState.RECONNECTING
                    assert mgr.key_refused is None
                finally:
                    await mgr.stop()
                return mgr

        asyncio.run(asyncio.wait_for(go(), 2 * TIMEOUT))
        assert [a.kind for a in alerter.sent] == ["disconnected"], alerter.sent


def test_stop_while_the_key_is_refused_is_prompt(tmp_path: Path) -> None:
    """backoff_max of 600 s at speed 1: stop() must not wait for the next try."""
    server = ScriptedServer([], last=403)
    alerter = LogAlerter()

    async def go() -> float:
        async with serve(server.handler, "127.0.0.1", 0,
                         process_request=server.process_request) as srv:
            port = srv.sockets[0].getsockname()[1]
            mgr = _manager(port, tmp_path, alerter, speed=1.0, backoff_max=600.0)
            await mgr.start()
            assert await mgr.wait_state(ConnState.FAILED, TIMEOUT)
            t0 = time.monotonic()
            await mgr.stop()
            assert mgr.state is ConnState.DISCONNECTED
            m = mgr.metrics_dict()
            assert m, m
            return time.monotonic() - t0

    took = asyncio.run(asyncio.wait_for(go(), 2 * TIMEOUT))
    assert took < 20.0, took
    assert [a.kind for a in alerter.sent] == ["failed"]


# -- several shards: one refused at the start, the others connected -----------------------

class _OneRefusedNode(HostileNode):
    """The hostile node whose second WebSocket upgrade (the second shard's first
    handshake) is answered 403; every other one is served."""

    def __init__(self) -> None:
        super().__init__()
        self.upgrades = 0

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        self.upgrades += 1
        if self.upgrades == 2:
            return web.json_response({"error": "forbidden"}, status=403)
        return await super()._ws(request)


def test_a_403_on_one_shard_of_several_is_no_key_refused_at_start(tmp_path: Path) -> None:
    """Two shards (max_wallets_per_filter 1, two wallets) on the same URL: the first
    connects, the second's first handshake is answered 403 (a proxy's per-connection
    refusal, or a flapping edge), its retry is served. The key demonstrably works: the
    refused shard is FAILED and tried again (826bdb5's mid-run rule), the monitor starts.
    Now: ConfigError at wait_connected, 'monitor run' would exit 2."""
    other = "0x" + "ab" * 20

    async def go() -> None:
        async with _OneRefusedNode() as node:
            s = settings(node, tmp_path, wallets=[WALLET, other], max_wallets_per_filter=1,
                         backoff_max=1.0)
            mon = WalletMonitor(s, sink=MemorySink())
            mon.alerts = LogAlerter()
            await mon.start()
            try:
                assert len(mon.shards) == 2
                connected = await mon.wait_connected(TIMEOUT)  # raises ConfigError now
                assert connected or any(sh.manager.key_refused for sh in mon.shards)
            finally:
                await mon.stop()

    asyncio.run(asyncio.wait_for(go(), 3 * TIMEOUT))
