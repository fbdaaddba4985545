"""Malformed-data faults (issue 8): garbage goes on the wire beside the valid data, bounded,
seeded, and every item is a ``malformed`` history row. Real clients over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import websockets

from polyvocab import address_topic
from simulator.faults import FaultPlan, make_spec
from simulator.nemesis import (
    BAD_LOG_KINDS,
    EXPLORER_GARBAGE_KINDS,
    RPC_GARBAGE_KINDS,
    WS_GARBAGE_KINDS,
    FaultBoard,
    Nemesis,
    NotifyCtx,
)
from simulator.server import Simulator
from simulator.settings import SimSettings
from tests.simulator.node_fixtures import WALLETS, make_recording

TIMEOUT = 20
KEY = "ABCDEFGHIJKL"


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 90))


def loads(text: str | bytes) -> Any:
    """What a careful client does with a frame: JSON, or None when it is not usable."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def malformed(sim: Simulator, name: str) -> list[str]:
    return [r["kind"] for r in sim.history.events("malformed") if r["name"] == name]


async def subscribe(ws: Any, *params: Any, req_id: int = 1) -> str:
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "eth_subscribe",
                              "params": list(params)}))
    while True:
        msg = loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if isinstance(msg, dict) and msg.get("id") == req_id:
            return str(msg["result"])


async def drain(ws: Any, sim: Simulator, n_blocks: int) -> list[str]:
    """Every frame until the last block's head arrived (and a ping round trip after it)."""
    frames: list[str] = []
    last = sim.recording.blocks[n_blocks - 1].hash
    while True:
        text = await asyncio.wait_for(ws.recv(), TIMEOUT)
        frames.append(text)
        msg = loads(text)
        params = msg.get("params") if isinstance(msg, dict) else None
        result = params.get("result") if isinstance(params, dict) else None
        if isinstance(result, dict) and "parentHash" in result and result["hash"] == last:
            break
    await ws.send('{"jsonrpc":"2.0","id":99,"method":"eth_chainId"}')
    while True:  # what was queued before the answer arrives first (order is kept)
        text = await asyncio.wait_for(ws.recv(), TIMEOUT)
        msg = loads(text)
        if isinstance(msg, dict) and msg.get("id") == 99 and msg.get("result") == "0x89":
            return frames
        frames.append(text)


def real_notifications(frames: list[str], subs: set[str]) -> list[dict[str, Any]]:
    out = []
    for text in frames:
        msg = loads(text)
        if (isinstance(msg, dict) and msg.get("method") == "eth_subscription"
                and isinstance(msg.get("params"), dict)
                and isinstance(msg["params"].get("subscription"), str)
                and msg["params"]["subscription"] in subs
                and isinstance(msg["params"].get("result"), dict)):
            out.append(msg["params"]["result"])
    return out


# -- ws_garbage ------------------------------------------------------------------------------
def test_ws_garbage_adds_bounded_garbage_frames_and_every_real_notification_still_arrives(
        ) -> None:
    async def main() -> None:
        rec = make_recording(12)
        async with Simulator(rec, speed=20, autostart=False) as sim, \
                websockets.connect(sim.urls["ws"], max_size=None) as ws:
            heads = await subscribe(ws, "newHeads")
            wallet = address_topic(WALLETS[0])
            logs = await subscribe(ws, "logs", {"topics": [None, None, [wallet]]}, req_id=2)
            sim.start_fault("ws_garbage", params={"share": 1.0, "max_items": 9, "seed": 4})
            sim.begin()
            frames = await drain(ws, sim, 12)
            got = real_notifications(frames, {heads, logs})
            want_logs = [lg for b in rec.blocks for lg in b.logs if lg["topics"][2] == wallet]
            assert [g["hash"] for g in got if "parentHash" in g] == [b.hash for b in rec.blocks]
            assert [g for g in got if "topics" in g and "parentHash" not in g] == want_logs
            kinds = malformed(sim, "ws_garbage")
            assert len(kinds) == 9 and set(kinds) <= set(WS_GARBAGE_KINDS)
            assert len(frames) - len(got) >= 9 - kinds.count("unknown_sub")
            assert sum(sim.status()["malformed"]["ws_garbage"].values()) == 9
            assert all(r["api"] == "rpc_ws" and r["conn"] == "c1"
                       for r in sim.history.events("malformed"))
    run(main)


