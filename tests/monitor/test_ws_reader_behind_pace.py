"""How often the WebSocket manager looks again while its reader is behind (heads look
stale, frames wait unread): against a node on loopback in the same event loop, and a
head callback that stalls (the fault: a slow consumer, not a wait for something)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.history import History
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 15.0
HEADS = 6
STALL_S = 0.6
#: WsSettings below: 2 s blocks at speed 100 = 20 ms; stale after 10 blocks = 0.2 s
BLOCK_S = 0.02
STALE_S = 0.2


class HeadsNode:
    """Answers ``eth_subscribe`` with ``0xa``, then sends ``HEADS`` heads at once."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0xa"}))
                for n in range(1, HEADS + 1):
                    await ws.send(json.dumps({
                        "jsonrpc": "2.0", "method": "eth_subscription",
                        "params": {"subscription": "0xa", "result": {
                            "number": hex(n), "hash": f"0x{n:064x}",
                            "parentHash": f"0x{n - 1:064x}"}}}))

    async def __aenter__(self) -> HeadsNode:
        self.server = await serve(self._handler, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


def test_a_reader_behind_is_looked_at_once_a_block_not_every_millisecond(
        tmp_path: Path) -> None:
    """Heads stale and frames unread: the manager does not reconnect and means to look
    again a block later. It waited for the watchdog's deadline too, which had passed: the
    loop ran every millisecond (a FIONREAD each time; ~570 looks in 0.7 s, taking the CPU
    a reader that is behind lacks) until the reader caught up."""
    heads: list[Any] = []

    async def on_head(head: Any) -> None:
        heads.append(head)
        if len(heads) == 1:
            await asyncio.sleep(STALL_S)  # the slow consumer; the other heads wait unread

    async def go() -> None:
        async with HeadsNode() as node:
            history = History(tmp_path / "history.jsonl")
            mgr = WebSocketManager(node.url, settings=WsSettings(
                speed=100.0, staleness_blocks=10, block_interval=2.0,
                heartbeat_interval=3000.0, seed=1, min_timeout=1.0), clock=SystemClock(),
                history=history)
            await mgr.subscribe(["newHeads"], on_head)
            await mgr.start()
            try:
                assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
                assert await mgr.wait_until(lambda: len(heads) == HEADS, TIMEOUT)
            finally:
                await mgr.stop()
                history.close()
            assert node.connections == 1 and mgr.metrics.connects == 1
            assert mgr.reader_behind >= 1
            # one look a block while behind (~20 here), with room for a loaded machine
            assert mgr.reader_behind <= 3 * (STALL_S - STALE_S) / BLOCK_S, mgr.reader_behind
    asyncio.run(go())
