"""A ``newHeads`` header whose ``number`` is a JSON number (not a hex string): the owner
reads it as a head (monitor.bounds.quantity takes an integer), so the manager's staleness
watchdog must count it as one too. It did not: the feed that delivered every head was
called stale each ``staleness_blocks * block_interval`` and re-made (a disconnected and a
recovered alert, a sync, each time) for as long as it ran."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from monitor.clock import SystemClock
from monitor.connection import WsSettings
from monitor.history import History
from monitor.websocket_manager import WebSocketManager


def _header(n: Any) -> dict[str, Any]:
    return {"number": n, "hash": "0x" + f"{n:064x}", "parentHash": "0x" + f"{n - 1:064x}"}


def test_heads_with_a_json_number_keep_the_feed_alive(tmp_path: Path) -> None:
    subscribed = asyncio.Event()
    sockets: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        sockets.append(ws)
        with contextlib.suppress(Exception):
            async for raw in ws:
                req = json.loads(raw)
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0x1"}))
                subscribed.set()

    async def main() -> tuple[list[str], int, list[Any]]:
        got: list[Any] = []
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            history = History(tmp_path / "h.jsonl", clock=SystemClock())
            # stale after 3 blocks of 0.2 s without a head
            mgr = WebSocketManager(f"ws://127.0.0.1:{port}/", settings=WsSettings(
                staleness_blocks=3, block_interval=0.2, heartbeat_interval=30.0,
                heartbeat_timeout=30.0, backoff_initial=0.05, backoff_max=0.2),
                clock=SystemClock(), history=history)
            await mgr.subscribe(["newHeads"], got.append)
            await mgr.start()
            try:
                await asyncio.wait_for(subscribed.wait(), 15.0)
                for n in range(100, 120):  # 2 s of heads, one every 0.1 s
                    with contextlib.suppress(ConnectionClosed):  # re-made: the next one
                        await sockets[-1].send(json.dumps({
                            "jsonrpc": "2.0", "method": "eth_subscription",
                            "params": {"subscription": "0x1", "result": _header(n)}}))
                    await asyncio.sleep(0.1)  # pacing the heads, not synchronisation
            finally:
                await mgr.stop()
                history.close()
            return [t.cause for t in mgr.transitions], mgr.metrics.heads, got
    causes, heads, got = asyncio.run(main())
    assert "stale" not in causes, causes
    assert heads == 20 and len(got) == 20 and got[0]["number"] == 100
