"""Fuzzing the simulator's endpoints over loopback: random JSON-RPC over HTTP and
WebSocket, random explorer queries, random control-API bodies. Pass means: no 5xx, no
traceback in any answer, no hang, and the node still answers a valid request afterwards.

One simulator serves every example (hypothesis drives a persistent event loop); the
examples are derandomized so the suite is deterministic.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.jsonrpc import read_ws_message
from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])

scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                   st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                   st.sampled_from(["0x", "0x1", "latest", "pending", "0xZZ", "0x" + "f" * 80,
                                    "earliest", "safe", "finalized"]))
value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20)
METHODS = ["eth_blockNumber", "eth_getBlockByNumber", "eth_getBlockByHash", "eth_getLogs",
           "eth_chainId", "eth_subscribe", "eth_unsubscribe", "eth_getTransactionReceipt",
           "eth_getTransactionByHash", "net_version", "web3_clientVersion", "eth_call",
           "no_such_method"]
request = st.fixed_dictionaries({"jsonrpc": st.sampled_from(["2.0", "1.0", 2]),
                                 "id": st.one_of(st.integers(-5, 10**30), st.text(max_size=8),
                                                 st.none(), st.lists(st.integers())),
                                 "method": st.one_of(st.sampled_from(METHODS),
                                                     st.text(max_size=12)),
                                 "params": st.one_of(st.lists(value, max_size=4), value)})
body = st.one_of(request.map(json.dumps), st.lists(request, max_size=5).map(json.dumps),
                 value.map(json.dumps), st.text(max_size=200), st.binary(max_size=100))
query = st.dictionaries(st.sampled_from(["chainid", "module", "action", "address",
                                         "fromBlock", "toBlock", "startblock", "endblock",
                                         "page", "offset", "sort", "topic0", "topic2",
                                         "topic0_2_opr", "apikey", "tag", "txhash"]),
                        st.one_of(st.text(max_size=20),
                                  st.sampled_from(["137", "logs", "getLogs", "account",
                                                   "proxy", "eth_blockNumber", "txlist",
                                                   "tokentx", "-1", "99999999999999999999",
                                                   "0x" + "1" * 40])), max_size=8)


class Harness:
    """A simulator on a loopback port and a client session, on one event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.sim = Simulator(make_recording(), speed=50.0)
        self.loop.run_until_complete(self.sim.start())
        self.http = self.loop.run_until_complete(self._session())

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 30))

    def close(self) -> None:
        self.run(self.http.close())
        self.run(self.sim.stop())
        self.loop.close()

    async def alive(self) -> None:
        async with self.http.post(self.sim.urls["http"], json={
                "jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}) as resp:
            assert resp.status == 200 and (await resp.json())["result"] == "0x89"


def _check(status: int, text: str) -> None:
    assert status < 500, (status, text[:300])
    assert "Traceback" not in text


def test_random_http_jsonrpc_bodies_never_give_a_5xx() -> None:
    h = Harness()
    try:
        @FUZZ
        @given(body)
        def one(data: str | bytes) -> None:
            async def go() -> None:
                async with h.http.post(h.sim.urls["http"], data=data,
                                       headers={"Content-Type": "application/json"}) as r:
                    _check(r.status, await r.text())
            h.run(go())
        one()
        h.run(h.alive())
    finally:
        h.close()


def test_random_websocket_frames_never_kill_the_connection_handler() -> None:
    h = Harness()
    try:
        @FUZZ
        @given(st.lists(body, min_size=1, max_size=4))
        def one(frames: list[str | bytes]) -> None:
            async def go() -> None:
                async with h.http.ws_connect(h.sim.urls["ws"]) as ws:
                    for f in frames:
                        if isinstance(f, bytes):
                            await ws.send_bytes(f)
                        else:
                            await ws.send_str(f)
                    await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": "end",
                                                  "method": "eth_chainId", "params": []}))
                    while True:  # every frame answered or ignored; the end marker arrives
                        msg = await ws.receive(timeout=20)
                        if msg.type is aiohttp.WSMsgType.CLOSE:  # as geth's reader does, at
                            # a frame that is not JSON (-32700 first) or ends early
                            depth = h.sim.settings.node.max_json_depth
                            assert msg.data == 1000 and any(
                                read_ws_message(f, max_depth=depth).body is None
                                for f in frames), msg
                            return
                        assert msg.type is aiohttp.WSMsgType.TEXT, msg
                        assert "Traceback" not in msg.data
                        reply = json.loads(msg.data)
                        if isinstance(reply, dict) and reply.get("id") == "end":
                            assert reply["result"] == "0x89"
                            return
            h.run(go())
        one()
        h.run(h.alive())
    finally:
        h.close()


def test_random_explorer_queries_never_give_a_5xx() -> None:
    h = Harness()
    try:
        @FUZZ
        @given(query)
        def one(q: dict[str, str]) -> None:
            async def go() -> None:
                async with h.http.get(h.sim.urls["explorer"], params=q) as r:
                    text = await r.text()
                    _check(r.status, text)
            h.run(go())
        one()
        h.run(h.alive())
    finally:
        h.close()


def test_random_control_api_bodies_never_give_a_5xx() -> None:
    h = Harness()
    try:
        fault = st.fixed_dictionaries({"name": st.one_of(st.sampled_from(
            ["ws_drop", "ws_stall", "reorg", "rpc_errors", "explorer_down", "nope"]),
            st.text(max_size=10)), "target": st.one_of(st.none(), st.text(max_size=10)),
            "params": value, "duration": st.one_of(st.none(), scalar)})

        @FUZZ
        @given(st.one_of(fault.map(json.dumps), body))
        def one(data: str | bytes) -> None:
            async def go() -> None:
                async with h.http.post(h.sim.urls["faults"], data=data,
                                       headers={"Content-Type": "application/json"}) as r:
                    _check(r.status, await r.text())
                async with h.http.delete(h.sim.urls["faults"] + "/f-no-such") as r:
                    _check(r.status, await r.text())
            h.run(go())
        one()
        h.run(h.alive())
    finally:
        h.close()
