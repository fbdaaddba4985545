"""A big message of many small values costs the node's event loop little: the count of
values is bounded before the depth check and the decoder read it (``MAX_JSON_VALUES``).

A 32 MiB WebSocket message of ``{"a":1},`` (just under geth's read limit) held the loop
~7 s: polyvocab's depth check ~3.5 s, then the decoder, then the decoder again for geth's
syntax error text. Meanwhile no other connection was answered. A 5 MiB HTTP body of the
same (geth's HTTP body limit) ~1 s.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from simulator.jsonrpc import MAX_JSON_VALUES, JsonInputError, parse_json, read_ws_message
from simulator.server import Simulator
from simulator.settings import GETH_WS_READ_LIMIT
from tests.simulator.node_fixtures import make_recording, serving_in_thread

TIMEOUT = 30.0
#: the longest another client may wait for an answer meanwhile (it waited seconds)
MAX_ROUND_TRIP_S = 1.0
CALL = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}


def _objects(size: int, unit: bytes = b'{"a":1},') -> bytes:
    """``[{"a":1},{"a":1},...x``: ``size`` bytes, not JSON at its end."""
    return b"[" + unit * ((size - 2) // len(unit)) + b"x"


async def _measured(sim: Simulator,
                    hostile: Callable[[dict[str, str]], Awaitable[None]]) -> float:
    """``hostile(url)`` (the node served on a thread of its own) while another connection
    calls eth_blockNumber one call after another: returns the longest round trip."""
    with serving_in_thread(sim) as loop:
        published = asyncio.run_coroutine_threadsafe(sim.wait_published(2), loop)
        await asyncio.wrap_future(published)
        async with aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as other:
            done = asyncio.Event()
            meanwhile = asyncio.create_task(_round_trips(other, done))
            await asyncio.sleep(0)
            try:
                await hostile(sim.urls)
            finally:
                done.set()
            return await asyncio.wait_for(meanwhile, TIMEOUT)


async def _round_trips(ws: aiohttp.ClientWebSocketResponse, done: asyncio.Event) -> float:
    """eth_blockNumber on ``ws`` one after another until ``done``: the longest round trip."""
    longest = 0.0
    while not done.is_set():
        start = time.perf_counter()
        await ws.send_str(json.dumps(CALL))
        msg = await ws.receive(timeout=TIMEOUT)
        longest = max(longest, time.perf_counter() - start)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        assert "result" in json.loads(msg.data)
    return longest


def test_a_32_mib_message_of_small_values_leaves_other_connections_answered() -> None:
    message = _objects(GETH_WS_READ_LIMIT - 64)

    async def hostile(urls: dict[str, str]) -> None:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(urls["ws"], max_msg_size=0) as ws:
            await ws.send_bytes(message)
            msg = await ws.receive(timeout=TIMEOUT)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            reply: Any = json.loads(msg.data)
            assert reply["error"]["code"] == -32700, reply

    sim = Simulator(make_recording(2), speed=1e6)
    longest = asyncio.run(asyncio.wait_for(_measured(sim, hostile), 120))
    assert longest < MAX_ROUND_TRIP_S, f"another connection waited {longest:.2f} s"


def test_a_32_mib_message_with_an_invalid_utf8_byte_is_bounded_too() -> None:
    """The count comes before the UTF-8 decoding: a message that does not decode was read
    again by a reader with no bound (~3.4 s for this one)."""
    message = b'[{"\xff":1},' + _objects(GETH_WS_READ_LIMIT - 64)[1:]

    async def hostile(urls: dict[str, str]) -> None:
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(urls["ws"], max_msg_size=0) as ws:
            await ws.send_bytes(message)
            msg = await ws.receive(timeout=TIMEOUT)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            reply: Any = json.loads(msg.data)
            assert reply["error"]["code"] == -32700, reply

    sim = Simulator(make_recording(2), speed=1e6)
    longest = asyncio.run(asyncio.wait_for(_measured(sim, hostile), 120))
    assert longest < MAX_ROUND_TRIP_S, f"another connection waited {longest:.2f} s"


def test_calls_with_an_invalid_utf8_byte_are_read_at_the_decoders_speed() -> None:
    """A call with an invalid UTF-8 byte in a string is served (U+FFFD, as geth): it failed
    the UTF-8 decoding and was read again by the Go-style scanner in Python (~20 ms this
    one, ~27x the C decoder's); now it is decoded once, by the C decoder, with the bounds
    of any other call."""
    pad = "\\n" * 120_000  # escapes: one step each of the Python scanner
    message = f'{{"jsonrpc":"2.0","id":"\xff","method":"eth_chainId","pad":"{pad}"}}'.encode(
        "latin-1")
    read = read_ws_message(message, max_depth=64)
    assert read.parsed and read.payload["id"] == "\ufffd"
    start = time.process_time()
    for _ in range(30):
        read_ws_message(message, max_depth=64)
    assert time.process_time() - start < 0.3

    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            await ws.send_bytes(message)
            reply: Any = json.loads(await ws.receive_str(timeout=TIMEOUT))
            assert reply == {"jsonrpc": "2.0", "id": "\ufffd", "result": "0x89"}

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_5_mib_http_body_of_small_values_leaves_other_connections_answered() -> None:
    body = _objects(5 * 1024 * 1024 - 64, b'{"":[]},')  # the costliest of a few tried

    async def hostile(urls: dict[str, str]) -> None:
        async with aiohttp.ClientSession() as http, http.post(
                urls["http"], data=body, headers={"Content-Type": "application/json"}) as resp:
            reply: Any = json.loads(await resp.read())
            assert reply["error"]["code"] == -32700, reply

    sim = Simulator(make_recording(2), speed=1e6)
    longest = asyncio.run(asyncio.wait_for(_measured(sim, hostile), 120))
    assert longest < MAX_ROUND_TRIP_S, f"another connection waited {longest:.2f} s"


def test_more_values_than_the_bound_are_refused_before_decoding() -> None:
    unit = '{"a":1},'
    over = "[" + unit * (MAX_JSON_VALUES // 2) + '{"a":1}]'
    start = time.perf_counter()
    try:
        parse_json(over, max_depth=64)
    except JsonInputError as exc:
        assert str(exc) == f"more than {MAX_JSON_VALUES} values"
    else:
        raise AssertionError("a body past the values bound was decoded")
    assert time.perf_counter() - start < 0.5
    # at the bound it is decoded (commas + openings + 1 values at most)
    within = "[" + "1," * (MAX_JSON_VALUES - 3) + "1]"
    assert len(parse_json(within, max_depth=64)) == MAX_JSON_VALUES - 2
