"""The HTTP JSON-RPC endpoint at the edges geth's rpc/http.go decides (geth v1.17): PUT and
DELETE are 405 "method not allowed", an OPTIONS preflight (no CORS configured) and a body
holding no JSON value are answered with nothing, not a 405 or a parse error."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording

TIMEOUT = aiohttp.ClientTimeout(total=30)
JSON = {"Content-Type": "application/json"}


def test_methods_and_empty_bodies_are_answered_as_geths_http_server() -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=1000) as sim, \
                aiohttp.ClientSession(timeout=TIMEOUT) as http:
            url = sim.urls["http"]
            for method in ("PUT", "DELETE"):
                async with http.request(method, url, data=b"{}", headers=JSON) as resp:
                    assert resp.status == 405
                    assert await resp.text() == "method not allowed\n"
                    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
            # a browser's CORS preflight: geth (no --http.corsdomain) serves it as a call
            # with an empty body, answered with nothing
            async with http.options(url, headers={
                    "Origin": "http://localhost:3000",
                    "Access-Control-Request-Method": "POST"}) as resp:
                assert resp.status == 200
                assert await resp.read() == b""
            for body in (b"", b"  \r\n\t "):
                async with http.post(url, data=body, headers=JSON) as resp:
                    assert resp.status == 200
                    assert await resp.read() == b""
            # the ordinary calls and the WebSocket upgrade on the same path still work
            call = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
            async with http.post(url, data=json.dumps(call), headers=JSON) as resp:
                assert (await resp.json())["result"] == "0x89"
            async with http.ws_connect(sim.urls["ws"]) as ws:
                await ws.send_str(json.dumps(call))
                assert json.loads((await ws.receive(timeout=30)).data)["result"] == "0x89"

    asyncio.run(asyncio.wait_for(main(), 60))
