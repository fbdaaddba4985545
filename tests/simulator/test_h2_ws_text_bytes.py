"""A WebSocket text message is read as bytes, as geth's reader (gorilla/websocket) reads
it: no UTF-8 check. Invalid bytes inside a JSON string are U+FFFD to Go's decoder, so the
call is answered; outside one they are an invalid character (-32700, then the close).
aiohttp closed the connection with 1007 at the first invalid byte instead."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import WSMsgType

from simulator.jsonrpc import read_ws_message
from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording
from tests.simulator.test_jsonrpc import make_rpc

TIMEOUT = 30.0


async def send_text_bytes(ws: aiohttp.ClientWebSocketResponse, data: bytes) -> None:
    """A text frame of any bytes (aiohttp's client sends only valid text)."""
    writer = ws._writer  # the public API sends only a str, as UTF-8
    await writer.send_frame(data, WSMsgType.TEXT)


def test_a_text_message_with_invalid_utf8_is_read_as_geth_reads_it() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim, \
                aiohttp.ClientSession() as http:
            async with http.ws_connect(sim.urls["ws"]) as ws:
                await send_text_bytes(
                    ws, b'{"jsonrpc":"2.0","id":"a\xffb","method":"eth_chainId","x":"\xfe"}')
                reply = json.loads(await ws.receive_str(timeout=TIMEOUT))
                assert reply == {"jsonrpc": "2.0", "id": "a\ufffdb", "result": "0x89"}
                # the connection stays open
                await ws.send_str('{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}')
                assert json.loads(await ws.receive_str(timeout=TIMEOUT))["id"] == 2
            async with http.ws_connect(sim.urls["ws"]) as ws:
                await send_text_bytes(ws, b'\xff{"jsonrpc":"2.0","id":1}')
                reply = json.loads(await ws.receive_str(timeout=TIMEOUT))
                assert reply["error"] == {"code": -32700, "message": "invalid character "
                                          "'\u00ff' looking for beginning of value"}
                msg = await ws.receive(timeout=TIMEOUT)
                assert msg.type is WSMsgType.CLOSE and msg.data == 1000

    asyncio.run(asyncio.wait_for(main(), 60))


def test_each_byte_that_is_not_utf8_is_one_replacement_character_as_in_go() -> None:
    """utf8.DecodeRune reads a byte that starts no character as one U+FFFD: a cut
    sequence of two bytes is two (Python's "replace" makes one), an encoded surrogate
    three (it was passed through as a lone surrogate)."""
    rpc = make_rpc()
    for raw, expected in ((b"a\xe2\x82b", "a\ufffd\ufffdb"), (b"\xed\xa0\x80", "\ufffd" * 3),
                          (b"\xf0\x9f\x98", "\ufffd" * 3), (b"\xc3\xa9", "\u00e9")):
        body = b'{"jsonrpc":"2.0","id":"' + raw + b'","method":"eth_chainId"}'
        text = rpc.handle(body).text
        assert text is not None and json.loads(text)["id"] == expected, raw
        read = read_ws_message(body + b" junk", max_depth=64)
        assert read.body is not None and json.loads(read.body)["id"] == expected, raw
