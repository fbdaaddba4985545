"""A consumer slower than its feed (a notification callback that awaits a database or a
bot, a busy CPU) reads heads late: they wait unread on the connection, though the node sent
them on time. The staleness watchdog then took the feed for dead and reconnected it -
dropping every frame that waited and alerting the user "feed down: stale" - instead of
letting the reader catch up.

The node runs in its own thread and event loop, as a real provider does."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

from websockets.sync.server import ServerConnection, serve

from monitor.clock import SystemClock
from monitor.connection import ConnState, WsSettings
from monitor.history import History
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 30.0
FLOOD = 10  # log notifications of ~100 kB right after the head the callback stalls on
STALL_AT = 5
HEADS = 80


def _head(i: int) -> dict[str, Any]:
    return {"number": hex(i), "hash": "0x" + f"{i:064x}", "parentHash": "0x" + f"{i - 1:064x}"}


class ThreadedNode:
    """Answers the two eth_subscribe calls, then streams heads every 20 ms; right after
    head STALL_AT it sends FLOOD large logs notifications."""

    def __init__(self) -> None:
        self.server = serve(self._handler, "127.0.0.1", 0)
        self.port = self.server.socket.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ThreadedNode:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self._thread.join(TIMEOUT)

    def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        subs: dict[str, str] = {}
        try:
            for raw in ws:
                req = json.loads(raw)
                sid = hex(0xA0 + len(subs))
                subs[req["params"][0]] = sid
                ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": sid}))
                if len(subs) == 2:
                    break
            big = {"address": "0x" + "11" * 20, "topics": ["0xd0a0"], "data": "0x" + "ab" * 50_000}
            for i in range(1, HEADS + 1):
                ws.send(_note(subs["newHeads"], _head(i)))
                if i == STALL_AT:
                    for _ in range(FLOOD):
                        ws.send(_note(subs["logs"], big))
                time.sleep(0.02)  # the chain's pace (a head every 20 ms), not a wait
            for _ in ws:  # until the client closes
                pass
        except Exception:  # the client went away
            return


def _note(sid: str, result: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                       "params": {"subscription": sid, "result": result}})


def test_a_busy_loop_is_not_taken_for_a_stale_feed(tmp_path: Path) -> None:
    history_path = tmp_path / "history.jsonl"
    heads: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []

    async def on_head(head: dict[str, Any]) -> None:
        heads.append(head)
        if len(heads) == STALL_AT:  # the fault itself: a slow consumer, not a wait for
            await asyncio.sleep(1.0)  # something (the node sends ~50 heads meanwhile)

    async def main(port: int) -> WebSocketManager:
        # staleness: 15 blocks x 2 s at speed 100 = 0.3 s (the stall is three times that;
        # the flood sent with head STALL_AT waits unread at the check);
        # heartbeat far away: only the watchdog can judge the feed here
        mgr = WebSocketManager(
            f"ws://127.0.0.1:{port}/",
            settings=WsSettings(speed=100.0, staleness_blocks=15, block_interval=2.0,
                                heartbeat_interval=3000.0, seed=1, min_timeout=1.0),
            clock=SystemClock(), history=History(history_path))
        await mgr.subscribe(["newHeads"], on_head)
        await mgr.subscribe(["logs", {"topics": [["0xd0a0"]]}], logs.append)
        await mgr.start()
        try:
            assert await mgr.wait_state(ConnState.CONNECTED, TIMEOUT)
            assert await mgr.wait_until(lambda: len(heads) >= HEADS
                                        or mgr.metrics.connects > 1, TIMEOUT)
        finally:
            await mgr.stop()
        return mgr

    with ThreadedNode() as node:
        mgr = asyncio.run(main(node.port))
    rows = [json.loads(line) for line in history_path.read_text().splitlines()]
    causes = [r["cause"] for r in rows if r["event"] == "state" and r["to"] == "RECONNECTING"]
    assert causes == [], causes  # was ["stale"]: a healthy feed torn down
    assert mgr.metrics.connects == 1 and node.connections == 1
    assert len(heads) == HEADS and len(logs) == FLOOD  # nothing the node sent was dropped
    assert mgr.reader_behind >= 1
    behind = [r for r in rows if r["event"] == "reader_behind"]
    assert len(behind) == 1 and behind[0]["unread"] > 0  # once an episode
