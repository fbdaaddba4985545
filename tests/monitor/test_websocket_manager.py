"""The WebSocket manager against a small geth-like ``websockets`` server on loopback.

Time is compressed with ``speed`` (heartbeat 30 s -> 0.3 s at speed 100); tests wait on
states and counters, never on fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve

from monitor.alerts import LogAlerter, TelegramAlerter
from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.errors import NotConnected, RpcError
from monitor.history import History
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 15.0


def head(n: int) -> dict[str, str]:
    """A ``newHeads`` result the manager takes for a header (number, hash, parentHash)."""
    return {"number": hex(n), "hash": f"0x{n:064x}", "parentHash": f"0x{n - 1:064x}"}

TOKEN = "123456789:AAH-secret-token_for-tests"


# ---------------------------------------------------------------- a geth-like node
class FakeNode:
    """Speaks eth_subscribe / eth_unsubscribe / eth_blockNumber like geth, with faults."""

    def __init__(self) -> None:
        self.server: Server | None = None
        self.port = 0
        self.conns: list[ServerConnection] = []
        self.subs: dict[str, tuple[ServerConnection, list[Any]]] = {}
        self.subscribe_calls: list[list[Any]] = []
        self.unsubscribed: list[str] = []
        self.handshake_status: int | None = None  # answer the handshake with this (e.g. 503)
        self.handshakes = 0
        self.drop_subscribes = 0  # abort the connection on the next N eth_subscribe
        self._ids = itertools.count(0xA1)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self.server = await serve(self._handler, "127.0.0.1", self.port,
                                  process_request=self._process_request)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection: new attempts are refused."""
        assert self.server is not None
        self.server.close(close_connections=False)
        await self.abort_all()
        await self.server.wait_closed()
        self.server = None

    def _process_request(self, conn: ServerConnection, request: Any) -> Any:
        self.handshakes += 1
        if self.handshake_status is not None:
            return conn.respond(HTTPStatus(self.handshake_status), "busy\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        self.conns.append(ws)
        try:
            async for raw in ws:
                req = json.loads(raw)
                method, params, rid = req["method"], req.get("params", []), req["id"]
                if method == "eth_subscribe":
                    self.subscribe_calls.append(params)
                    if self.drop_subscribes > 0:
                        self.drop_subscribes -= 1
                        ws.transport.abort()
                        return
                    if params[0] not in ("newHeads", "logs"):
                        await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "error": {
                            "code": -32601, "message": f"no such subscription {params[0]}"}}))
                        continue
                    sid = hex(next(self._ids))
                    self.subs[sid] = (ws, params)
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "result": sid}))
                elif method == "eth_unsubscribe":
                    self.unsubscribed.append(params[0])
                    self.subs.pop(params[0], None)
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "result": True}))
                elif method == "eth_blockNumber":
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "result": "0x2a"}))
                else:
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "error": {
                        "code": -32601, "message": "method not found"}}))
        except Exception:
            pass
        finally:
            for sid in [s for s, (c, _) in self.subs.items() if c is ws]:
                del self.subs[sid]

    def live(self, kind: str) -> list[str]:
        return [sid for sid, (_, p) in self.subs.items() if p[0] == kind]

    async def notify(self, kind: str, result: Any) -> int:
        """Send ``result`` to every live subscription of ``kind``; how many got it."""
        n = 0
        for sid in self.live(kind):
            ws = self.subs[sid][0]
            await ws.send(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                      "params": {"subscription": sid, "result": result}}))
            n += 1
        return n

    async def send_raw(self, data: str | bytes) -> None:
        for ws in self.open_conns():
            await ws.send(data)

    def open_conns(self) -> list[ServerConnection]:
        return [c for c in self.conns if c.state.name == "OPEN"]

    async def abort_all(self) -> None:
        """Abrupt close: the TCP connection dies without a close frame."""
        for ws in self.open_conns():
            ws.transport.abort()

    async def close_all(self, code: int) -> None:
        for ws in self.open_conns():
            await ws.close(code, "test")

    def stall_all(self) -> None:
        """Stop reading: pings go unanswered, nothing is sent."""
        for ws in self.open_conns():
            ws.transport.pause_reading()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(pred: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait for a condition the manager cannot signal (server side)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def settings(**kw: Any) -> WsSettings:
    base: dict[str, Any] = {"speed": 100.0, "staleness_blocks": 0, "seed": 1,
                            "min_timeout": 1.0}
    base.update(kw)
    return WsSettings(**base)


def rows(path: Path, event: str) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["event"] == event:
            out.append(row)
    return out


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.node = FakeNode()
        self.history_path = tmp_path / "history.jsonl"
        self.history = History(self.history_path)
        self.heads: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []

    def manager(self, url: str | None = None, **kw: Any) -> WebSocketManager:
        alerts = kw.pop("alerts", None)
        self.manager_ref = WebSocketManager(url or self.node.url, settings=settings(**kw),
                                            clock=SystemClock(), history=self.history,
                                            alerts=alerts)
        return self.manager_ref

    def states(self) -> list[tuple[str, str, str]]:
        return [(r["from"], r["to"], r["cause"]) for r in rows(self.history_path, "state")]


def run(coro_fn: Callable[[Env], Awaitable[None]], tmp_path: Path) -> None:
    env = Env(tmp_path)

    async def main() -> None:
        await env.node.start()
        try:
            await asyncio.wait_for(coro_fn(env), 60)
        finally:
            if env.node.server is not None:
                await env.node.stop()
            env.history.close()

    asyncio.run(main())


async def subscribed(env: Env, mgr: WebSocketManager) -> tuple[str, str]:
    heads = await mgr.subscribe(["newHeads"], env.heads.append)

    async def on_log(log: dict[str, Any]) -> None:
        env.logs.append(log)

    logs = await mgr.subscribe(["logs", {"topics": [["0xd0a0"]]}], on_log)
    return heads, logs


# ---------------------------------------------------------------- happy path
def test_connects_subscribes_routes_notifications_and_requests(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        mgr = env.manager()
        heads, logs = await subscribed(env, mgr)  # before start: made on connect
        assert (heads, logs) == ("sub-1", "sub-2")
        connected: list[bool] = []
        mgr.on_connected.append(connected.append)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        assert env.node.subscribe_calls == [["newHeads"], ["logs", {"topics": [["0xd0a0"]]}]]
        await env.node.notify("newHeads", head(1))
        await env.node.notify("logs", {"logIndex": "0x0"})
        assert await mgr.wait_until(lambda: len(env.heads) == 1 and len(env.logs) == 1, TIMEOUT)
        assert env.heads == [head(1)] and env.logs == [{"logIndex": "0x0"}]
        assert await mgr.request("eth_blockNumber", []) == "0x2a"
        with pytest.raises(RpcError) as err:
            await mgr.request("eth_nope", [])
        assert err.value.code == -32601
        assert await mgr.wait_until(lambda: connected == [False], TIMEOUT)
        await mgr.stop()
        assert mgr.state is ConnState.DISCONNECTED
        left = [t for t in asyncio.all_tasks() if t.get_name().startswith("ws-")]
        assert left == []  # stop cancelled the loop, the reader and every timer
        assert env.states() == [("DISCONNECTED", "CONNECTING", "start"),
                                ("CONNECTING", "CONNECTED", "connected"),
                                ("CONNECTED", "DISCONNECTED", "stop")]
        calls = [(r["method"], r["ok"]) for r in rows(env.history_path, "api_call")]
        assert calls == [("eth_subscribe", True), ("eth_subscribe", True),
                         ("eth_blockNumber", True), ("eth_nope", False)]
        assert all(r["kind"] == "rpc_ws" for r in rows(env.history_path, "api_call"))
        m = mgr.metrics_dict()
        assert m["connects"] == 1 and m["notifications"] == 2 and m["heads"] == 1
        assert m["api_calls"]["calls"] == {"eth_subscribe": 2, "eth_blockNumber": 1,
                                           "eth_nope": 1}
        assert m["bytes_received"] > 0 and m["messages"] == 6
        assert m["time_in_state_s"]["CONNECTED"] > 0

    run(body, tmp_path)


def test_subscribe_while_connected_waits_for_the_ack_and_unsubscribe_stops_delivery(
        tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        mgr = env.manager()
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        sid = await mgr.subscribe(["newHeads"], env.heads.append)
        assert env.node.live("newHeads") != []  # acknowledged before subscribe returned
        await mgr.unsubscribe(sid)
        assert env.node.live("newHeads") == [] and len(env.node.unsubscribed) == 1
        assert mgr.subscriptions == {}
        with pytest.raises(KeyError):
            await mgr.unsubscribe(sid)
        await mgr.stop()

    run(body, tmp_path)


def test_a_rejected_subscription_raises_and_is_forgotten(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        mgr = env.manager()
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        with pytest.raises(RpcError, match="no such subscription"):
            await mgr.subscribe(["pendingMagic"], env.heads.append)
        assert mgr.subscriptions == {}
        with pytest.raises(ValueError):
            await mgr.subscribe([], env.heads.append)
        await mgr.stop()

    run(body, tmp_path)


def test_request_when_not_connected_raises_not_connected(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        mgr = env.manager()
        with pytest.raises(NotConnected):
            await mgr.request("eth_blockNumber", [])

    run(body, tmp_path)


# ---------------------------------------------------------------- reconnects
async def _reconnect_after(env: Env, fault: Callable[[], Awaitable[None]], cause: str) -> None:
    mgr = env.manager()
    heads, logs = await subscribed(env, mgr)
    reconnects: list[bool] = []
    downs: list[str] = []
    mgr.on_connected.append(reconnects.append)
    mgr.on_disconnected.append(downs.append)
    await mgr.start()
    assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
    first_ids = set(env.node.subs)
    await fault()
    # the manager notices, backs off, reconnects and re-makes both subscriptions
    assert await mgr.wait_until(lambda: mgr.metrics.connects == 2
                                and mgr.state is ConnState.CONNECTED, TIMEOUT)
    assert await mgr.wait_until(lambda: reconnects == [False, True], TIMEOUT)
    assert downs == [cause]
    assert mgr.subscriptions == {heads: ["newHeads"],
                                 logs: ["logs", {"topics": [["0xd0a0"]]}]}
    assert len(env.node.subscribe_calls) == 4 and len(set(env.node.subs) - first_ids) == 2
    # notifications on the new node ids reach the same callbacks
    await env.node.notify("newHeads", head(2))
    await env.node.notify("logs", {"logIndex": "0x7"})
    assert await mgr.wait_until(lambda: bool(env.heads and env.logs), TIMEOUT)
    assert env.heads[-1] == head(2) and env.logs[-1] == {"logIndex": "0x7"}
    await mgr.stop()
    assert env.states()[:4] == [("DISCONNECTED", "CONNECTING", "start"),
                                ("CONNECTING", "CONNECTED", "connected"),
                                ("CONNECTED", "RECONNECTING", cause),
                                ("RECONNECTING", "CONNECTED", "reconnected")]
    # counted by kind: a forced cause's detail after the colon made one metric key an
    # event (a simulated day held ~280 keys 'logs_silent: N trade(s) of blocks ...')
    assert mgr.metrics.disconnects == {cause.split(":")[0]: 1}


def test_reconnects_and_resubscribes_after_an_abrupt_close(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        await _reconnect_after(env, env.node.abort_all, "abrupt_close")

    run(body, tmp_path)


@pytest.mark.parametrize("code", [1001, 1011, 1013])
def test_reconnects_after_close_code(tmp_path: Path, code: int) -> None:
    async def body(env: Env) -> None:
        await _reconnect_after(env, lambda: env.node.close_all(code), f"close_{code}")

    run(body, tmp_path)


def test_a_message_past_the_size_limit_from_a_peer_that_never_closes_is_said_and_left(
        tmp_path: Path) -> None:
    """The library closes with 1009 when a message is past max_size; a peer that never
    answered the close held the connection half-closed for 10 s (open_timeout) and the
    cause read "stale" or "abrupt_close", never the oversized message."""
    async def body(env: Env) -> None:
        mgr = env.manager(max_message_bytes=4096, heartbeat_interval=3000.0)
        await subscribed(env, mgr)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        loop = asyncio.get_running_loop()
        ws = env.node.open_conns()[0]
        ws.transport.pause_reading()  # it will not see, nor answer, the close
        await ws.send("x" * 10_000)
        t0 = loop.time()
        assert await mgr.wait_until(lambda: mgr.metrics.connects >= 2, TIMEOUT)
        assert loop.time() - t0 < 8.0  # the 2-s close timeout and a backoff, not 10 s
        await mgr.stop()
        assert env.states()[2] == ("CONNECTED", "RECONNECTING", "sent_close_1009")

    run(body, tmp_path)


def test_on_state_callbacks_see_every_state_change_as_it_happens(tmp_path: Path) -> None:
    """``on_state`` callbacks run at once with each transition (the shard's health loop
    re-plans its next tick on them), in the order the history records them."""
    async def body(env: Env) -> None:
        mgr = env.manager()
        seen: list[tuple[str, str, str]] = []
        mgr.on_state.append(lambda t: seen.append(
            (t.from_state.name, t.to_state.name, mgr.state.name)))
        await subscribed(env, mgr)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        await env.node.abort_all()
        assert await mgr.wait_until(lambda: mgr.metrics.connects == 2
                                    and mgr.state is ConnState.CONNECTED, TIMEOUT)
        await mgr.stop()
        assert [(a, b) for a, b, _ in seen] == [(a, b) for a, b, _ in env.states()]
        assert all(b == now for _, b, now in seen)  # the state has changed when they run
        assert ("CONNECTED", "RECONNECTING") in {(a, b) for a, b, _ in seen}

    run(body, tmp_path)


def test_force_reconnect_ends_a_live_connection_and_resubscribes(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        async def lagging() -> None:
            env.manager_ref.force_reconnect("lagging: node head 9, feed head 5")

        await _reconnect_after(env, lagging, "lagging: node head 9, feed head 5")

    run(body, tmp_path)


def test_reconnects_after_a_ping_timeout(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        # heartbeat 30 s / speed 100 = 0.3 s; pong timeout floored at min_timeout 1 s
        async def stall() -> None:
            env.node.stall_all()

        await _reconnect_after(env, stall, "ping_timeout")

    run(body, tmp_path)


@pytest.mark.parametrize("heads", [True, False])
def test_a_peer_that_floods_pings_and_reads_nothing_is_dropped(
        tmp_path: Path, heads: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The library answers every ping with a pong whether or not the peer reads them: a
    node flooding pings while it read nothing grew the monitor by ~20 MB a second, and the
    heartbeat's own ping waited forever for the peer to read. Now the connection is dropped
    once 1 MiB is unsent, checked as the peer's bytes arrive, with or without data frames
    among the pings. (The ping budget, which would drop this peer first, is lifted here:
    this is the bound on unsent bytes alone.)"""
    import monitor.websocket_manager as wsm
    monkeypatch.setattr(wsm, "PINGS_PER_S", 1e12)

    async def body(env: Env) -> None:
        mgr = env.manager(heartbeat_interval=3000.0)  # no heartbeat: the bound alone
        await subscribed(env, mgr)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        ws = env.node.open_conns()[0]
        ws.transport.pause_reading()  # the node reads nothing more
        sid = env.node.live("newHeads")[0]
        head = json.dumps({"jsonrpc": "2.0", "method": "eth_subscription", "params": {
            "subscription": sid, "result": {"number": "0x1", "hash": "0x" + "11" * 32,
                                            "parentHash": "0x" + "22" * 32}}})
        pings = (bytes([0x89, 125]) + b"p" * 125) * 500  # server frames: unmasked
        peak = 0
        while mgr.metrics.errors.get("peer_not_reading", 0) == 0:
            ws.transport.write(pings)
            if heads:
                await ws.send(head)
            link = mgr._link
            if link is not None and link.ws.transport is not None:
                peak = max(peak, link.ws.transport.get_write_buffer_size())
            await asyncio.sleep(0)
        assert await mgr.wait_until(lambda: mgr.metrics.connects >= 2, TIMEOUT)
        await mgr.stop()
        causes = [c for _f, to, c in env.states() if to == "RECONNECTING"]
        assert causes[0] == "peer_not_reading", causes
        # bounded: at most the limit and what one burst of pongs adds past it
        assert peak < wsm.MAX_UNSENT_BYTES + (4 << 20), peak

    run(body, tmp_path)


def test_a_peer_that_floods_pings_and_reads_the_pongs_is_dropped(tmp_path: Path) -> None:
    """A peer that reads its pongs passes the unsent bound and kept this side answering
    pings at 15-20 % of a core. Past the ping budget the connection is dropped; pings
    at a node's pace are answered as before."""
    import monitor.websocket_manager as wsm

    async def body(env: Env) -> None:
        mgr = env.manager(heartbeat_interval=3000.0)
        await subscribed(env, mgr)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        ws = env.node.open_conns()[0]
        for _ in range(wsm.PING_BURST // 2):  # a burst within the budget: answered
            await asyncio.wait_for(await ws.ping(), TIMEOUT)
        assert mgr.metrics.connects == 1
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while mgr.metrics.errors.get("peer_ping_flood", 0) == 0:
            assert asyncio.get_running_loop().time() < deadline, "a ping flood is answered"
            with contextlib.suppress(Exception):
                ws.transport.write((bytes([0x89, 4]) + b"ping") * 50)
            await asyncio.sleep(0)
        assert await mgr.wait_until(lambda: mgr.metrics.connects >= 2, TIMEOUT)
        await mgr.stop()
        causes = [c for _f, to, c in env.states() if to == "RECONNECTING"]
        assert causes[0] == "peer_ping_flood", causes

    run(body, tmp_path)


def test_stale_watchdog_reconnects_a_silent_subscription_whose_pings_succeed(
        tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        # limit 5 blocks x 2 s = 10 s simulated = 0.1 s at speed 100; heartbeat 0.03 s
        mgr = env.manager(staleness_blocks=5, block_interval=2.0, heartbeat_interval=3.0)
        await subscribed(env, mgr)
        await mgr.start()
        assert await mgr.wait_until(lambda: mgr.metrics.connects >= 2, TIMEOUT)
        await mgr.stop()
        assert env.states()[2] == ("CONNECTED", "RECONNECTING", "stale")
        assert mgr.metrics.pings >= 1  # pongs arrived: only the watchdog saw the problem

    run(body, tmp_path)


def test_heads_keep_the_watchdog_quiet(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        # limit 5 blocks x 2 s / speed 20 = 0.5 s; heartbeat 3 s / 20 = 0.15 s
        mgr = env.manager(staleness_blocks=5, block_interval=2.0, heartbeat_interval=3.0,
                          speed=20.0)
        await subscribed(env, mgr)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        # a head every 0.02 s (25 per limit) for 30 heads: 0.6 s, longer than the limit
        for i in range(30):
            await env.node.notify("newHeads", head(i))
            await asyncio.sleep(0.02)
        assert await mgr.wait_until(lambda: len(env.heads) == 30, TIMEOUT)
        assert mgr.metrics.connects == 1 and mgr.state is ConnState.CONNECTED
        await mgr.stop()

    run(body, tmp_path)


def test_watchdog_is_not_armed_without_a_heads_subscription(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        mgr = env.manager(staleness_blocks=1, block_interval=2.0, heartbeat_interval=3.0)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        # 10 heartbeats (0.3 s) outlive the 0.02 s limit many times over
        assert await mgr.wait_until(lambda: mgr.metrics.pings >= 10, TIMEOUT)
        assert mgr.metrics.connects == 1
        await mgr.stop()

    run(body, tmp_path)


def test_subscribe_while_reconnecting_returns_at_once_and_is_made_on_connect(
        tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        mgr = env.manager(max_reconnect_attempts=0)
        heads = await mgr.subscribe(["newHeads"], env.heads.append)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        await env.node.stop()
        assert await mgr.wait_until(lambda: mgr.metrics.connect_failures >= 2, TIMEOUT)
        logs = await mgr.subscribe(["logs", {}], env.logs.append)  # not up: returns at once
        await mgr.unsubscribe(heads)  # not up: only forgotten
        await env.node.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        assert env.node.live("logs") != [] and env.node.live("newHeads") == []
        assert mgr.subscriptions == {logs: ["logs", {}]}
        await env.node.notify("logs", {"n": 1})
        assert await mgr.wait_until(lambda: env.logs == [{"n": 1}], TIMEOUT)
        await mgr.stop()

    run(body, tmp_path)


def test_a_connection_lost_while_resubscribing_is_a_failed_attempt(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        mgr = env.manager(max_reconnect_attempts=0)
        await subscribed(env, mgr)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        env.node.drop_subscribes = 2  # the next two connections die at eth_subscribe
        await env.node.abort_all()
        assert await mgr.wait_until(lambda: mgr.metrics.connects == 2
                                    and mgr.state is ConnState.CONNECTED, TIMEOUT)
        assert mgr.metrics.connect_failures == 2
        assert len(env.node.live("newHeads")) == 1 and len(env.node.live("logs")) == 1
        await mgr.stop()
        assert env.states()[2:4] == [("CONNECTED", "RECONNECTING", "abrupt_close"),
                                     ("RECONNECTING", "CONNECTED", "reconnected")]

    run(body, tmp_path)


def test_stop_during_backoff_and_start_again_after_failed(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        # backoff 1000 s: the manager sits in its first backoff sleep when stopped
        mgr = env.manager(f"ws://127.0.0.1:{free_port()}/", backoff_initial=1000.0,
                          backoff_max=1000.0, speed=1.0, max_reconnect_attempts=1)
        await mgr.start()
        assert await mgr.wait_state(ConnState.FAILED, TIMEOUT)
        mgr.url = env.node.url
        await mgr.start()  # FAILED -> CONNECTING
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        await env.node.stop()  # lost; now sleeping a 1000 s backoff
        assert await mgr.wait_state(ConnState.RECONNECTING, TIMEOUT)
        await asyncio.wait_for(mgr.stop(), 5.0)  # does not wait for the backoff
        assert mgr.state is ConnState.DISCONNECTED
        assert [t[1] for t in env.states()] == ["CONNECTING", "RECONNECTING", "FAILED",
                                                "CONNECTING", "CONNECTED", "RECONNECTING",
                                                "DISCONNECTED"]

    run(body, tmp_path)


def test_handshake_rejected_with_503_then_accepted(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        env.node.handshake_status = 503
        mgr = env.manager(max_reconnect_attempts=0)
        await mgr.start()
        await until(lambda: env.node.handshakes >= 3)
        assert mgr.state is ConnState.RECONNECTING
        env.node.handshake_status = None
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        await mgr.stop()
        assert env.states()[1] == ("CONNECTING", "RECONNECTING", "handshake_503")
        assert env.states()[2] == ("RECONNECTING", "CONNECTED", "connected")
        assert mgr.metrics.connect_failures >= 3

    run(body, tmp_path)


def test_a_redirect_of_the_handshake_is_a_failed_attempt_never_followed() -> None:
    """websockets follows up to ten redirects, to any host: the URL's key went along."""
    from websockets.exceptions import InvalidStatus

    from monitor.websocket_manager import _default_factory, classify_connect_error

    async def main() -> tuple[int, BaseException | None]:
        reached = {"n": 0}

        def count(conn: ServerConnection, request: Any) -> Any:
            reached["n"] += 1
            return None

        async def echo(ws: ServerConnection) -> None:
            await ws.wait_closed()

        async with serve(echo, "127.0.0.1", 0, process_request=count) as other:
            target = f"ws://127.0.0.1:{other.sockets[0].getsockname()[1]}/v2/SECRETKEY123456"

            def moved(conn: ServerConnection, request: Any) -> Any:
                resp = conn.respond(HTTPStatus.FOUND, "moved\n")
                resp.headers["Location"] = target
                return resp

            async with serve(echo, "127.0.0.1", 0, process_request=moved) as first:
                url = f"ws://127.0.0.1:{first.sockets[0].getsockname()[1]}/"
                error: BaseException | None = None
                try:
                    ws = await _default_factory(url, open_timeout=5.0, max_size=1 << 20)
                    await ws.close()
                except InvalidStatus as exc:
                    error = exc
        return reached["n"], error

    reached, error = asyncio.run(main())
    assert reached == 0
    assert error is not None and classify_connect_error(error) == "handshake_302"


def test_failed_after_max_reconnect_attempts_with_a_failed_alert(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        alerter = LogAlerter()
        mgr = env.manager(f"ws://127.0.0.1:{free_port()}/", max_reconnect_attempts=4,
                          alerts=alerter)
        await mgr.start()
        assert await mgr.wait_state(ConnState.FAILED, TIMEOUT)
        assert mgr.metrics.connect_failures == 4 and mgr.metrics.reconnect_attempts == 3
        assert env.states() == [("DISCONNECTED", "CONNECTING", "start"),
                                ("CONNECTING", "RECONNECTING", "refused"),
                                ("RECONNECTING", "FAILED", "max_attempts: refused")]
        await mgr.stop()
        assert [a.kind for a in alerter.sent] == ["disconnected", "failed"]
        assert "4 attempts" in alerter.sent[1].text
        assert [r["kind"] for r in rows(env.history_path, "alert")] == ["disconnected",
                                                                         "failed"]

    run(body, tmp_path)


# ---------------------------------------------------------------- bad input
def test_malformed_frames_are_counted_by_kind_and_never_crash(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def body(env: Env) -> None:
        mgr = env.manager()
        await subscribed(env, mgr)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        await env.node.send_raw("this is not json {")
        await env.node.send_raw(b"\xff\xfe\x00garbage")
        await env.node.send_raw(json.dumps({"jsonrpc": "2.0", "foo": 1}))
        await env.node.send_raw(json.dumps([1, 2]))
        await env.node.send_raw(json.dumps({"jsonrpc": "2.0", "id": 999, "result": "0x1"}))
        await env.node.send_raw(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                            "params": {"subscription": "0xdead",
                                                       "result": {}}}))
        await env.node.notify("newHeads", head(9))
        assert await mgr.wait_until(lambda: env.heads == [head(9)], TIMEOUT)
        assert dict(mgr.metrics.errors) == {"not_json": 1, "binary": 1, "bad_shape": 3,
                                            "unknown_response_id": 1,
                                            "unknown_subscription": 1}
        assert mgr.metrics.connects == 1 and mgr.state is ConnState.CONNECTED
        await mgr.stop()
        assert "unknown_subscription" in caplog.text

    with caplog.at_level(logging.WARNING, logger="monitor.ws"):
        run(body, tmp_path)


def test_a_failing_callback_is_counted_not_fatal(tmp_path: Path) -> None:
    async def body(env: Env) -> None:
        mgr = env.manager()

        def boom(result: dict[str, Any]) -> None:
            raise RuntimeError("callback bug")

        await mgr.subscribe(["newHeads"], boom)
        await mgr.start()
        assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
        await env.node.notify("newHeads", head(1))
        assert await mgr.wait_until(lambda: mgr.metrics.errors["callback"] == 1, TIMEOUT)
        assert await mgr.request("eth_blockNumber", []) == "0x2a"
        await mgr.stop()

    run(body, tmp_path)


# ---------------------------------------------------------------- outage + telegram
class TelegramStandIn:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/sendMessage", self._send)
        self.runner = web.AppRunner(app, access_log=None)  # the stand-in's own log
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _send(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        self.messages.append(await request.json())
        return web.json_response({"ok": True, "result": {"message_id": len(self.messages)}})

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def test_an_outage_gives_one_down_and_one_recovered_alert_on_telegram(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def body(env: Env) -> None:
        tg = TelegramStandIn()
        await tg.start()
        async with aiohttp.ClientSession() as session:
            alerter = TelegramAlerter(TOKEN, 42, session=session, api_url=tg.url)
            mgr = env.manager(alerts=alerter, max_reconnect_attempts=0)
            await subscribed(env, mgr)
            await mgr.start()
            assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
            # outage: the node goes away; at least 5 refused attempts, then comes back
            await env.node.stop()
            assert await mgr.wait_until(lambda: mgr.metrics.connect_failures >= 5, TIMEOUT)
            await env.node.start()
            assert await mgr.wait_until(lambda: mgr.metrics.connects == 2
                                        and mgr.state is ConnState.CONNECTED, TIMEOUT)
            await until(lambda: len(tg.messages) == 2)
            attempts = mgr.metrics.reconnect_attempts
            await mgr.stop()
            await tg.stop()
        texts = [m["text"] for m in tg.messages]
        assert all(m["chat_id"] == 42 for m in tg.messages)
        assert "down: abrupt_close" in texts[0]
        assert "recovered after" in texts[1] and f"{attempts} reconnect attempts" in texts[1]
        assert alerter.sent == 2 and alerter.failures == 0
        assert [r["kind"] for r in rows(env.history_path, "alert")] == ["disconnected",
                                                                         "recovered"]
        assert TOKEN not in env.history_path.read_text()
        assert TOKEN not in caplog.text

    with caplog.at_level(logging.DEBUG):
        run(body, tmp_path)


def test_telegram_failures_are_logged_and_counted_without_the_token(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        tg = TelegramStandIn()
        await tg.start()
        async with aiohttp.ClientSession() as session:
            bad = TelegramAlerter("999:wrong-token-xyz", 1, session=session, api_url=tg.url)
            assert await bad.send("disconnected", "x") is False
            down = TelegramAlerter(TOKEN, 1, session=session,
                                   api_url=f"http://127.0.0.1:{free_port()}")
            assert await down.send("disconnected", "x") is False
        await tg.stop()
        assert bad.failures == 1 and "401" in (bad.last_error or "")
        assert down.failures == 1 and TOKEN not in (down.last_error or "")
        assert "wrong-token-xyz" not in caplog.text and TOKEN not in caplog.text
        assert TOKEN not in repr(down)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
