"""Request bytes are UTF-8 or nothing, as geth reads them (Go's encoding/json): a body in
UTF-16 or UTF-32 (which Python's ``json.loads`` detects by its first bytes and decodes)
is no JSON: -32700 over HTTP; over a WebSocket encoding/json's "invalid character" and
the close."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from simulator.jsonrpc import JsonInputError, parse_json
from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording

TIMEOUT = 30.0
CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
VALUE = "looking for beginning of value"
KEY = "looking for beginning of object key string"
#: each encoding and geth's words for it: the first byte that is no JSON, and where
ENCODED = [("utf-16", "'\u00ff' " + VALUE), ("utf-16-le", "'\\x00' " + KEY),
           ("utf-16-be", "'\\x00' " + VALUE), ("utf-32", "'\u00ff' " + VALUE),
           ("utf-32-le", "'\\x00' " + KEY)]


@pytest.mark.parametrize("encoding", [e for e, _ in ENCODED])
def test_a_body_in_another_encoding_than_utf8_is_no_json(encoding: str) -> None:
    with pytest.raises(JsonInputError):
        parse_json(CALL.encode(encoding), max_depth=64)
    assert parse_json(CALL.encode("utf-8"), max_depth=64)["id"] == 1


def test_utf16_and_utf32_calls_are_parse_errors_over_http_and_websocket() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim, \
                aiohttp.ClientSession() as http:
            for encoding, words in ENCODED:
                async with http.post(sim.urls["http"], data=CALL.encode(encoding),
                                     headers={"Content-Type": "application/json"}) as resp:
                    assert await resp.json() == {
                        "jsonrpc": "2.0", "id": None,
                        "error": {"code": -32700, "message": "parse error"}}, encoding
                async with http.ws_connect(sim.urls["ws"]) as ws:
                    await ws.send_bytes(CALL.encode(encoding))
                    reply = json.loads(await ws.receive_str(timeout=TIMEOUT))
                    assert reply["error"] == {
                        "code": -32700, "message": f"invalid character {words}"}, encoding
                    msg = await ws.receive(timeout=TIMEOUT)
                    assert msg.type is aiohttp.WSMsgType.CLOSE, encoding

    asyncio.run(asyncio.wait_for(main(), 60))
