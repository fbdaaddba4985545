"""Provider profiles: each profile's eth_getLogs range / result caps, batch limits and exact
error texts, over real loopback sockets (HTTP and WebSocket JSON-RPC)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from polyvocab import ORDER_FILLED_V1, address_topic
from simulator.providers import PROFILES
from simulator.server import Simulator
from simulator.settings import NodeSettings, SettingsError, SimSettings, settings_from_dict
from tests.simulator.node_fixtures import WALLETS, make_recording

FIRST, BLOCKS = 1000, 30  # 2 OrderFilled logs per block


def fills(a: int, b: int, **extra: Any) -> dict[str, Any]:
    return {"fromBlock": hex(FIRST + a), "toBlock": hex(FIRST + b),
            "topics": [ORDER_FILLED_V1], **extra}


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> Any:
    async with http.post(url, json=body) as resp:
        return await resp.json()


async def served(profile: str, calls: list[dict[str, Any]], *, ws_batch: int = 0,
                 **limits: Any) -> tuple[list[Any], list[Any]]:
    """Each ``eth_getLogs`` filter of ``calls`` over HTTP against a fresh node of
    ``profile`` (numbers scaled down by ``limits``) with every block published; plus the
    answer to a WebSocket batch of ``ws_batch`` calls and an HTTP batch of the same size."""
    settings = SimSettings(node=NodeSettings(profile=profile, **limits))
    async with Simulator(make_recording(BLOCKS), settings=settings, speed=1e6) as sim, \
            aiohttp.ClientSession() as http:
        url = sim.urls["http"]
        await sim.wait_published(BLOCKS)
        answers = [await post(http, url, {"jsonrpc": "2.0", "id": i, "method": "eth_getLogs",
                                          "params": [flt]}) for i, flt in enumerate(calls)]
        batches: list[Any] = []
        if ws_batch:
            batch = [{"jsonrpc": "2.0", "id": i, "method": "eth_chainId"}
                     for i in range(ws_batch)]
            async with http.ws_connect(sim.urls["ws"]) as ws:
                await ws.send_str(json.dumps(batch))
                batches.append(json.loads((await asyncio.wait_for(ws.receive(), 20)).data))
            batches.append(await post(http, url, batch))
        return answers, batches


def test_each_profile_carries_its_documented_numbers() -> None:
    expected = {  # name: (range, results, range rule, HTTP batch, WS batch)
        "geth": (None, 10000, "hard", 1000, 1000),
        "alchemy": (2000, 10000, "soft", 1000, 20),
        "infura": (10000, 10000, "hard", None, None),
        "quicknode": (10000, None, "hard", None, None),
        "public": (3500, 10000, "hard", 100, 100),
    }
    assert set(PROFILES) == set(expected)
    for name, (rng, results, rule, batch, ws_batch) in expected.items():
        node = NodeSettings(profile=name)
        assert (node.logs_max_range, node.logs_max_results, PROFILES[name].range_rule,
                node.max_batch, node.max_ws_batch) == (rng, results, rule, batch, ws_batch)
        p = PROFILES[name]
        assert p.sources, f"{name}: every profile names its sources"
        assert p.unconfirmed <= {"logs_max_range", "logs_max_results", "max_batch",
                                 "max_ws_batch", "max_subscriptions", "max_ws_batch_error",
                                 "range_error_code", "beyond_head"}


def test_profile_is_chosen_in_the_config_and_numbers_override_it() -> None:
    s = settings_from_dict({"node": {"profile": "quicknode", "logs_max_range": 500}})
    assert (s.node.profile, s.node.logs_max_range, s.node.logs_max_results) == (
        "quicknode", 500, None)
    assert NodeSettings().profile == "alchemy"
    with pytest.raises(SettingsError, match=r"unknown provider profile 'nope'.*alchemy"):
        settings_from_dict({"node": {"profile": "nope"}})


def test_alchemy_serves_any_range_under_the_log_cap_and_refuses_past_it() -> None:
    """The text says "...or you can request any block range with a cap of 10K logs": a range
    past the free range is refused only when the answer passes the cap."""
    w = address_topic(WALLETS[0])
    answers, batches = asyncio.run(served("alchemy", [
        fills(0, 4),  # 5 blocks = the free range: 10 logs, over the cap, no limit
        fills(0, 9, topics=[ORDER_FILLED_V1, None, [w]]),  # 10 blocks, 6 logs <= 8
        fills(0, 29),  # 30 blocks, 60 logs > 8
    ], logs_max_range=5, logs_max_results=8, ws_batch=21))
    assert len(answers[0]["result"]) == 10 and len(answers[1]["result"]) == 6
    assert answers[2]["error"] == {"code": -32602, "message": (
        "Log response size exceeded. You can make eth_getLogs requests with up to a 5 block "
        "range and no limit on the response size, or you can request any block range with a "
        "cap of 8 logs in the response. Based on your parameters and the response size "
        "limit, this block range should work: [0x3e8, 0x3eb]")}
    ws, http = batches  # Alchemy: 20 per WebSocket batch, 1000 over HTTP
    # geth/bor's shape: a batch of one error carrying the first call's id
    assert ws == [{"jsonrpc": "2.0", "id": 0,
                   "error": {"code": -32600, "message": "batch too large"}}]
    assert len(http) == 21 and all("result" in a for a in http)


def test_alchemy_with_its_real_numbers_serves_a_10k_block_range_of_few_logs() -> None:
    """The old node refused any range over 2,000 blocks; 2,500 blocks of 5,000 logs pass."""
    from simulator.chain import Chain
    from simulator.jsonrpc import JsonRpc

    rec = make_recording(2500, noise=False, with_txs=False)
    chain = Chain(rec, settings=SimSettings(), t0_ns=0)
    chain.advance(10**13)
    rpc = JsonRpc(chain, chain.settings.node)
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
            "params": [{"fromBlock": hex(FIRST), "toBlock": hex(FIRST + 2499)}]}
    reply = json.loads(rpc.handle(json.dumps(body)).text or "{}")
    assert len(reply["result"]) == 5000


def test_infura_refuses_wide_ranges_and_suggests_a_range_past_its_cap() -> None:
    answers, _ = asyncio.run(served("infura", [fills(0, 5), fills(0, 4), fills(0, 3)],
                                    logs_max_range=5, logs_max_results=8))
    assert answers[0]["error"] == {"code": -32602, "message": "range 6 exceeds limit of 5"}
    assert answers[1]["error"] == {"code": -32005, "message": (
        "query returned more than 8 results. Try with this block range [0x3E8, 0x3EB].")}
    assert len(answers[2]["result"]) == 8


def test_quicknode_refuses_past_its_range_with_no_result_cap() -> None:
    answers, _ = asyncio.run(served("quicknode", [fills(0, 5), fills(0, 4)],
                                    logs_max_range=5))
    assert answers[0]["error"] == {"code": -32614,
                                   "message": "eth_getLogs is limited to a 5 range"}
    assert len(answers[1]["result"]) == 10


def test_geth_has_no_range_limit_and_caps_results() -> None:
    answers, batches = asyncio.run(served("geth", [fills(0, 29), fills(0, 4)],
                                          logs_max_results=8, max_ws_batch=3, ws_batch=4))
    assert answers[0]["error"] == {"code": -32005,
                                   "message": "query returned more than 8 results"}
    assert answers[1]["error"]["code"] == -32005  # 10 logs > 8, however short the range
    assert batches[0][0]["error"]["message"] == "batch too large" and len(batches[1]) == 4


def test_public_rpc_refuses_past_its_range() -> None:
    answers, _ = asyncio.run(served("public", [fills(0, 5), fills(0, 3)], logs_max_range=5))
    assert answers[0]["error"] == {
        "code": -32000, "message": "eth_getLogs block range too large, range: 6, max: 5"}
    assert len(answers[1]["result"]) == 8


@pytest.mark.parametrize(("name", "refused"), [("geth", True), ("alchemy", False)])
def test_a_range_past_the_head_is_refused_by_geth_and_clamped_by_the_others(
        name: str, refused: bool) -> None:
    """geth answers an eth_getLogs whose toBlock is above its head with -32602 (a client
    behind a load balancer can tell "not there yet" from "no logs"); a profile that clamps
    answers with the logs it has. Explicit ranges only: "latest" is never past the head."""
    past = {"fromBlock": hex(FIRST + 28), "toBlock": hex(FIRST + BLOCKS + 5),
            "topics": [ORDER_FILLED_V1]}
    future = dict(past, fromBlock=hex(FIRST + BLOCKS + 2))
    latest = dict(past, toBlock="latest")
    answers, _ = asyncio.run(served(name, [past, future, latest]))
    assert len(answers[2]["result"]) == 4  # blocks 28 and 29, 2 logs each
    if refused:
        for a in answers[:2]:
            assert a["error"] == {"code": -32602,
                                  "message": "block range extends beyond current head block"}
    else:
        assert len(answers[0]["result"]) == 4 and answers[1]["result"] == []
