"""The node's HTTP keep-alive (2e0d364) at its edges, over real loopback sockets: a
later request's headers sent a byte at a time are bounded by the idle timeout (not held
open for as long as bytes keep coming), pipelined requests on one connection are all
answered in order, and an aiohttp client session reuses its one connection across a
wait longer than the read timeout."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from simulator.server import Simulator
from simulator.settings import NodeSettings, SimSettings
from tests.simulator.node_fixtures import make_recording

TIMEOUT = 20


def _post(body: bytes) -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def _call(i: int) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}).encode()


async def _answer(reader: asyncio.StreamReader) -> dict[str, object]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    body: dict[str, object] = json.loads(await asyncio.wait_for(reader.readexactly(length),
                                                                TIMEOUT))
    return body


def test_a_later_request_sent_a_byte_at_a_time_is_closed_by_the_idle_timeout() -> None:
    async def main() -> None:
        node = NodeSettings(http_read_timeout_s=1.0, http_idle_timeout_s=3.0)
        async with Simulator(make_recording(2), settings=SimSettings(node=node)) as sim:
            reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
            try:
                writer.write(_post(_call(1)))
                assert (await _answer(reader))["result"] == "0x89"
                t0 = time.monotonic()
                closed = asyncio.ensure_future(reader.read())
                for byte in b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
                    if closed.done() or time.monotonic() - t0 > 30:
                        break
                    try:
                        writer.write(bytes([byte]))
                        await writer.drain()
                    except ConnectionError:
                        break
                    await asyncio.wait([closed], timeout=0.2)
                assert await asyncio.wait_for(closed, TIMEOUT) == b""
                assert time.monotonic() - t0 < 20  # bounded: the idle timeout (3 s)
            finally:
                writer.close()
    asyncio.run(asyncio.wait_for(main(), 90))


def test_pipelined_requests_are_answered_in_order() -> None:
    async def main() -> None:
        node = NodeSettings(http_read_timeout_s=1.0, http_idle_timeout_s=3.0)
        async with Simulator(make_recording(2), settings=SimSettings(node=node)) as sim:
            reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
            try:
                writer.write(b"".join(_post(_call(i)) for i in range(1, 6)))
                ids = [(await _answer(reader))["id"] for _ in range(5)]
                assert ids == [1, 2, 3, 4, 5]
            finally:
                writer.close()
    asyncio.run(asyncio.wait_for(main(), 90))


def test_an_aiohttp_session_keeps_one_connection_past_the_read_timeout() -> None:
    async def main() -> None:
        node = NodeSettings(http_read_timeout_s=0.5, http_idle_timeout_s=10.0)
        async with Simulator(make_recording(2), settings=SimSettings(node=node)) as sim:
            made: list[int] = []

            async def trace(_s: object, _ctx: object,
                            params: aiohttp.TraceConnectionCreateEndParams) -> None:
                made.append(1)

            tc = aiohttp.TraceConfig()
            tc.on_connection_create_end.append(trace)
            async with aiohttp.ClientSession(trace_configs=[tc]) as session:
                for i in range(3):
                    async with session.post(f"http://127.0.0.1:{sim.port}/",
                                            data=_call(i), headers={
                                                "Content-Type": "application/json"},
                                            timeout=aiohttp.ClientTimeout(
                                                total=TIMEOUT)) as resp:
                        assert (await resp.json())["result"] == "0x89"
                    await asyncio.sleep(1.5)  # past the read timeout, within the idle one
            assert len(made) == 1  # one TCP connection for all three
    asyncio.run(asyncio.wait_for(main(), 90))
