"""The WebSocket manager's memory of retired subscription ids and its byte count of
notifications held before their ``eth_subscribe`` answer, against a node on loopback
whose every answer the test writes by hand (no fixed sleeps as synchronisation)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

import monitor.websocket_manager as wm
from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.history import History
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 15.0


def notification(sid: str, result: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                       "params": {"subscription": sid, "result": result}})


def answer(rid: int, result: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "result": result})


class HandNode:
    """Queues every request with its connection; the test answers (or not) by hand."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[tuple[ServerConnection, dict[str, Any]]] = \
            asyncio.Queue()
        self.connections = 0
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        with contextlib.suppress(Exception):
            async for raw in ws:
                await self.requests.put((ws, json.loads(raw)))

    async def request(self, method: str) -> tuple[ServerConnection, dict[str, Any]]:
        ws, req = await asyncio.wait_for(self.requests.get(), TIMEOUT)
        assert req["method"] == method, req
        return ws, req

    async def subscribed(self, sid: str) -> ServerConnection:
        """Answer the next request, an ``eth_subscribe``, with ``sid``."""
        ws, req = await self.request("eth_subscribe")
        await ws.send(answer(req["id"], sid))
        return ws

    async def unsubscribed(self) -> None:
        ws, req = await self.request("eth_unsubscribe")
        await ws.send(answer(req["id"], True))

    async def __aenter__(self) -> HandNode:
        self.server = await serve(self._handler, "127.0.0.1", 0, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def run(tmp_path: Path, body: Callable[[HandNode, WebSocketManager], Awaitable[None]]
        ) -> None:
    async def go() -> None:
        async with HandNode() as node:
            history = History(tmp_path / "history.jsonl")
            mgr = WebSocketManager(node.url, settings=WsSettings(
                speed=1.0, staleness_blocks=0, seed=1, backoff_initial=0.05,
                min_timeout=5.0), clock=SystemClock(), history=history)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
                await asyncio.wait_for(body(node, mgr), 2 * TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
    asyncio.run(go())


def retired_ids(mgr: WebSocketManager) -> set[str]:
    """The retired subscription ids the manager remembers: its own set (before) and its
    connection's (since they are the connection's)."""
    ids = set(getattr(mgr, "_retired", ()))
    link = getattr(mgr, "_link", None)
    return ids | set(getattr(link, "retired", ()) if link is not None else ())


def test_retired_subscription_ids_go_with_their_connection(tmp_path: Path) -> None:
    """Every unsubscribe added its node id to a set of the manager that nothing ever
    cleared: it grew for the life of the process (~260 reconnects a day, each one the
    ids of a connection that no longer exists). A node's subscription ids are of one
    connection; they are now forgotten with it."""
    async def body(node: HandNode, mgr: WebSocketManager) -> None:
        task = asyncio.create_task(mgr.subscribe(["newHeads"], lambda r: None))
        await node.subscribed("0xa1")
        stable = await task
        unsub = asyncio.create_task(mgr.unsubscribe(stable))
        await node.unsubscribed()
        await unsub
        assert retired_ids(mgr) == {"0xa1"}
        mgr.force_reconnect("test: a new connection")
        assert await mgr.wait_until(lambda: node.connections == 2
                                    and mgr.state is ConnState.CONNECTED, TIMEOUT)
        assert retired_ids(mgr) == set()

    run(tmp_path, body)


def test_retired_ids_of_one_long_connection_are_bounded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On one connection that lives for days the retired ids are bounded too (the
    oldest forgotten first); the latest one's late notification is still ignored."""
    monkeypatch.setattr(wm, "MAX_RETIRED_IDS", 4, raising=False)

    async def body(node: HandNode, mgr: WebSocketManager) -> None:
        ws: ServerConnection | None = None
        for n in range(10):
            task = asyncio.create_task(mgr.subscribe(["logs", {}], lambda r: None))
            ws = await node.subscribed(f"0x{n + 1:x}")
            unsub = asyncio.create_task(mgr.unsubscribe(await task))
            await node.unsubscribed()
            await unsub
        assert retired_ids(mgr) == {"0x7", "0x8", "0x9", "0xa"}
        assert ws is not None
        await ws.send(notification("0xa", {"logIndex": "0x0"}))
        assert await mgr.wait_until(lambda: mgr.metrics.errors["late_notification"] == 1,
                                    TIMEOUT)
        assert mgr.bad_frames["unknown_subscription"] == 0

    run(tmp_path, body)


def test_a_retired_ids_late_notification_is_ignored_while_a_subscribe_is_unanswered(
        tmp_path: Path) -> None:
    """What the retired ids are for, kept: a notification of an id unsubscribed (or
    answered after its unsubscribe) that comes while another ``eth_subscribe`` waits for
    its answer is ignored: neither held as a new subscription's early notification nor
    counted as unknown."""
    got: list[Any] = []

    async def body(node: HandNode, mgr: WebSocketManager) -> None:
        task = asyncio.create_task(mgr.subscribe(["logs", {}], lambda r: None))
        await node.subscribed("0xa")
        unsub = asyncio.create_task(mgr.unsubscribe(await task))
        await node.unsubscribed()
        await unsub
        # a subscribe unsubscribed before its answer came: answered afterwards
        late = asyncio.create_task(mgr.subscribe(["logs", {"late": 1}], lambda r: None))
        ws, req = await node.request("eth_subscribe")
        (stable,) = mgr.subscriptions
        await mgr.unsubscribe(stable)
        await ws.send(answer(req["id"], "0xc"))
        await late
        # another subscribe, unanswered while both retired ids speak
        task = asyncio.create_task(mgr.subscribe(["logs", {"b": 1}], got.append))
        ws, req = await node.request("eth_subscribe")
        await ws.send(notification("0xa", {"logIndex": "0x1"}))
        await ws.send(notification("0xc", {"logIndex": "0x2"}))
        await ws.send(answer(req["id"], "0xb"))
        await ws.send(notification("0xb", {"logIndex": "0x3"}))
        await task
        assert await mgr.wait_until(lambda: len(got) == 1, TIMEOUT)
        assert got == [{"logIndex": "0x3"}]
        assert mgr.metrics.errors["late_notification"] == 2
        assert mgr.bad_frames["unknown_subscription"] == 0

    run(tmp_path, body)


def test_bytes_held_early_are_counted_down_by_what_each_answer_takes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two subscribes unanswered, notifications of both held: when the first answer took
    its own, their bytes stayed counted as long as any other was held (the count was
    reset only when nothing was), and the second subscription's first notifications
    overflowed a bound they were well under: the connection was dropped
    (``early_overflow``) and re-made for nothing. The count is now exact."""
    monkeypatch.setattr(wm, "MAX_EARLY_BYTES", 100_000)
    blob = {"data": "0x" + "ab" * 15_000}  # ~30 KB a frame: three of them fit, four do not
    a_got: list[Any] = []
    b_got: list[Any] = []

    async def body(node: HandNode, mgr: WebSocketManager) -> None:
        ta = asyncio.create_task(mgr.subscribe(["logs", {"a": 1}], a_got.append))
        tb = asyncio.create_task(mgr.subscribe(["logs", {"b": 1}], b_got.append))
        ws, ra = await node.request("eth_subscribe")
        _, rb = await node.request("eth_subscribe")
        for _ in range(3):
            await ws.send(notification("0xa", blob))
        await ws.send(notification("0xb", {"logIndex": "0x0"}))
        await ws.send(answer(ra["id"], "0xa"))  # takes 0xa's three: ~90 KB less held
        for _ in range(3):
            await ws.send(notification("0xb", blob))
        await ws.send(answer(rb["id"], "0xb"))
        await ta
        await tb
        assert await mgr.wait_until(lambda: len(b_got) == 4
                                    or mgr.metrics.errors["early_overflow"] > 0, TIMEOUT)
        assert mgr.metrics.errors["early_overflow"] == 0
        assert len(a_got) == 3 and len(b_got) == 4
        link = getattr(mgr, "_link", None)
        assert link is not None and link.early_count == 0 and link.early_bytes == 0

    run(tmp_path, body)
