"""Request ids as geth v1.17 reads them (rpc/json.go hasValidID: any id whose JSON is no
object or array is a call's id and is echoed): ``true`` and ``false`` too, over HTTP, over
WebSocket and in a batch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording

TIMEOUT = aiohttp.ClientTimeout(total=30)


def _call(req_id: Any, method: str = "eth_chainId") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "method": method}


def test_boolean_ids_are_echoed_as_geth_echoes_any_id_that_is_no_object_or_array() -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=1000) as sim, \
                aiohttp.ClientSession(timeout=TIMEOUT) as http:
            for req_id in (True, False):
                async with http.post(sim.urls["http"], json=_call(req_id)) as resp:
                    assert await resp.json() == {"jsonrpc": "2.0", "id": req_id,
                                                 "result": "0x89"}
            async with http.post(sim.urls["http"], json=[_call(True), _call(False, "nope"),
                                                         _call({"a": 1})]) as resp:
                assert await resp.json() == [
                    {"jsonrpc": "2.0", "id": True, "result": "0x89"},
                    {"jsonrpc": "2.0", "id": False, "error": {
                        "code": -32601, "message": "the method nope does not exist/is not "
                                                   "available"}},
                    {"jsonrpc": "2.0", "id": None, "error": {"code": -32600,
                                                             "message": "invalid request"}}]
            # a bad version with a valid id: geth's msg.errorResponse keeps the id
            bad = {**_call(True), "jsonrpc": "1.0"}
            async with http.post(sim.urls["http"], json=bad) as resp:
                assert await resp.json() == {"jsonrpc": "2.0", "id": True, "error": {
                    "code": -32600, "message": "invalid request"}}
            async with http.ws_connect(sim.urls["ws"]) as ws:
                await ws.send_str(json.dumps(_call(False)))
                answer = json.loads((await ws.receive(timeout=30)).data)
                assert answer == {"jsonrpc": "2.0", "id": False, "result": "0x89"}

    asyncio.run(asyncio.wait_for(main(), 60))
