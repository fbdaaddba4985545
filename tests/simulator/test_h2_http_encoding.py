"""A request body is read as it came, whatever its Content-Encoding, as geth's HTTP server
(Go's net/http) reads it: gzip is not undone (the bytes are no JSON: -32700 "parse
error"), and br or zstd is no 400 of aiohttp's ("Please install `Brotli`", logged with a
traceback): the body is served if it is JSON. A request aiohttp cannot parse at all is one
line of the log, not a traceback."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from urllib.parse import urlsplit

import pytest

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


def test_a_request_aiohttp_cannot_parse_is_one_info_line_not_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """A header line past aiohttp's 8190 bytes (a 400 from aiohttp's parser) was logged as
    an ERROR with the parser's traceback, each time: a client sending them filled the
    node's log. It is one INFO line; the node goes on serving."""
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim:
            where = urlsplit(sim.urls["http"])
            for _ in range(3):
                reader, writer = await asyncio.open_connection(where.hostname, where.port)
                writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000
                             + b"\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                head = await asyncio.wait_for(reader.read(), TIMEOUT)
                writer.close()
                assert head.split()[1] == b"400"
            status, payload = await post(sim.urls["http"], CALL, "identity")
            assert status == 200 and json.loads(payload)["result"] == "0x89"

    with caplog.at_level(logging.INFO, logger="aiohttp.server"):
        asyncio.run(asyncio.wait_for(main(), 60))
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert [r.levelno for r in records] == [logging.INFO] * 3, records
    assert all(r.exc_info is None and "LineTooLong" in r.getMessage() for r in records)


def test_other_errors_of_aiohttp_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise ValueError("a defect")
    except ValueError as exc:
        with caplog.at_level(logging.INFO, logger="aiohttp.server"):
            Simulator(make_recording(2)).http_log.exception(
                "Error handling request from %s", "127.0.0.1", exc_info=exc)
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.getMessage() == "Error handling request from 127.0.0.1"