@pytest.mark.parametrize("kind", WS_GARBAGE_KINDS)
def test_each_ws_garbage_kind_has_its_shape(kind: str) -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=20, autostart=False) as sim, \
                websockets.connect(sim.urls["ws"], max_size=None) as ws:
            heads = await subscribe(ws, "newHeads")
            sim.start_fault("ws_garbage", params={"share": 1.0, "max_items": 1,
                                                  "kinds": [kind]})
            sim.begin()
            await asyncio.wait_for(ws.recv(), TIMEOUT)  # the first real head
            text = await asyncio.wait_for(ws.recv(), TIMEOUT)
            msg = loads(text)
            if kind == "non_json":
                assert msg is None
            elif kind == "huge_number":  # past any sane parser's digit limit
                assert '{"number":' + "9" * 5000 + "," in text
            elif kind == "deep_nesting":  # 50,000 levels, whatever the recursion limit
                assert text == "[" * 50_000 + "]" * 50_000
            elif kind == "wrong_type":
                assert msg["params"] == [heads, 7] or not isinstance(
                    msg["params"]["result"], dict)
            elif kind == "unknown_sub":
                assert msg["params"]["subscription"] != heads
            elif kind == "unhashable_sub":
                assert msg["params"]["subscription"] == [heads]
            else:
                assert msg["id"] >= 10**9 and msg["result"] == "0x1"
            assert malformed(sim, "ws_garbage") == [kind]
    run(main)


# -- bad_log ---------------------------------------------------------------------------------
def test_bad_log_follows_a_logs_notification_and_the_valid_logs_all_arrive() -> None:
    async def main() -> None:
        rec = make_recording(10)
        async with Simulator(rec, speed=20, autostart=False) as sim, \
                websockets.connect(sim.urls["ws"]) as ws:
            heads = await subscribe(ws, "newHeads")
            logs = await subscribe(ws, "logs", {"topics": [None, None,
                                                           [address_topic(w) for w in WALLETS]]},
                                   req_id=2)
            sim.start_fault("bad_log", params={"share": 1.0, "max_items": 4, "seed": 2})
            sim.begin()
            got = real_notifications(await drain(ws, sim, 10), {heads, logs})
            real_tx = {lg["transactionHash"] for b in rec.blocks for lg in b.logs}
            want = [lg for b in rec.blocks for lg in b.logs]  # every log names a wallet
            got_logs = [g for g in got if "topics" in g]
            assert [g for g in got_logs if g.get("transactionHash") in real_tx] == want
            bad = [g for g in got_logs if g.get("transactionHash") not in real_tx]
            assert len(bad) == 4 and len(malformed(sim, "bad_log")) == 4
            for g, kind in zip(bad, malformed(sim, "bad_log"), strict=True):
                assert kind in BAD_LOG_KINDS
                if kind == "huge_block_number":
                    assert int(g["blockNumber"], 16) >= 2**63
                elif kind == "bad_hex_data":
                    assert "z" in g["data"]
                elif kind == "wrong_data_length":
                    assert (len(g["data"]) - 2) % 64 != 0
                else:
                    assert "logIndex" not in g
    run(main)


