"""The node against a client looping on malformed HTTP: its log is not the client's to
fill (polyvocab.http_log.BadRequestLog)."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import pytest

from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording

TIMEOUT = 30.0
BAD = b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\nContent-Length: 0\r\n\r\n"
_BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).encode()
CALL = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close"
        b"\r\nContent-Length: %d\r\n\r\n" % len(_BODY) + _BODY)


async def _ask(url: str, raw: bytes) -> bytes:
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


def test_a_flood_of_malformed_requests_is_a_few_lines_and_a_count(
        caplog: pytest.LogCaptureFixture) -> None:
    """30 requests aiohttp cannot parse (a header line past 8190 bytes) were 30 INFO lines,
    one per request, however many came: a scanner filled the node's log. The first 5 of a
    minute are logged, the 25 others are one count (said at the stop here); every one is
    answered 400 and the node goes on serving."""
    bad: list[int | None] = []

    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim:
            for _ in range(30):
                assert (await _ask(sim.urls["http"], BAD)).split()[1] == b"400"
            answer = await _ask(sim.urls["http"], CALL)
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["result"] == "0x89"
            bad.append(getattr(getattr(sim, "http_log", None), "bad", None))

    with caplog.at_level(logging.INFO, logger="aiohttp.server"):
        asyncio.run(asyncio.wait_for(main(), 60))
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == 6, lines
    assert all("LineTooLong" in m and len(m) < 300 for m in lines[:5])  # a bounded quote
    assert lines[5] == "25 more malformed requests in the last 60 s (not logged)"
    assert all(r.exc_info is None for r in caplog.records)
    assert bad == [30]
