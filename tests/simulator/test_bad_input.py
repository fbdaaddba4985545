"""Bad input gets a clear 4xx / JSON-RPC error, never a 500 (issue 8, defect 9).

Every server case runs over real loopback sockets against a running :class:`Simulator`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from simulator.explorer import Explorer, ExplorerSettings
from simulator.faults import FaultError, FaultPlan, make_spec
from simulator.jsonrpc import JsonInputError, parse_json
from simulator.ratelimit import KeyedRateLimiter
from simulator.server import Simulator
from simulator.settings import NodeSettings, SimSettings
from tests.simulator.node_fixtures import make_recording

TIMEOUT = 20
DEEP = "[" * 50_000 + "]" * 50_000  # 100 KB: under the body limit, far over any depth limit


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 60))


async def post(http: aiohttp.ClientSession, url: str, data: str | bytes,
               ctype: str = "application/json") -> tuple[int, Any]:
    async with http.post(url, data=data, headers={"Content-Type": ctype}) as resp:
        text = await resp.text()
        assert "Traceback" not in text
        try:
            return resp.status, json.loads(text)
        except json.JSONDecodeError:
            return resp.status, text


# -- the bounded JSON parser (pure) ---------------------------------------------------
@pytest.mark.parametrize(("text", "needle"), [
    (DEEP, "nested deeper"),
    ("[" * 70 + "]" * 70, "nested deeper"),
    ('{"id": ' + "7" * 5000 + "}", "too many digits"),
    ('{"id": 1e400}', "out of range"),
    ('{"duration": Infinity}', "not JSON"),
    ('{"duration": NaN}', "not JSON"),
    ("{oops", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_parse_json_refuses_what_would_blow_up_later(text: str | bytes, needle: str) -> None:
    with pytest.raises(JsonInputError, match=needle):
        parse_json(text, max_depth=64)


def test_parse_json_accepts_ordinary_json_at_the_depth_limit() -> None:
    assert parse_json("[" * 64 + "]" * 64, max_depth=64) is not None
    assert parse_json('{"id": 12345678901234567890, "x": 1.5}', max_depth=4) == {
        "id": 12345678901234567890, "x": 1.5}


# -- HTTP JSON-RPC ---------------------------------------------------------------------
def test_deeply_nested_json_rpc_body_is_a_parse_error_not_a_500() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2)) as sim, aiohttp.ClientSession() as http:
            status, body = await post(http, sim.urls["http"], DEEP)
            assert status == 200 and body["error"]["code"] == -32700
            assert "nested deeper" in body["error"]["message"] and body["id"] is None
    run(main)


def test_deeply_nested_frame_on_websocket_is_answered_and_the_connection_lives() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2)) as sim, aiohttp.ClientSession() as http, \
                http.ws_connect(sim.urls["ws"]) as ws:
            await ws.send_str(DEEP)
            reply = json.loads((await asyncio.wait_for(ws.receive(), TIMEOUT)).data)
            assert reply["error"]["code"] == -32700
            await ws.send_str('{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}')
            reply = json.loads((await asyncio.wait_for(ws.receive(), TIMEOUT)).data)
            assert reply == {"jsonrpc": "2.0", "id": 2, "result": "0x89"}
    run(main)


@pytest.mark.parametrize("raw_id", ["7" * 5000, "7" * 4000, "1e400", '"' + "x" * 5000 + '"'])
def test_a_request_id_of_thousands_of_digits_is_an_invalid_request(raw_id: str) -> None:
    async def main() -> None:
        async with Simulator(make_recording(2)) as sim, aiohttp.ClientSession() as http:
            body = '{"jsonrpc":"2.0","id":' + raw_id + ',"method":"eth_chainId"}'
            status, reply = await post(http, sim.urls["http"], body)
            assert status == 200 and reply["id"] is None
            assert reply["error"]["code"] in (-32700, -32600)
    run(main)


def test_a_quantity_over_64_bits_is_invalid_params_like_geth() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2)) as sim, aiohttp.ClientSession() as http:
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber",
                               "params": ["0x" + "f" * 5000, False]})
            status, reply = await post(http, sim.urls["http"], body)
            assert status == 200 and reply["error"] == {
                "code": -32602, "message": "invalid argument 0: hex number > 64 bits"}
    run(main)


def test_a_batch_of_get_logs_is_cut_at_the_response_size_limit_like_geth() -> None:
    async def main() -> None:
        settings = SimSettings(node=NodeSettings(max_response_bytes=20_000))
        async with Simulator(make_recording(40), settings=settings, speed=1000) as sim, \
                aiohttp.ClientSession() as http:
            await sim.wait_published(40)
            call = {"jsonrpc": "2.0", "method": "eth_getLogs",
                    "params": [{"fromBlock": "0x3e8", "toBlock": "latest"}]}
            batch = [{**call, "id": i} for i in range(200)]
            async with http.post(sim.urls["http"], json=batch) as resp:
                raw = await resp.read()
            replies = json.loads(raw)
            assert [r["id"] for r in replies] == list(range(200))
            ok = [r for r in replies if "result" in r]
            cut = [r for r in replies if "error" in r]
            assert ok and len(ok[0]["result"]) == 160  # 40 blocks x 4 logs
            assert cut and all(r["error"] == {"code": -32003, "message": "response too large"}
                               for r in cut)
            assert replies.index(cut[0]) == len(ok)  # the cut ends the batch
            one = len(json.dumps(ok[0]))
            assert len(raw) < 20_000 + one + len(batch) * 100
    run(main)


def test_a_batch_of_failing_get_logs_stops_when_its_log_budget_is_spent() -> None:
    async def main() -> None:
        settings = SimSettings(node=NodeSettings(profile="geth", logs_max_results=10,
                                                 max_logs_per_request=50))
        async with Simulator(make_recording(20), settings=settings, speed=1000) as sim, \
                aiohttp.ClientSession() as http:
            await sim.wait_published(20)
            call = {"jsonrpc": "2.0", "method": "eth_getLogs",
                    "params": [{"fromBlock": "0x3e8", "toBlock": "latest"}]}
            async with http.post(sim.urls["http"],
                                 json=[{**call, "id": i} for i in range(100)]) as resp:
                replies = await resp.json()
            codes = [r["error"]["code"] for r in replies]
            assert codes[:5] == [-32005] * 5 and set(codes[5:]) == {-32003}
    run(main)


def test_unknown_method_names_are_counted_under_one_label() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2)) as sim, aiohttp.ClientSession() as http:
            for i in range(5):
                await post(http, sim.urls["http"], json.dumps(
                    {"jsonrpc": "2.0", "id": 1, "method": f"x_{i}" + "y" * 1000}))
            assert sim.counts["rpc_http"] == {"?": 5}
            assert all(len(r["method"]) < 10 for r in sim.history.events("request"))
    run(main)


# -- control API -----------------------------------------------------------------------
@pytest.mark.parametrize(("body", "needle"), [
    (DEEP, "nested deeper"),
    ('{"name": "ws_silent", "duration": Infinity}', "not JSON"),
    ('{"name": "ws_silent", "duration": NaN}', "not JSON"),
    ('{"name": "ws_silent", "duration": 1e400}', "out of range"),
    ('{"name": "ws_silent", "duration": 1e300}', "duration"),
    ('{"name": "ws_close", "params": {"code": [1001]}}', "params.code"),
    ('{"name": "ws_close", "params": {"reason": "' + "r" * 200 + '"}}', "params.reason"),
    ('{"name": "ws_latency", "params": {"seed": "x"}}', "params.seed"),
    ('{"name": "explorer_down", "params": {"mode": ["timeout"]}}', "params.mode"),
])
def test_control_api_answers_bad_fault_requests_with_400(body: str, needle: str) -> None:
    async def main() -> None:
        async with Simulator(make_recording(2)) as sim, aiohttp.ClientSession() as http:
            status, reply = await post(http, sim.urls["faults"], body)
            assert status == 400 and needle in reply["error"], reply
            assert sim.board.active == {}
    run(main)


def test_start_fault_refuses_a_non_finite_duration() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2)) as sim:
            for bad in (float("inf"), float("nan"), 1e300):
                with pytest.raises(FaultError, match="duration"):
                    sim.start_fault("ws_silent", duration_s=bad)
    run(main)


@pytest.mark.parametrize("entry", [
    {"name": "ws_loss", "every": 1e-9, "duration": 0},
    {"name": "ws_loss", "random": True, "rate": 1e12},
    {"name": "ws_loss", "at": 1, "duration": float("inf")},
    {"name": "ws_loss", "at": float("nan")},
])
def test_fault_schedules_that_would_never_finish_are_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(FaultError):
        FaultPlan.parse([entry]).windows(900)


def test_fault_params_must_have_the_type_of_their_default() -> None:
    with pytest.raises(FaultError, match=r"params\.share"):
        make_spec("ws_loss", params={"share": float("nan")})
    with pytest.raises(FaultError, match=r"params\.drop_existing"):
        make_spec("ws_refuse", params={"drop_existing": "yes"})


# -- Telegram stand-in -----------------------------------------------------------------
@pytest.mark.parametrize(("data", "ctype"), [
    ("chat_id=" + "1" * 5000 + "&text=hi", "application/x-www-form-urlencoded"),
    ('{"chat_id": "' + "1" * 5000 + '", "text": "hi"}', "application/json"),
    ('{"chat_id": 99999999999999999999999, "text": "hi"}', "application/json"),
    ('{"chat_id": 1, "text": ' + DEEP + "}", "application/json"),
])
def test_telegram_refuses_a_giant_chat_id_or_deep_body_with_400(data: str, ctype: str) -> None:
    async def main() -> None:
        async with Simulator(make_recording(2)) as sim, aiohttp.ClientSession() as http:
            url = f"{sim.urls['telegram']}/bot123:abc/sendMessage"
            status, reply = await post(http, url, data, ctype)
            assert status == 400 and reply["ok"] is False
            assert reply["description"].startswith("Bad Request")
            assert sim.history.events("alert") == []
    run(main)


# -- rate-limiter state is bounded -----------------------------------------------------
def test_rate_limiter_forgets_the_least_recently_used_keys_past_its_bound() -> None:
    rl = KeyedRateLimiter(3.0, daily_limit=100, max_keys=100)
    for i in range(10_000):
        rl.check(f"key{i}", i)
    assert len(rl) == 100
    # a recent key keeps its state: its bucket is still empty
    for _ in range(3):
        rl.check("hot", 10_000)
    assert not rl.check("hot", 10_001).allowed


def test_explorer_keeps_bounded_state_for_a_flood_of_unknown_keys() -> None:
    explorer = Explorer(ExplorerSettings(max_tracked_keys=50), _NoChain())
    for i in range(2000):
        explorer.handle("/v2/api", {"chainid": "137", "module": "proxy",
                                    "action": "eth_blockNumber", "apikey": f"KEY{i:08d}"}, i)
    assert explorer.tracked_keys() <= 50


class _NoChain:
    def indexed_blocks(self, now_ns: int) -> list[Any]:
        return []
