"""Request bodies a hostile or careless client sends: decided quickly, and as geth decides.

* the depth check before decoding is linear and exact (polyvocab's ``nesting_ok``);
* hex quantities and hex data are ASCII ``0x`` + hex digits, nothing ``int()`` also takes;
* a batch over the limit is answered in geth's shape.

The JSON-RPC cases run over HTTP against a running :class:`Simulator` on loopback.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from simulator.jsonrpc import JsonInputError, parse_json
from simulator.server import Simulator
from simulator.settings import NodeSettings, SimSettings
from tests.simulator.node_fixtures import make_recording

LIMIT = 64


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 60))


# -- the depth check (D4) ----------------------------------------------------------------
def reference_depth(text: str) -> int:
    """The deepest nesting of ``text``, one character at a time, strings skipped as a
    JSON decoder skips them."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


_STRING_PARTS = ["[", "]", "{", "}", '\\"', "\\\\", "a", "\\n", "é", "]]]]]]]]"]


def _random_value(rng: random.Random, depth: int) -> Any:
    """A JSON value nested about ``depth`` deep, with brackets, quotes and backslashes in
    its strings (a closing bracket in a string must not hide real depth)."""
    if depth <= 0 or rng.random() < 0.1:
        return rng.choice([1, None, "".join(rng.choice(_STRING_PARTS)
                                            for _ in range(rng.randint(0, 12)))])
    items = [_random_value(rng, depth - 1 if i == 0 else rng.randint(0, 2))
             for i in range(rng.randint(1, 3))]
    rng.shuffle(items)
    if rng.random() < 0.5:
        return items
    return {f"k{i}]": v for i, v in enumerate(items)}


