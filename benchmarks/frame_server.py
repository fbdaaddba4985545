"""A minimal WebSocket JSON-RPC node for throughput benchmarks: it replays pre-serialised
``logs`` notifications as fast as the socket takes them, so the consumer is what is measured.

The whole notification stream (server-to-client WebSocket frames, unmasked, no compression)
is built once, before any client connects. A client's ``eth_subscribe`` is answered with a
fixed subscription id and then the stream is written to the socket in large chunks; any
other request is answered with ``"0x89"``. Pings get pongs, a close is echoed. Run in its
own process (:func:`serve_in_process`) so it does not share the consumer's core.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import multiprocessing
import struct
from collections.abc import Callable
from typing import Any

__all__ = ["SUB_ID", "frame", "notification_stream", "serve_in_process"]

SUB_ID = "0x9ce59a13059e417087c02d3236a0b1cc"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked server frame (FIN set)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def notification_stream(logs: list[dict[str, Any]]) -> bytes:
    """Every log as one ``eth_subscription`` text frame, concatenated."""
    out = bytearray()
    for lg in logs:
        body = json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                           "params": {"subscription": SUB_ID, "result": lg}},
                          separators=(",", ":")).encode()
        out += frame(body)
    return bytes(out)


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytearray(await reader.readexactly(n))
    for i in range(n):
        data[i] ^= mask[i % 4]
    return b0 & 0x0F, bytes(data)


async def _client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  stream: bytes) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    key = b""
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    try:
        while True:
            opcode, data = await _read_frame(reader)
            if opcode == 0x8:
                writer.write(frame(data[:2], 0x8))
                break
            if opcode == 0x9:
                writer.write(frame(data, 0xA))
                continue
            if opcode not in (0x1, 0x2):  # web3.py sends its requests as binary frames
                continue
            msg = json.loads(data)
            for req in msg if isinstance(msg, list) else [msg]:
                result = SUB_ID if req.get("method") == "eth_subscribe" else "0x89"
                writer.write(frame(json.dumps({"jsonrpc": "2.0", "id": req.get("id"),
                                               "result": result}).encode()))
                if req.get("method") == "eth_subscribe":
                    await writer.drain()
                    for i in range(0, len(stream), 1 << 20):
                        writer.write(stream[i:i + (1 << 20)])
                        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _main(make_logs: Callable[[], list[dict[str, Any]]], conn: Any) -> None:
    stream = notification_stream(make_logs())

    async def run() -> None:
        server = await asyncio.start_server(lambda r, w: _client(r, w, stream),
                                            "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()
    asyncio.run(run())


def serve_in_process(make_logs: Callable[[], list[dict[str, Any]]]
                     ) -> tuple[multiprocessing.Process, str]:
    """Start the node in a forked process; returns (process, ws URL). Terminate it after."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_main, args=(make_logs, child), daemon=True)
    proc.start()
    if not parent.poll(120):
        proc.terminate()
        raise RuntimeError("frame server did not start within 120 s")
    port = parent.recv()
    return proc, f"ws://127.0.0.1:{port}/"
