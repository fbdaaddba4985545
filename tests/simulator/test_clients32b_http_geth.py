"""The HTTP JSON-RPC endpoint's refusals as geth v1.17 rpc/http.go (ServeHTTP,
validateRequest) makes them, in geth's order: method, content length, content type."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from simulator.server import Simulator
from simulator.settings import NodeSettings, SimSettings
from tests.simulator.node_fixtures import make_recording

TIMEOUT = aiohttp.ClientTimeout(total=30)
CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
REFUSED = "invalid content type, only application/json is supported\n"


def run(body: Callable[[Simulator, aiohttp.ClientSession], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=1000) as sim, \
                aiohttp.ClientSession(timeout=TIMEOUT) as http:
            await body(sim, http)
    asyncio.run(asyncio.wait_for(main(), 60))


def test_only_json_content_types_are_served() -> None:
    async def body(sim: Simulator, http: aiohttp.ClientSession) -> None:
        url = sim.urls["http"]
        served = ("application/json", "application/json-rpc", "application/jsonrequest",
                  "Application/JSON; charset=UTF-8", "application/json;",
                  'application/json ; q="a;b"')
        for ctype in served:
            async with http.post(url, data=CALL, headers={"Content-Type": ctype}) as resp:
                assert resp.status == 200, ctype
                assert (await resp.json())["result"] == "0x89"
        refused = ("text/plain", "application/octet-stream", "application/x-www-form-urlencoded",
                   "application/json-patch+json", "application", "application/",
                   "application/json x", "application/json; charset",
                   "application/json; a=1; a=2", "")
        for ctype in refused:
            async with http.post(url, data=CALL.encode(), headers={"Content-Type": ctype},
                                 skip_auto_headers=["Content-Type"]) as resp:
                assert resp.status == 415, ctype
                assert await resp.text() == REFUSED
                assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        # no Content-Type at all
        async with http.post(url, data=CALL.encode(),
                             skip_auto_headers=["Content-Type"]) as resp:
            assert "Content-Type" not in resp.request_info.headers
            assert resp.status == 415 and await resp.text() == REFUSED
        # PUT is refused 405 before the type is looked at; OPTIONS passes without one
        async with http.put(url, data=CALL, headers={"Content-Type": "text/plain"}) as resp:
            assert resp.status == 405
        async with http.options(url) as resp:
            assert resp.status == 200 and await resp.read() == b""
    run(body)


def test_an_empty_get_is_a_health_check_and_other_gets_are_calls() -> None:
    async def body(sim: Simulator, http: aiohttp.ClientSession) -> None:
        url = sim.urls["http"]
        for query in ("", "?"):  # Go's RawQuery is "" for both
            async with http.get(url + query) as resp:
                assert resp.status == 200 and await resp.read() == b""
        # a query, or a HEAD: validateRequest, and no JSON content type
        async with http.get(url + "?health=1") as resp:
            assert resp.status == 415 and await resp.text() == REFUSED
        async with http.head(url) as resp:
            assert resp.status == 415
        json_type = {"Content-Type": "application/json"}
        async with http.head(url, headers=json_type) as resp:
            assert resp.status == 200
        async with http.get(url + "?x=1", headers=json_type) as resp:
            assert resp.status == 200 and await resp.read() == b""
        # a GET with a JSON body and type is served as a call, as geth serves it
        async with http.get(url, data=CALL, headers=json_type) as resp:
            assert resp.status == 200 and (await resp.json())["result"] == "0x89"
        async with http.get(url, data=CALL) as resp:  # text/plain
            assert resp.status == 415
    run(body)


def test_a_body_past_the_limit_is_413_in_geths_words_and_the_limits_are_geths() -> None:
    assert NodeSettings().http_body_limit == 5 * 1024 * 1024  # rpc/http.go
    assert NodeSettings().ws_read_limit == 32 * 1024 * 1024  # rpc/websocket.go
    small = NodeSettings(max_frame_bytes=1000)
    assert small.http_body_limit == small.ws_read_limit == 1000

    async def limited() -> None:
        async with Simulator(make_recording(3), settings=SimSettings(node=small)) as sim, \
                aiohttp.ClientSession(timeout=TIMEOUT) as http:
            url = sim.urls["http"]
            big = CALL[:-1] + ', "pad": "' + "x" * 2000 + '"}'
            for ctype in ("application/json", "text/plain"):  # the length is checked first
                async with http.post(url, data=big, headers={"Content-Type": ctype}) as resp:
                    assert resp.status == 413
                    assert await resp.text() == (f"content length too large "
                                                 f"({len(big)}>1000)\n")
                    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
            async with http.put(url, data=big) as resp:  # the method before the length
                assert resp.status == 405

            async def chunks() -> Any:
                yield big.encode()

            # chunked: no length to refuse; geth reads 1000 bytes (io.LimitReader), no JSON
            async with http.post(url, data=chunks(),
                                 headers={"Content-Type": "application/json"}) as resp:
                assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
                assert resp.status == 200
                assert (await resp.json())["error"]["code"] == -32700
            async with http.post(url, data=CALL, headers={"Content-Type":
                                                          "application/json"}) as resp:
                assert (await resp.json())["result"] == "0x89"

    async def defaults() -> None:
        async with Simulator(make_recording(3)) as sim, \
                aiohttp.ClientSession(timeout=TIMEOUT) as http:
            two_mb = CALL[:-1] + ', "pad": "' + "x" * (2 << 20) + '"}'
            async with http.post(sim.urls["http"], data=two_mb,
                                 headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 200 and (await resp.json())["result"] == "0x89"
            async with http.ws_connect(sim.urls["ws"]) as ws:
                await ws.send_str(CALL[:-1] + ', "pad": "' + "x" * (8 << 20) + '"}')
                assert json.loads((await ws.receive(timeout=30)).data)["result"] == "0x89"

    asyncio.run(asyncio.wait_for(limited(), 60))
    asyncio.run(asyncio.wait_for(defaults(), 60))
