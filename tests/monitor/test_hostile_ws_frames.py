"""What a hostile or broken WebSocket node sends, and what the manager makes of it: each
defect found as a regression test against a small ``websockets`` server on loopback. No
fixed sleeps as synchronisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.server import serve

from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.history import History
from monitor.websocket_manager import MAX_EARLY_BYTES, MAX_FRAME_VALUES, WebSocketManager

TIMEOUT = 30.0
MIB = 1 << 20


def notification(sid: str, result: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                       "params": {"subscription": sid, "result": result}})


class EarlyBurstNode:
    """Answers ``eth_subscribe`` with ``0x<n>``; on its first connection, sends ``burst``
    notifications of ``size`` bytes each for that id BEFORE the answer (a node whose
    notifications overtake the answer, or one that means harm)."""

    def __init__(self, burst: int, size: int) -> None:
        self.burst, self.size = burst, size
        self.connections = 0
        self.sent_early = 0
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _handler(self, ws: Any) -> None:
        self.connections += 1
        first = self.connections == 1
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                sid = f"0x{req['id']:x}"
                if first and req.get("method") == "eth_subscribe":
                    blob = {"data": "0x" + "ab" * (self.size // 2)}
                    for _ in range(self.burst):
                        await ws.send(notification(sid, blob))
                        self.sent_early += 1
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": sid}))

    async def __aenter__(self) -> EarlyBurstNode:
        self.server = await serve(self._handler, "127.0.0.1", 0, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_notifications_held_before_the_subscribe_answer_are_bounded_in_bytes(
        tmp_path: Path) -> None:
    """Notifications of an id not known yet are held while an ``eth_subscribe`` is
    unanswered (a proxy may send a subscription's first ones before the answer). The hold
    was bounded by count only (10,000), not by size: a node that sends frames of up to
    ``max_message_bytes`` (16 MiB) before its answer had this side hold up to 160 GB.
    Past :data:`MAX_EARLY_BYTES` the connection is now dropped (``early_overflow``; a
    notification dropped in place could be a trade no sync asks for again) and re-made."""
    burst = MAX_EARLY_BYTES // MIB + 8  # 8 MiB more than the bound, in 1-MiB frames

    async def go() -> None:
        async with EarlyBurstNode(burst=burst, size=MIB) as node:
            history = History(tmp_path / "history.jsonl")
            got: list[Any] = []
            mgr = WebSocketManager(node.url, settings=WsSettings(
                speed=1.0, staleness_blocks=0, seed=1, backoff_initial=0.05,
                min_timeout=5.0, max_message_bytes=2 * MIB), clock=SystemClock(),
                history=history)
            await mgr.subscribe(["logs", {}], got.append)
            await mgr.start()
            try:
                assert await mgr.wait_until(lambda: mgr.state is ConnState.CONNECTED
                                            and node.connections >= 2, TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            causes = [t.cause for t in mgr.transitions]
            assert "early_overflow" in causes, causes
            assert len(got) * MIB <= MAX_EARLY_BYTES
            assert mgr.metrics.errors["early_overflow"] == 1
    asyncio.run(go())


class SameIdNode:
    """Answers every ``eth_subscribe`` of its first connection with one id (``0xd0`` for
    all), then sends notifications of that id (a log; after the heads answer a log and a
    head); later connections get an id each."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _handler(self, ws: Any) -> None:
        self.connections += 1
        first = self.connections == 1
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                sid = "0xd0" if first else f"0x{self.connections:x}{req['id']:02x}"
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": sid}))
                if req["params"][0] == "logs":
                    await ws.send(notification(sid, {"logIndex": "0x0"}))
                else:  # a head; on the first, a log of the logs subscription before it
                    if first:
                        await ws.send(notification(sid, {"logIndex": "0x1"}))
                    await ws.send(notification(sid, {"number": "0x1"}))

    async def __aenter__(self) -> SameIdNode:
        self.server = await serve(self._handler, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_a_subscription_id_answered_twice_on_one_connection_drops_it(
        tmp_path: Path) -> None:
    """A node (a broken proxy) answered the ``newHeads`` subscribe with the id it gave
    the ``logs`` one: the id was mapped anew, and every log notification went to the
    heads callback (refused there as a bad head), none to the logs one, while the
    connection looked healthy. The connection is now dropped
    (``duplicate_subscription_id``) and re-made."""

    async def go() -> None:
        async with SameIdNode() as node:
            history = History(tmp_path / "history.jsonl")
            logs: list[Any] = []
            heads: list[Any] = []
            mgr = WebSocketManager(node.url, settings=WsSettings(
                speed=1.0, staleness_blocks=0, seed=1, backoff_initial=0.05,
                min_timeout=5.0), clock=SystemClock(), history=history)
            await mgr.subscribe(["logs", {}], logs.append)
            await mgr.subscribe(["newHeads"], heads.append)
            await mgr.start()
            try:
                assert await mgr.wait_until(lambda: bool(logs) and bool(heads), TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            assert all("logIndex" in r for r in logs), logs
            assert all("number" in r for r in heads), heads
            causes = [t.cause for t in mgr.transitions]
            assert "duplicate_subscription_id" in causes, causes
            assert node.connections >= 2
    asyncio.run(go())


class PushNode:
    """Answers ``eth_subscribe`` with ``0x<id>``, then sends ``frames`` once."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _handler(self, ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                sid = f"0x{req['id']:x}"
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": sid}))
                for frame in self.frames:
                    await ws.send(frame.replace("SID", sid))

    async def __aenter__(self) -> PushNode:
        self.server = await serve(self._handler, "127.0.0.1", 0, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_a_frame_of_millions_of_tiny_values_is_refused_before_it_is_parsed(
        tmp_path: Path) -> None:
    """A frame under ``max_message_bytes`` made of ``[],`` (three bytes a value): 16 MiB
    of it is 5 M empty lists, ~360 MB and 0.8-3 s of the event loop to parse, every
    frame, before anything looked at it (then refused as a batch of too many items).
    Past :data:`MAX_FRAME_VALUES` values it is now refused unparsed (``too_many_values``),
    and the notification after it still arrives."""
    flood = "[" + "[]," * (MAX_FRAME_VALUES + 10) + "[]]"
    after = notification("SID", {"n": 1})

    async def go() -> None:
        async with PushNode([flood, after]) as node:
            history = History(tmp_path / "history.jsonl")
            got: list[Any] = []
            mgr = WebSocketManager(node.url, settings=WsSettings(
                speed=1.0, staleness_blocks=0, seed=1, min_timeout=5.0,
                max_message_bytes=4 * MIB), clock=SystemClock(), history=history)
            await mgr.subscribe(["logs", {}], got.append)
            await mgr.start()
            try:
                assert await mgr.wait_until(lambda: bool(got), TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            assert got == [{"n": 1}]
            assert dict(mgr.bad_frames) == {"too_many_values": 1}
    asyncio.run(go())
