"""The texts of a bad hash or bool argument as geth v1.17 words them: a ``common.Hash``
through hexutil.UnmarshalFixedText (prefix, odd length, length, digits, in that order; the
hexutil errors wrapped as json type errors) and a bool through Go's UnmarshalTypeError,
which names the JSON type (string, number, object, array), not Python's."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording

H64 = "11" * 32
WRAPPED = "json: cannot unmarshal {} into Go value of type common.Hash"

HASH_CASES = [
    (H64, WRAPPED.format("hex string without 0x prefix")),
    ("0x" + H64[:-1], WRAPPED.format("hex string of odd length")),
    ("0x" + "zz" * 32, WRAPPED.format("invalid hex string")),
    ("0x" + "zz", "hex string has length 2, want 64 for common.Hash"),  # length first
    ("", "hex string has length 0, want 64 for common.Hash"),
    ("0x", "hex string has length 0, want 64 for common.Hash"),
]
BOOL_CASES = [("true", "string"), (1, "number"), ({}, "object"), ([], "array")]


async def _call(http: aiohttp.ClientSession, url: str, method: str, params: list[Any]
                ) -> dict[str, Any]:
    async with http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                    "params": params}) as resp:
        answer: dict[str, Any] = await resp.json()
        return answer


@pytest.mark.parametrize("method", ["eth_getTransactionByHash", "eth_getTransactionReceipt",
                                    "eth_getBlockByHash"])
def test_a_bad_hash_or_bool_argument_has_geths_text(method: str) -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=1000) as sim, \
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            url = sim.urls["http"]
            extra = [False] if method == "eth_getBlockByHash" else []
            for value, text in HASH_CASES:
                answer = await _call(http, url, method, [value, *extra])
                assert answer["error"] == {"code": -32602,
                                           "message": f"invalid argument 0: {text}"}, value
            if method != "eth_getBlockByHash":
                return
            block_hash = sim.recording.blocks[0].hash
            assert (await _call(http, url, method, [block_hash.upper().replace("0X", "0x"),
                                                    False]))["result"]["hash"] == block_hash
            for value, kind in BOOL_CASES:
                answer = await _call(http, url, method, [block_hash, value])
                assert answer["error"] == {"code": -32602, "message": (
                    f"invalid argument 1: json: cannot unmarshal {kind} into Go value of "
                    f"type bool")}, value

    asyncio.run(asyncio.wait_for(main(), 60))