def test_bad_log_inside_an_eth_get_logs_answer_keeps_the_valid_logs() -> None:
    async def main() -> None:
        rec = make_recording(6)
        async with Simulator(rec, speed=1000) as sim, aiohttp.ClientSession() as http:
            await sim.wait_published(6)
            call = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                    "params": [{"fromBlock": "0x3e8", "toBlock": "latest"}]}
            async with sim.fault("bad_log", params={"share": 1.0, "max_items": 1}):
                async with http.post(sim.urls["http"], json=call) as resp:
                    result = (await resp.json())["result"]
                async with http.post(sim.urls["http"], json=call) as resp:
                    after_max = (await resp.json())["result"]
            every = [lg for b in rec.blocks for lg in b.logs]
            assert len(result) == len(every) + 1
            assert [lg for lg in result if lg in every] == every
            assert after_max == every  # max_items reached: the answer is clean again
            assert [r["api"] for r in sim.history.events("malformed")] == ["rpc_http"]
    run(main)


# -- head_jump -------------------------------------------------------------------------------
def test_head_jump_sends_a_head_far_ahead_that_never_materialises() -> None:
    async def main() -> None:
        rec = make_recording(6)
        async with Simulator(rec, speed=20, autostart=False) as sim, \
                websockets.connect(sim.urls["ws"]) as ws:
            heads = await subscribe(ws, "newHeads")
            sim.start_fault("head_jump", params={"share": 1.0, "max_items": 2,
                                                 "ahead": 2**62})
            sim.begin()
            got = real_notifications(await drain(ws, sim, 6), {heads})
            numbers = [int(g["number"], 16) for g in got]
            real = [b.number for b in rec.blocks]
            assert [n for n in numbers if n in real] == real
            jumps = [n for n in numbers if n not in real]
            assert jumps == [real[0] + 2**62, real[1] + 2**62]
            await ws.send('{"jsonrpc":"2.0","id":5,"method":"eth_blockNumber"}')
            reply = loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert int(reply["result"], 16) == real[-1]
            assert malformed(sim, "head_jump") == ["head_jump", "head_jump"]
    run(main)


# -- rpc_garbage -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", RPC_GARBAGE_KINDS)
def test_rpc_garbage_replaces_one_http_answer_of_each_kind(kind: str) -> None:
    async def main() -> None:
        async with Simulator(make_recording(3), speed=1000) as sim, \
                aiohttp.ClientSession() as http:
            await sim.wait_published(3)
            call = {"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber"}
            async with sim.fault("rpc_garbage", params={"share": 1.0, "max_items": 1,
                                                        "kinds": [kind]}):
                async with http.post(sim.urls["http"], json=call) as resp:
                    status, ctype, raw = resp.status, resp.content_type, await resp.read()
                async with http.post(sim.urls["http"], json=call) as resp:
                    clean = await resp.json()
            assert status == 200 and clean == {"jsonrpc": "2.0", "id": 7, "result": "0x3ea"}
            msg = loads(raw)
            if kind == "html":
                assert ctype == "text/html" and raw.startswith(b"<!DOCTYPE html>")
            elif kind == "truncated":
                assert msg is None and raw and clean
            elif kind == "wrong_id":
                assert msg["id"] == 1_000_007 and msg["result"] == "0x3ea"
            else:
                assert msg["id"] == 7 and not isinstance(msg["result"], str)
            assert malformed(sim, "rpc_garbage") == [kind]
    run(main)


