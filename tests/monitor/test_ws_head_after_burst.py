"""A block's head and its logs in one burst: the WebSocket manager hands the head over
after the logs parsed with it and the tasks they woke (the live delivery), so a block's
logs do not wait behind the head's handling; heads keep their order, a head held when
the connection closes is still handed over. A raw node on loopback writes each burst's
frames in one write (no fixed sleeps as synchronisation)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import struct
from typing import Any

from monitor.clock import SystemClock
from monitor.connection import WsSettings
from monitor.history import NullHistory
from monitor.websocket_manager import WebSocketManager

TIMEOUT = 15.0
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HEADS, LOGS = "0xaa", "0xbb"


def _frame(payload: dict[str, Any], opcode: int = 0x1) -> bytes:
    body = json.dumps(payload).encode()
    n = len(body)
    head = (struct.pack("!BB", 0x80 | opcode, n) if n < 126
            else struct.pack("!BBH", 0x80 | opcode, 126, n))
    return head + body


def _note(sid: str, result: Any) -> bytes:
    return _frame({"jsonrpc": "2.0", "method": "eth_subscription",
                   "params": {"subscription": sid, "result": result}})


def _header(n: int) -> dict[str, str]:
    return {"number": hex(n), "hash": "0x" + f"{n:02x}" * 32, "parentHash": "0x" + "cd" * 32}


class BurstNode:
    """Answers ``eth_subscribe`` (newHeads -> HEADS, logs -> LOGS); :meth:`burst` writes
    frames to the client in one write."""

    def __init__(self) -> None:
        self.server: Any = None
        self.writer: asyncio.StreamWriter | None = None
        self.subscribed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        b0, b1 = await reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(n)))
        return b0 & 0x0F, data

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.writer = writer
        answered = 0
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                opcode, data = await self._read(reader)
                if opcode == 0x8:  # the close answered, the connection ended
                    writer.write(struct.pack("!BB", 0x88, 0))
                    writer.close()
                    break
                if opcode != 0x1:
                    continue
                req = json.loads(data)
                sid = HEADS if req["params"][0] == "newHeads" else LOGS
                writer.write(_frame({"jsonrpc": "2.0", "id": req["id"], "result": sid}))
                answered += 1
                if answered == 2:
                    self.subscribed.set()

    async def burst(self, *frames: bytes, close: bool = False) -> None:
        assert self.writer is not None
        self.writer.write(b"".join(frames))
        if close:
            self.writer.write(struct.pack("!BBH", 0x88, 2, 1001))
        await self.writer.drain()

    async def __aenter__(self) -> BurstNode:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()
        self.server.close()


async def _owner(node: BurstNode) -> tuple[WebSocketManager, list[Any], asyncio.Queue[Any]]:
    """A manager with a heads and a logs subscription: logs go to a queue that a delivery
    task takes (as the monitor's shard does); the head callback records how many logs
    that task had delivered when the head came."""
    events: list[Any] = []
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    delivered: list[Any] = []

    async def deliver() -> None:
        while True:
            delivered.append(await inbox.get())
            events.append(("log", delivered[-1]))

    def on_head(result: Any) -> None:
        events.append(("head", int(result["number"], 16), len(delivered)))

    mgr = WebSocketManager(node.url, settings=WsSettings(staleness_blocks=0),
                           clock=SystemClock(), history=NullHistory(), conn_id="t")
    events.append(asyncio.get_running_loop().create_task(deliver()))
    await mgr.subscribe(["newHeads"], on_head)
    await mgr.subscribe(["logs", {}], inbox.put_nowait)
    await mgr.start()
    await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
    return mgr, events, inbox


async def _until(mgr: WebSocketManager, check: Any) -> None:
    assert await mgr.wait_until(check, TIMEOUT)


def test_a_blocks_logs_are_delivered_before_its_head_is_handled() -> None:
    async def main() -> None:
        async with BurstNode() as node:
            mgr, events, _ = await _owner(node)
            task = events.pop(0)
            await node.burst(_note(HEADS, _header(7)), _note(LOGS, {"i": 1}),
                             _note(LOGS, {"i": 2}))
            await _until(mgr, lambda: any(e[0] == "head" for e in events))
            # the delivery task had both logs of the burst when the head was handed over
            assert events == [("log", {"i": 1}), ("log", {"i": 2}), ("head", 7, 2)]
            assert mgr.metrics.heads == 1 and mgr.metrics.notifications == 3
            # a head alone (nothing after it) is handed over at once, as before
            await node.burst(_note(HEADS, _header(8)))
            await _until(mgr, lambda: events[-1][:2] == ("head", 8))
            task.cancel()
            await mgr.stop()
    asyncio.run(main())


def test_heads_keep_their_order_and_a_held_head_survives_the_close() -> None:
    async def main() -> None:
        async with BurstNode() as node:
            mgr, events, _ = await _owner(node)
            task = events.pop(0)
            await node.burst(_note(HEADS, _header(1)), _note(HEADS, _header(2)),
                             _note(LOGS, {"i": 1}), _note(HEADS, _header(3)),
                             _note(LOGS, {"i": 2}), close=True)
            await _until(mgr, lambda: sum(e[0] == "head" for e in events) == 3)
            heads = [e[1] for e in events if e[0] == "head"]
            assert heads == [1, 2, 3]
            # every log delivered, in order; none lost to the close
            await _until(mgr, lambda: sum(e[0] == "log" for e in events) == 2)
            assert [e[1] for e in events if e[0] == "log"] == [{"i": 1}, {"i": 2}]
            task.cancel()
            await mgr.stop()
    asyncio.run(main())


def test_a_logs_callback_that_raises_is_counted_and_a_coroutine_one_awaited() -> None:
    """The logs path calls its callback without _dispatch: a plain callback that raises
    is counted (``errors["callback"]``) and the reader goes on; a coroutine function's
    result is awaited, in order."""
    async def main() -> None:
        async with BurstNode() as node:
            got: list[Any] = []
            seen: list[int] = []

            def on_head(result: Any) -> None:
                seen.append(int(result["number"], 16))

            async def on_log(result: Any) -> None:
                if result.get("bad"):
                    raise RuntimeError("callback bug")
                await asyncio.sleep(0)
                got.append(result["i"])

            mgr = WebSocketManager(node.url, settings=WsSettings(staleness_blocks=0),
                                   clock=SystemClock(), history=NullHistory(), conn_id="t")
            await mgr.subscribe(["newHeads"], on_head)
            await mgr.subscribe(["logs", {}], on_log)
            await mgr.start()
            await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
            await node.burst(_note(LOGS, {"i": 1}), _note(LOGS, {"bad": True}),
                             _note(LOGS, {"i": 2}), _note(HEADS, _header(4)))
            await _until(mgr, lambda: seen == [4])
            assert got == [1, 2]
            assert mgr.metrics.errors["callback"] == 1
            assert mgr.metrics.notifications == 4
            await mgr.stop()
    asyncio.run(main())
