"""The node's HTTP keep-alive, as geth's: an idle connection is kept ``http_idle_timeout_s``
between two requests (geth's IdleTimeout, 120 s), while a new connection still gets only
``http_read_timeout_s`` for its first request's headers (geth's ReadHeaderTimeout, 30 s).
The idle timeout was the read timeout: a client asking every 30-120 s opened a new TCP
connection for almost every request. Real sockets on loopback; the idle waits are the
behaviour under test (short timeouts), generous bounds on the closes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import pytest

from simulator.server import Simulator
from simulator.settings import NodeSettings, SettingsError, SimSettings
from tests.simulator.node_fixtures import make_recording

TIMEOUT = 20


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 60))


def _post(body: bytes) -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One eth_chainId over a kept connection; the answer's bytes (b"" once closed)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).encode()
    writer.write(_post(body))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head + await asyncio.wait_for(reader.readexactly(length), TIMEOUT)


async def _closed_within(reader: asyncio.StreamReader, limit_s: float) -> float:
    """Seconds until the node closes the connection (fails past ``limit_s``)."""
    t0 = time.monotonic()
    assert await asyncio.wait_for(reader.read(), limit_s) == b""
    return time.monotonic() - t0


def test_an_idle_connection_is_kept_past_the_read_timeout_until_the_idle_timeout() -> None:
    """A connection idle longer than the read timeout (1 s) but shorter than the idle
    timeout (4 s) serves the next request on the same socket; idle past the idle timeout
    it is closed by the node."""
    async def main() -> None:
        node = NodeSettings(http_read_timeout_s=1.0, http_idle_timeout_s=4.0)
        async with Simulator(make_recording(2), settings=SimSettings(node=node)) as sim:
            reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
            try:
                assert b'"result":"0x89"' in await _ask(reader, writer)
                await asyncio.sleep(2.0)  # idle: past the read timeout, within the idle one
                assert not reader.at_eof()
                assert b'"result":"0x89"' in await _ask(reader, writer)
                took = await _closed_within(reader, 15.0)
                assert 2.0 < took < 10.0
            finally:
                writer.close()
    run(main)


def test_a_new_connection_still_gets_only_the_read_timeout_for_its_first_request() -> None:
    """Nothing sent, or headers that never end: closed after the read timeout (1 s), not
    the idle timeout (60 s)."""
    async def main() -> None:
        node = NodeSettings(http_read_timeout_s=1.0, http_idle_timeout_s=60.0)
        async with Simulator(make_recording(2), settings=SimSettings(node=node)) as sim:
            for head in (b"", b"POST / HTTP/1.1\r\nHost: x\r\n"):
                reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
                try:
                    writer.write(head)
                    assert await _closed_within(reader, 10.0) < 6.0
                finally:
                    writer.close()
    run(main)


def test_the_idle_timeout_is_geths_by_default_and_checked() -> None:
    assert NodeSettings().http_idle_timeout_s == 120.0
    assert NodeSettings().http_read_timeout_s == 30.0
    for bad in (0, -1.0, True, "30", 86_401.0):
        with pytest.raises(SettingsError, match="http_idle_timeout_s"):
            NodeSettings(http_idle_timeout_s=bad)  # type: ignore[arg-type]
