"""An HTTP request body is read as geth v1.17 reads it (rpc/http.go newHTTPServerConn: a
json.Decoder's first value, then serveSingleRequest): what follows the first whole value
is ignored, as over a WebSocket; a body that is no JSON or ends early is -32700 "parse
error"; only JSON's own white space makes an empty body (answered with nothing)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording

CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
ANSWER = {"jsonrpc": "2.0", "id": 1, "result": "0x89"}
PARSE_ERROR = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
CASES: list[tuple[str, Any]] = [
    (CALL + " junk", ANSWER),
    (CALL + CALL.replace('"id": 1', '"id": 2'), ANSWER),
    ("[" + CALL + "]]", [ANSWER]),
    (" \r\n\t" + CALL + "\x0c", ANSWER),
    ("[] x", {"jsonrpc": "2.0", "id": None,
              "error": {"code": -32600, "message": "empty batch"}}),
    (CALL[:-1], PARSE_ERROR),
    ("nonsense", PARSE_ERROR),
    ("\x0c", PARSE_ERROR),  # no JSON white space: no empty body to Go
    (" \t\r\n", None),
]


def test_an_http_body_is_its_first_json_value() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6) as sim, \
                aiohttp.ClientSession() as http:
            for body, expected in CASES:
                async with http.post(sim.urls["http"], data=body.encode(),
                                     headers={"Content-Type": "application/json"}) as resp:
                    assert resp.status == 200, body
                    text = await resp.text()
                assert (json.loads(text) if text else None) == expected, body

    asyncio.run(asyncio.wait_for(main(), 60))
