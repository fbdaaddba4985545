"""The monitor's WebSocket connection reads up to READ_CHUNK_BYTES of the socket at a time,
not asyncio's 256 KiB: the frames of one read are one batch of the live delivery (one
fsync'd commit), so a backlog goes to the store in batches ~4x larger. Plain sockets on
loopback (a real server), and the TLS protocol's buffer (no network)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from asyncio.sslproto import SSLProtocol
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from monitor.websocket_manager import READ_CHUNK_BYTES, _default_factory, widen_reads

TIMEOUT = 10.0
ASYNCIO_READ = 256 * 1024  # asyncio's own read size (selector transport, SSL protocol)
FRAMES = 4000
#: one unmasked text frame of 1,000 bytes, as a node sends it
FRAME = bytes([0x81, 126]) + struct.pack("!H", 1000) + b"x" * 1000


async def _handler(ws: ServerConnection) -> None:
    with contextlib.suppress(Exception):
        await ws.recv()  # "go"
        ws.transport.write(FRAME * FRAMES)  # ~4 MB at once: a backlog for the client
        await ws.wait_closed()


def test_a_backlog_in_the_socket_is_read_in_chunks_past_asyncios_256_kib() -> None:
    async def run() -> list[int]:
        async with serve(_handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            ws: Any = await _default_factory(f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT,
                                             max_size=1 << 20)
            try:
                reads: list[int] = []
                receive = ws.data_received

                def counted(data: bytes) -> None:
                    reads.append(len(data))
                    receive(data)

                ws.data_received = counted
                await ws.send("go")
                async with asyncio.timeout(TIMEOUT):
                    for _ in range(FRAMES):
                        assert len(await ws.recv()) == 1000
                return reads
            finally:
                await ws.close()

    reads = asyncio.run(run())
    # parsing 4,000 frames is slower than loopback: the socket fills while the client
    # works, and a read takes what waits, up to READ_CHUNK_BYTES (256 KiB at most before)
    assert sum(reads) >= len(FRAME) * FRAMES
    assert max(reads) > ASYNCIO_READ
    assert max(reads) <= READ_CHUNK_BYTES


def test_a_tls_connection_reads_its_ciphertext_in_chunks_as_large() -> None:
    async def run() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        proto = SSLProtocol(loop, asyncio.Protocol(), ssl.create_default_context(),
                            loop.create_future(), server_hostname="node.example")
        widen_reads(proto._get_app_transport())
        return proto.max_size, len(proto.get_buffer(-1))

    assert asyncio.run(run()) == (READ_CHUNK_BYTES, READ_CHUNK_BYTES)


def test_widen_reads_leaves_larger_reads_and_other_transports_as_they_are() -> None:
    class Other:
        max_size = 8 << 20

    class NoSize:
        pass

    other, plain = Other(), NoSize()
    widen_reads(other)
    widen_reads(plain)
    assert other.max_size == 8 << 20 and not hasattr(plain, "max_size")
