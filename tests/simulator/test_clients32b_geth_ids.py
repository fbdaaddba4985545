"""Subscription and filter ids as geth v1.17 makes them (rpc/subscription.go encodeID): 16
random bytes as an RPC quantity, leading zero digits stripped, so about 1 id in 16 is
shorter than 32 digits. A client assuming a fixed length must break here as on a node."""

from __future__ import annotations

import asyncio
import json
import random
import re
from typing import Any

import aiohttp
import pytest

import simulator.jsonrpc
import simulator.server
from simulator.hexutil import geth_id
from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording

GETH_ID = re.compile(r"0x(?:0|[1-9a-f][0-9a-f]{0,31})")
TIMEOUT = aiohttp.ClientTimeout(total=30)


def test_ids_are_quantities_of_16_random_bytes_with_no_leading_zero() -> None:
    rng = random.Random(20260412)
    ids = [geth_id(rng.randbytes) for _ in range(4000)]
    assert all(GETH_ID.fullmatch(i) for i in ids)
    lengths = {len(i) - 2 for i in ids}
    assert 32 in lengths and min(lengths) < 32  # both lengths are drawn
    short = sum(len(i) < 34 for i in ids) / len(ids)
    assert 0.03 < short < 0.12  # ~1/16 have a leading zero digit
    # the value is the bytes drawn, read big-endian
    rng = random.Random(7)
    raw = random.Random(7).randbytes(16)
    assert int(geth_id(rng.randbytes), 16) == int.from_bytes(raw, "big")
    assert geth_id(lambda n: bytes(n)) == "0x0"
    assert geth_id(lambda n: b"\x00\x0f" + bytes(n - 2)) == "0xf" + "0" * 28


def test_the_node_hands_out_and_takes_back_short_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Subscriptions (WebSocket) and poll filters (HTTP) take their ids from one generator;
    an id shorter than 32 digits is handed out and is found again."""
    shorts = iter([hex(0xABC << 108 | i) for i in range(10)])  # 30 digits each
    fake = lambda: next(shorts)  # noqa: E731
    monkeypatch.setattr(simulator.server, "geth_id", fake, raising=False)
    monkeypatch.setattr(simulator.jsonrpc, "geth_id", fake, raising=False)

    def call(method: str, *params: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}

    async def main() -> None:
        async with Simulator(make_recording(3), speed=1000) as sim, \
                aiohttp.ClientSession(timeout=TIMEOUT) as http:
            async with http.ws_connect(sim.urls["ws"]) as ws:
                await ws.send_str(json.dumps(call("eth_subscribe", "newHeads")))
                sub = json.loads((await ws.receive(timeout=30)).data)["result"]
                assert GETH_ID.fullmatch(sub) and len(sub) == 32
                await ws.send_str(json.dumps(call("eth_unsubscribe", sub)))
                while "id" not in (answer := json.loads((await ws.receive(timeout=30)).data)):
                    pass  # a newHeads notification sent before the answer
                assert answer.get("result") is True, answer
            async with http.post(sim.urls["http"], json=call("eth_newBlockFilter")) as resp:
                fid = (await resp.json())["result"]
            assert GETH_ID.fullmatch(fid) and len(fid) == 32
            async with http.post(sim.urls["http"], json=call("eth_getFilterChanges",
                                                             fid)) as resp:
                assert isinstance((await resp.json())["result"], list)
            async with http.post(sim.urls["http"], json=call("eth_uninstallFilter",
                                                             fid)) as resp:
                assert (await resp.json())["result"] is True

    asyncio.run(asyncio.wait_for(main(), 60))
