"""A request body is read as it came, whatever its Content-Encoding, as geth's HTTP server
(Go's net/http) reads it: gzip is not undone (the bytes are no JSON: -32700 "parse
error"), and br or zstd is no 400 of aiohttp's ("Please install `Brotli`", logged with a
traceback): the body is served if it is JSON."""

from __future__ import annotations

import asyncio
import gzip
import json
from urllib.parse import urlsplit

from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording

TIMEOUT = 30.0
CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).encode()


async def post(url: str, body: bytes, encoding: str) -> tuple[int, bytes]:
    """One POST over a raw socket (no client that might encode or decode on its own)."""
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Encoding: " + encoding.encode() + b"\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


def test_a_request_body_is_served_as_it_came_whatever_its_content_encoding() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim:
            url = sim.urls["http"]
            status, payload = await post(url, gzip.compress(CALL), "gzip")
            assert status == 200
            assert json.loads(payload) == {"jsonrpc": "2.0", "id": None,
                                           "error": {"code": -32700, "message": "parse error"}}
            for encoding in ("br", "zstd", "deflate", "identity", "nonsense"):
                status, payload = await post(url, CALL, encoding)
                assert status == 200, (encoding, payload)
                assert json.loads(payload)["result"] == "0x89", encoding

    asyncio.run(asyncio.wait_for(main(), 60))
