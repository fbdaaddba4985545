"""Error answers without a request id (``"id": null``) and heads that are no header: the
WebSocket manager against a small node on loopback (no fixed sleeps as synchronisation)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.errors import BadResponse, RateLimited
from monitor.history import History
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 15.0
OPEN_TIMEOUT = 8.0  # what a request answered without its id waited before
RATE = {"code": -32005, "message": "project ID request rate exceeded",
        "data": {"rate": {"allowed_rps": 1, "backoff_seconds": 0.3, "current_rps": 2.2}}}
PARSE = {"code": -32700, "message": "Parse error"}
HEADER = {"number": "0x10", "hash": "0x" + "ab" * 32, "parentHash": "0x" + "cd" * 32}


class UnaddressedNode:
    """Answers the first ``refuse`` ``eth_subscribe`` calls with ``error`` and
    ``"id": null``; the others with an id and one head. ``eth_blockNumber`` calls are
    held (``held``) until ``release`` answers them all with ``error``, id null."""

    def __init__(self, refuse: int, error: Any, *, addressed: bool = False) -> None:
        self.refuse, self.error, self.addressed = refuse, error, addressed
        self.opened: list[float] = []
        self.held: list[tuple[ServerConnection, int]] = []
        self.held_changed = asyncio.Event()
        self.server: Any = None
        self.ws: ServerConnection | None = None
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _handler(self, ws: ServerConnection) -> None:
        self.opened.append(asyncio.get_running_loop().time())
        self.ws = ws
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                if req["method"] == "eth_blockNumber":
                    self.held.append((ws, req["id"]))
                    self.held_changed.set()
                    continue
                if self.refuse > 0 and isinstance(self.error, dict) and "result" in self.error:
                    self.refuse -= 1  # an answer, with the result given
                    await ws.send(json.dumps(dict(self.error, jsonrpc="2.0", id=req["id"])))
                    continue
                if self.refuse > 0:
                    self.refuse -= 1
                    rid = req["id"] if self.addressed else None
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid,
                                              "error": self.error}))
                    continue
                sid = f"0x{next(self._ids):x}"
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": sid}))
                await ws.send(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                          "params": {"subscription": sid, "result": HEADER}}))

    async def push(self, frame: Any) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(frame))

    async def wait_held(self, n: int) -> None:
        while len(self.held) < n:
            self.held_changed.clear()
            await asyncio.wait_for(self.held_changed.wait(), TIMEOUT)

    async def __aenter__(self) -> UnaddressedNode:
        self.server = await serve(self._handler, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def manager(url: str, history: History, **kw: Any) -> WebSocketManager:
    settings = dict(speed=1.0, staleness_blocks=0, seed=1, backoff_initial=0.05,
                    backoff_max=5.0, min_timeout=1.0, open_timeout=OPEN_TIMEOUT)
    settings.update(kw)
    return WebSocketManager(url, settings=WsSettings(**settings), clock=SystemClock(),
                            history=history)


LIMIT = {"code": -32005, "message": "limit exceeded"}  # public Polygon/BSC nodes


@pytest.mark.parametrize("error", [RATE, PARSE, LIMIT],
                         ids=["rate_limit", "parse_error", "limit_exceeded"])
def test_a_subscribe_refused_without_its_id_fails_at_once(tmp_path: Path,
                                                          error: dict[str, Any]) -> None:
    """A provider's gateway refusing the ``eth_subscribe`` frame with ``"id": null``
    (Infura's -32005 "project ID request rate exceeded", a -32700) was an
    ``unknown_response_id``, and the subscribe waited ``open_timeout`` (8 s) for an
    answer already given. The only request waiting is the one refused: it fails at once
    (a rate limit as ``rate_limited``, its backoff_seconds waited), the next connection
    subscribes."""
    async def go() -> None:
        async with UnaddressedNode(refuse=1, error=error) as node:
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
            assert len(node.opened) == 2
            assert node.opened[1] - node.opened[0] < OPEN_TIMEOUT / 2
            causes = [t.cause for t in mgr.transitions]
            if error is RATE:
                assert node.opened[1] - node.opened[0] >= 0.3 * 0.9
            if error is not PARSE:
                assert "rate_limited" in causes, causes
            assert mgr.bad_frames["unknown_response_id"] == 0
    asyncio.run(go())


def test_a_rate_limit_without_an_id_fails_every_request_waiting(tmp_path: Path) -> None:
    """Two requests waiting and one rate limit with ``"id": null``: whose it is cannot be
    told, but a gateway's limit holds for the connection: both fail with
    :class:`RateLimited` (they waited their whole timeout before). A -32700 without an id
    with both waiting is counted as bad input and fails neither."""
    async def go() -> None:
        async with UnaddressedNode(refuse=0, error=RATE) as node:
            history = History(tmp_path / "history.jsonl")
            mgr = manager(node.url, history)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
                calls = [asyncio.ensure_future(mgr.request("eth_blockNumber", [],
                                                           timeout=OPEN_TIMEOUT))
                         for _ in range(2)]
                await node.wait_held(2)
                await node.push({"jsonrpc": "2.0", "id": None, "error": PARSE})
                await node.push({"jsonrpc": "2.0", "id": None, "error": RATE})
                done, _ = await asyncio.wait(calls, timeout=OPEN_TIMEOUT / 2)
                assert len(done) == 2
                for c in calls:
                    assert isinstance(c.exception(), RateLimited)
                    assert c.exception().retry_after == 0.3  # type: ignore[union-attr]
                assert mgr.bad_frames["unaddressed_error"] == 1
                assert mgr.bad_frames["unknown_response_id"] == 0
                # one request waiting: a -32700 without an id is its answer
                one = asyncio.ensure_future(mgr.request("eth_blockNumber", [],
                                                        timeout=OPEN_TIMEOUT))
                await node.wait_held(3)
                await node.push({"jsonrpc": "2.0", "id": None, "error": PARSE})
                with pytest.raises(BadResponse, match="without the request's id"):
                    await asyncio.wait_for(one, OPEN_TIMEOUT / 2)
            finally:
                await mgr.stop()
                history.close()
    asyncio.run(go())


def test_heads_that_are_no_header_do_not_keep_the_feed_alive(tmp_path: Path) -> None:
    """A node sending ``newHeads`` notifications whose result is null, a number or a list
    fed the staleness watchdog: the connection stayed "alive" on garbage. Only an object
    with number, hash and parentHash strings is a head; the others are bad input
    (``bad_head``) and the watchdog finds the feed stale."""
    async def go() -> None:
        async with UnaddressedNode(refuse=0, error=RATE) as node:
            history = History(tmp_path / "history.jsonl")
            got: list[Any] = []
            # stale after 3 blocks of 0.5 s without a head
            mgr = manager(node.url, history, staleness_blocks=3, block_interval=0.5,
                          heartbeat_interval=60.0, heartbeat_timeout=30.0)
            await mgr.subscribe(["newHeads"], got.append)
            await mgr.start()
            try:
                assert await mgr.wait_until(lambda: bool(got), TIMEOUT)
                def stale() -> bool:
                    return "stale" in [t.cause for t in mgr.transitions]

                loop = asyncio.get_running_loop()
                end = loop.time() + 6.0  # stale after 1.5 s; garbage every 0.1 s
                with contextlib.suppress(ConnectionClosed):  # the manager left it
                    while loop.time() < end and not stale():
                        for bad in (None, 7, [1, 2], {"number": 16}):
                            await node.push({"jsonrpc": "2.0", "method": "eth_subscription",
                                             "params": {"subscription": "0x1",
                                                        "result": bad}})
                        await asyncio.sleep(0.1)  # pacing the garbage, not synchronisation
                assert await mgr.wait_until(stale, 0.5)  # while the garbage came
            finally:
                await mgr.stop()
                history.close()
            assert mgr.bad_frames["bad_head"] >= 4
            assert mgr.metrics.heads >= 1
            assert None in got  # the owner still sees what came
    asyncio.run(go())


def test_an_error_in_a_frame_with_a_method_answers_nothing(tmp_path: Path) -> None:
    """A frame with a ``method`` is a request or a notification, never an answer: one
    with an ``error`` and no id (or ``"id": null``) must not fail the request waiting."""
    async def go() -> None:
        async with UnaddressedNode(refuse=0, error=RATE) as node:
            history = History(tmp_path / "history.jsonl")
            mgr = manager(node.url, history)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
                call = asyncio.ensure_future(mgr.request("eth_blockNumber", [],
                                                         timeout=OPEN_TIMEOUT))
                await node.wait_held(1)
                await node.push({"jsonrpc": "2.0", "method": "foo", "error": PARSE})
                await node.push({"jsonrpc": "2.0", "id": None, "method": "foo",
                                 "error": PARSE})
                await node.push({"jsonrpc": "2.0", "id": node.held[0][1], "result": "0x5"})
                assert await asyncio.wait_for(call, OPEN_TIMEOUT / 2) == "0x5"
                assert mgr.bad_frames["bad_shape"] == 1
                assert mgr.bad_frames["unknown_response_id"] == 1
                # an error with no id member at all (not even null) is an answer of none
                call = asyncio.ensure_future(mgr.request("eth_blockNumber", [],
                                                         timeout=OPEN_TIMEOUT))
                await node.wait_held(2)
                await node.push({"jsonrpc": "2.0", "error": PARSE})
                with pytest.raises(BadResponse, match="without the request's id"):
                    await asyncio.wait_for(call, OPEN_TIMEOUT / 2)
            finally:
                await mgr.stop()
                history.close()
    asyncio.run(go())


@pytest.mark.parametrize("error", ["rate limited", {"code": "429", "message": "slow down"},
                                   {"message": "no code"}, [1, 2], {"result": 5},
                                   {"result": None}],
                         ids=["string", "string_code", "no_code", "list", "id_5", "id_null"])
def test_an_error_that_is_no_error_object_keeps_the_subscription(
        tmp_path: Path, error: Any) -> None:
    """``subscribe`` on a connection that is up, answered with an error that is no JSON-RPC
    error object (a string, a code "429", none) or with an id that is no string (5,
    null): it was an RpcError -32603, a refusal of
    the params, and the subscription was forgotten for good. Whose fault it is cannot be
    told: a bad answer (``bad_error``), the subscription kept and made on the next
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
            kind = "bad_subscription_id" if "result" in error else "bad_error"
            assert mgr.bad_frames[kind] == 1
    asyncio.run(go())