# -- explorer_garbage ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", EXPLORER_GARBAGE_KINDS)
def test_explorer_garbage_of_each_kind_keeps_the_valid_rows_where_it_sends_rows(
        kind: str) -> None:
    async def main() -> None:
        settings = SimSettings(explorer={"rate_per_s": 1000.0})
        async with Simulator(make_recording(6), speed=1000, settings=settings) as sim, \
                aiohttp.ClientSession() as http:
            await sim.wait_published(6)
            while sim.explorer.indexed_head is None or sim.explorer.indexed_head < 1003:
                async with http.get(sim.urls["explorer"], params={
                        "chainid": "137", "module": "proxy", "action": "eth_blockNumber",
                        "apikey": KEY}) as resp:
                    await resp.read()
                await asyncio.sleep(0.01)  # index lag: a few simulated seconds
            q = {"chainid": "137", "module": "logs", "action": "getLogs", "apikey": KEY,
                 "topic2": address_topic(WALLETS[0]), "fromBlock": "0", "toBlock": "1003"}
            async with http.get(sim.urls["explorer"], params=q) as resp:
                clean = await resp.json()
            garbage = {"share": 1.0, "max_items": 1, "kinds": [kind]}
            async with sim.fault("explorer_garbage", params=garbage), \
                    http.get(sim.urls["explorer"], params=q) as resp:
                status, ctype, raw = resp.status, resp.content_type, await resp.read()
            assert status == 200 and clean["status"] == "1" and clean["result"]
            msg = loads(raw)
            if kind == "html200":
                assert ctype == "text/html" and msg is None
            elif kind == "status_mismatch":
                assert (msg["status"], msg["message"]) == ("0", "OK")
                assert msg["result"] == clean["result"]
            else:
                rows = msg["result"]
                assert len(rows) == len(clean["result"]) + 1
                assert [r for r in rows if r in clean["result"]] == clean["result"]
            assert malformed(sim, "explorer_garbage") == [kind]
            assert sim.history.events("malformed")[0]["api"] == "explorer"
    run(main)


# -- the core: seeded, bounded, scheduled -----------------------------------------------------
def test_malformed_draws_are_seeded_and_bounded_by_max_items() -> None:
    def kinds(seed: int) -> list[str]:
        board = FaultBoard()
        board.start(make_spec("ws_garbage", params={"share": 0.5, "max_items": 20,
                                                    "seed": seed}), 0, None)
        nem = Nemesis(board)
        out = []
        prefix = ('{"jsonrpc":"2.0","method":"eth_subscription","params":'
                  '{"subscription":"0xab","result":')
        for _ in range(200):
            plan = nem.notify(NotifyCtx("c1", "newHeads", prefix, '{"number":"0x1"}'))
            out += [inj.kind for inj, _ in plan.extra]
        return out
    assert kinds(1) == kinds(1) and kinds(1) != kinds(2)
    assert len(kinds(1)) == 20


@pytest.mark.parametrize(("params", "field"), [
    ({"kinds": ["nope"]}, "params.kinds"), ({"kinds": []}, "params.kinds"),
    ({"share": 2}, "params.share"), ({"max_items": -1}, "params.max_items"),
])
def test_malformed_params_are_checked(params: dict[str, Any], field: str) -> None:
    from simulator.faults import FaultError
    with pytest.raises(FaultError, match=field.replace(".", r"\.")):
        make_spec("ws_garbage", params=params)
    with pytest.raises(FaultError, match=r"params\.ahead"):
        make_spec("head_jump", params={"ahead": 0})


def test_malformed_faults_are_scheduled_like_the_others_and_recorded() -> None:
    plan = FaultPlan.parse([
        {"name": "ws_garbage", "at": 0.5, "duration": 30, "params": {"share": 1.0}},
        {"name": "head_jump", "at": 0.5, "duration": 30, "params": {"share": 1.0,
                                                                    "max_items": 1}},
    ])
    assert [w.spec.name for w in plan.windows(100)] == ["head_jump", "ws_garbage"]

    async def main() -> None:
        settings = SimSettings(faults=tuple(plan.entries))
        async with Simulator(make_recording(8), speed=10, settings=settings,
                             autostart=False) as sim, \
                websockets.connect(sim.urls["ws"], max_size=None) as ws:
            await subscribe(ws, "newHeads")
            sim.begin()
            await drain(ws, sim, 8)
            names = [r["name"] for r in sim.history.events("fault_start")]
            assert sorted(names) == ["head_jump", "ws_garbage"]
            assert malformed(sim, "head_jump") == ["head_jump"]
            assert malformed(sim, "ws_garbage")
    run(main)