def test_the_depth_check_decides_like_a_character_by_character_scan() -> None:
    """Random bodies (valid, and broken by one character): a body the decoder takes is
    refused exactly when it nests deeper than the limit, and otherwise decoded as is."""
    rng = random.Random(11)
    for _ in range(600):
        text = json.dumps(_random_value(rng, rng.randint(LIMIT - 8, LIMIT + 8)),
                          ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.3:
            pos = rng.randrange(len(text) + 1)
            text = text[:pos] + rng.choice(['"', "]", "[", "\\", ""]) + text[pos + 1:]
        try:
            decoded: Any = json.loads(text)
        except (ValueError, RecursionError):
            with pytest.raises(JsonInputError):
                parse_json(text, max_depth=LIMIT)
            continue
        if reference_depth(text) > LIMIT:
            with pytest.raises(JsonInputError, match="nested deeper"):
                parse_json(text, max_depth=LIMIT)
        else:
            assert parse_json(text, max_depth=LIMIT) == decoded
            assert parse_json(text.encode("utf-8"), max_depth=LIMIT) == decoded


def test_a_closing_bracket_in_a_string_does_not_hide_depth() -> None:
    body = '["' + "]" * 100 + '", ' + "[" * 70 + "]" * 70 + "]"
    with pytest.raises(JsonInputError, match="nested deeper"):
        parse_json(body, max_depth=LIMIT)


def _cpu_s(fn: Callable[[], Any]) -> float:
    t = time.process_time()
    try:
        fn()
    except ValueError:  # JsonInputError, or the decoder's own error
        pass
    return time.process_time() - t


@pytest.mark.parametrize("body", [
    # 1 MB of 63-deep nests in one batch: the depth check was O(bytes x depth), ~2 s
    "[" + ",".join(["[" * 63 + "]" * 63] * 8000) + "]",
    # an unclosed string of escaped quotes behind 65 openings: each escaped quote was a
    # new start for the string pattern, quadratic (~7 s at 20,000)
    "[" * 65 + '"' + '\\"' * 20_000,
])
def test_a_hostile_megabyte_costs_about_what_decoding_a_megabyte_costs(body: str) -> None:
    """Measured against the decoder on the same body and machine: the depth check adds
    little to the decoding it guards (it was ~10 times the decoding, or quadratic)."""
    baseline = min(_cpu_s(lambda: json.loads(body)) for _ in range(2))
    cost = min(_cpu_s(lambda: parse_json(body, max_depth=LIMIT)) for _ in range(2))
    assert cost < 2 * baseline + 0.1, (cost, baseline)


# -- hex quantities and hex data (D8) -----------------------------------------------------
async def _post(http: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with http.post(url, data=json.dumps(body),
                         headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 200
        return await resp.json()


ADDRESS = "0x" + "ab" * 20
TOPIC = "0x" + "cd" * 32
_BAD_NUMBERS = ["0x-1", "0x 5", "0x+1", "0x1_0", "0x\u0665", "0x5 ", "0x\t5", "0x\u00a05",
                "0x\uff15", ""]


def _bad_calls() -> list[tuple[str, list[Any]]]:
    """One call per value geth and anvil refuse with -32602 and ``int(x, 16)`` takes (or an
    empty bound the node read as latest)."""
    calls: list[tuple[str, list[Any]]] = []
    for bad in _BAD_NUMBERS:
        calls.append(("eth_getBlockByNumber", [bad, False]))
        calls.append(("eth_getLogs", [{"fromBlock": bad, "toBlock": "latest"}]))
        calls.append(("eth_getLogs", [{"fromBlock": "0x0", "toBlock": bad}]))
    calls.append(("eth_getLogs", [{"fromBlock": 0}]))  # a number is no quantity either
    for junk in ("\t", "\u00a0", "\u0665", " ", "_", "-"):
        calls.append(("eth_getLogs", [{"address": ADDRESS[:-1] + junk}]))
        calls.append(("eth_getLogs", [{"topics": [TOPIC[:-1] + junk]}]))
        calls.append(("eth_getLogs", [{"blockHash": TOPIC[:-1] + junk}]))
        calls.append(("eth_getBlockByHash", [TOPIC[:-1] + junk, False]))
    return calls


def test_hex_that_int_takes_but_geth_refuses_is_invalid_params_over_http() -> None:
    async def main() -> None:
        async with Simulator(make_recording(4), speed=1e6) as sim, \
                aiohttp.ClientSession() as http:
            await sim.wait_published(4)
            calls = _bad_calls()
            for i, (method, params) in enumerate(calls):
                reply = await _post(http, sim.urls["http"], {
                    "jsonrpc": "2.0", "id": i, "method": method, "params": params})
                assert "error" in reply and reply["error"]["code"] == -32602, (
                    method, params, reply)
            # the strict forms still work
            reply = await _post(http, sim.urls["http"], {
                "jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                "params": [{"fromBlock": "0X3E8", "toBlock": None,
                            "address": "0x" + "AB" * 20}]})
            assert reply["result"] == []
    run(main)


# -- batch too large (D9) -------------------------------------------------------------------
def test_a_batch_too_large_is_a_batch_of_one_error_with_the_first_calls_id_like_geth() -> None:
    """geth/bor respondWithBatchTooLarge: ``[{"id": <first call's id>, "error": ...}]``;
    notifications and invalid entries before it carry no id to give."""
    async def main() -> None:
        settings = SimSettings(node=NodeSettings(max_batch=5, max_ws_batch=3))
        async with Simulator(make_recording(2), settings=settings) as sim, \
                aiohttp.ClientSession() as http:
            call = {"jsonrpc": "2.0", "method": "eth_chainId"}
            batch = [call, 17, {**call, "id": {"x": 1}}, {**call, "id": "first"},
                     {**call, "id": 9}, {**call, "id": 10}]
            refusal = {"code": -32600, "message": "batch too large"}
            assert await _post(http, sim.urls["http"], batch) == [
                {"jsonrpc": "2.0", "id": "first", "error": refusal}]
            assert await _post(http, sim.urls["http"], [call] * 6) == [
                {"jsonrpc": "2.0", "id": None, "error": refusal}]
            async with http.ws_connect(sim.urls["ws"]) as ws:
                await ws.send_str(json.dumps([{**call, "id": i} for i in range(7, 11)]))
                msg = await asyncio.wait_for(ws.receive(), 20)
                assert json.loads(msg.data) == [{"jsonrpc": "2.0", "id": 7, "error": refusal}]
    run(main)
