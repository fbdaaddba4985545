"""rpc_lag: the provider's HTTP node answers a few blocks behind its WebSocket node.

Core tests (synchronous) pin the lagging view of the chain; the loopback tests put the
fault on a real node and call it over HTTP and WebSocket. The loopback chains are still
while they are asked: every block but the last is history (published at start), the
replay is started by hand and then has one block to publish.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import websockets

from polyvocab import ORDER_FILLED_V1
from simulator.chain import Chain
from simulator.faults import FaultError, FaultPlan, make_spec
from simulator.jsonrpc import JsonRpc
from simulator.nemesis import FaultBoard, Nemesis
from simulator.server import Simulator
from simulator.settings import SimSettings
from tests.simulator.node_fixtures import make_recording

TIMEOUT = 20
FIRST = 1000  # make_recording's first block number


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 90))


def still_chain(n_blocks: int = 12) -> Chain:
    """Blocks FIRST .. FIRST + n - 2 published (history), the last one still to come."""
    return Chain(make_recording(n_blocks, trades_per_block=3),
                 settings=SimSettings(history_blocks=n_blocks - 1))


def hash_at(chain: Chain, number: int) -> str:
    block = chain.block(number)
    assert block is not None
    return block.hash


def call(rpc: JsonRpc, method: str, *params: Any) -> Any:
    reply = rpc.handle(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                                   "params": list(params)}))
    assert reply.text is not None
    return json.loads(reply.text)


def result(rpc: JsonRpc, method: str, *params: Any) -> Any:
    answer = call(rpc, method, *params)
    assert "error" not in answer, answer
    return answer["result"]


def log_filter(start: int | str, stop: int | str) -> dict[str, Any]:
    def q(x: int | str) -> str:
        return hex(x) if isinstance(x, int) else x
    return {"fromBlock": q(start), "toBlock": q(stop), "topics": [ORDER_FILLED_V1]}


# -- params -------------------------------------------------------------------------------
def test_rpc_lag_targets_http_json_rpc_and_lags_one_block_by_default() -> None:
    spec = make_spec("rpc_lag")
    assert (spec.target, spec.params) == ("rpc_http", {"blocks": 1})
    assert make_spec("rpc_lag", params={"blocks": 64.0}).params == {"blocks": 64}
    windows = FaultPlan.parse([{"name": "rpc_lag", "every": 60, "duration": 20,
                                "params": {"blocks": 3}}]).windows(130)
    assert [(w.start_s, w.stop_s, w.spec.params) for w in windows] == [
        (60.0, 80.0, {"blocks": 3}), (120.0, 140.0, {"blocks": 3})]


@pytest.mark.parametrize(("params", "target", "message"), [
    ({"blocks": 0}, None, "params.blocks: expected a number in [1, 64], got 0"),
    ({"blocks": 65}, None, "params.blocks: expected a number in [1, 64], got 65"),
    ({"blocks": 2.5}, None, "params.blocks: expected a whole number of blocks in [1, 64]"),
    ({"blocks": "2"}, None, "params.blocks: expected int, got '2'"),
    ({"blocks": True}, None, "params.blocks: expected int, got True"),
    ({"depth": 2}, None, "params: unknown for rpc_lag: depth"),
    ({}, "ws", "target: rpc_lag targets 'rpc_http', got 'ws'"),
])
def test_bad_rpc_lag_requests_are_refused_naming_the_field(
        params: dict[str, Any], target: str | None, message: str) -> None:
    with pytest.raises(FaultError) as info:
        make_spec("rpc_lag", target, params)
    assert message in str(info.value)
    with pytest.raises(FaultError, match=r"faults\[0\]"):  # a schedule names its entry too
        FaultPlan.parse([{"name": "rpc_lag", "at": 1, "params": params,
                          **({"target": target} if target else {})}])


def test_the_nemesis_answers_the_largest_lag_of_the_active_ones() -> None:
    board = FaultBoard()
    nem = Nemesis(board)
    assert nem.http_lag() == 0
    board.start(make_spec("rpc_lag", params={"blocks": 2}), 0, None)
    first = board.start(make_spec("rpc_lag", params={"blocks": 5}), 0, None)
    board.start(make_spec("rpc_errors", params={"share": 0.0}), 0, None)
    assert nem.http_lag() == 5
    board.stop(first.id)
    assert nem.http_lag() == 2


# -- the lagging view of the chain (sans-I/O) -----------------------------------------------
def test_the_lagging_node_has_no_block_above_its_head() -> None:
    chain = still_chain()
    head = chain.head_number
    assert head == FIRST + 10
    rpc = JsonRpc(chain).lagging(3)
    assert result(rpc, "eth_blockNumber") == hex(head - 3)
    assert result(rpc, "eth_getBlockByNumber", "latest", False)["number"] == hex(head - 3)
    # geth v1.17's pending block: built on the (lagging) node's head
    pending = result(rpc, "eth_getBlockByNumber", "pending", False)
    assert pending["number"] == hex(head - 2) and pending["hash"] is None
    assert pending["parentHash"] == result(rpc, "eth_getBlockByNumber", "latest", False)["hash"]
    assert result(rpc, "eth_getBlockByNumber", hex(head - 2), False) is None
    assert result(rpc, "eth_getBlockByNumber", hex(head - 3), False) is not None
    above = chain.block(head)
    assert above is not None
    assert result(rpc, "eth_getBlockByHash", above.hash, False) is None
    assert result(rpc, "eth_getTransactionByHash", above.tx_hashes[0]) is None
    assert result(rpc, "eth_getTransactionReceipt", above.tx_hashes[0]) is None
    assert call(rpc, "eth_getLogs", {"blockHash": above.hash})["error"]["message"] \
        == "unknown block"
    # eth_getLogs stops at its head, as the node does at its own: a range across it is cut
    # there, a range wholly above it is empty, a fromBlock above "latest" is refused
    logs = result(rpc, "eth_getLogs", log_filter(head - 5, head))
    assert sorted({int(lg["blockNumber"], 16) for lg in logs}) == list(range(head - 5,
                                                                           head - 2))
    assert result(rpc, "eth_getLogs", log_filter(head - 2, head)) == []
    assert call(rpc, "eth_getLogs", log_filter(head - 1, "latest"))["error"]["code"] == -32602
    latest = result(rpc, "eth_getLogs", {"topics": [ORDER_FILLED_V1]})
    assert {lg["blockNumber"] for lg in latest} == {hex(head - 3)}
    # the node at the head is as it was
    assert result(JsonRpc(chain), "eth_blockNumber") == hex(head)


def test_the_lagging_node_still_has_the_blocks_a_reorg_since_its_head_replaced() -> None:
    chain = still_chain()
    head = chain.head_number
    old = {n: hash_at(chain, n) for n in range(head - 2, head + 1)}
    reorg = chain.reorg(3, 0, seed=1, move_share=0.0, vanish_share=0.5)
    assert reorg is not None
    new = {b.number: b for b in reorg.new}
    rpc = JsonRpc(chain)
    lag1, lag2, lag4 = rpc.lagging(1), rpc.lagging(2), rpc.lagging(4)
    # right after the reorg (made at the head): one and two behind, the replaced blocks
    for lag, view in ((1, lag1), (2, lag2)):
        for n in range(head - 2, head - lag + 1):
            block = result(view, "eth_getBlockByNumber", hex(n), False)
            assert block["hash"] == old[n], (lag, n)
            assert result(view, "eth_getBlockByHash", new[n].hash, False) is None
            assert result(view, "eth_getBlockByHash", old[n], False)["number"] == hex(n)
    logs = result(lag1, "eth_getLogs", log_filter(head - 2, head - 1))
    assert {lg["blockHash"] for lg in logs} == {old[head - 2], old[head - 1]}
    assert len(logs) == 6  # 2 blocks x 3 OrderFilled, vanished ones included
    assert len(result(lag1, "eth_getLogs", {"blockHash": old[head - 1]})) == 6
    # four behind: below the replaced heights, nothing differs
    assert result(lag4, "eth_getBlockByNumber", hex(head - 4), False)["hash"] \
        == result(rpc, "eth_getBlockByNumber", hex(head - 4), False)["hash"]
    # the head moves on one block: one behind is at the reorg's height, so it has the fork
    assert chain.advance(10**15, limit=1)
    assert result(lag1, "eth_blockNumber") == hex(head)
    assert result(lag1, "eth_getBlockByNumber", hex(head), False)["hash"] == new[head].hash
    assert result(lag2, "eth_getBlockByNumber", hex(head - 1), False)["hash"] == old[head - 1]


def test_where_two_reorgs_replaced_a_height_the_lagging_node_has_the_first_block() -> None:
    chain = still_chain()
    head = chain.head_number
    original = chain.block(head - 1)
    assert original is not None
    chain.reorg(2, 0, seed=1)
    between = hash_at(chain, head - 1)
    chain.reorg(2, 0, seed=2)  # replaces `between` at head - 1
    assert len({original.hash, between, hash_at(chain, head - 1)}) == 3
    view = JsonRpc(chain).lagging(1)
    assert result(view, "eth_getBlockByNumber", hex(head - 1), False)["hash"] == original.hash


# -- over loopback ----------------------------------------------------------------------------
async def rpc_http(h: aiohttp.ClientSession, url: str, method: str, *params: Any) -> Any:
    async with h.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                 "params": list(params)}) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert "error" not in answer, answer
    return answer["result"]


async def rpc_ws(ws: Any, req_id: int, method: str, *params: Any) -> Any:
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method,
                              "params": list(params)}))
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if msg.get("id") == req_id:
            return msg["result"]


async def start_over_api(h: aiohttp.ClientSession, sim: Simulator, body: dict[str, Any]
                         ) -> tuple[int, dict[str, Any]]:
    async with h.post(sim.urls["faults"], json=body) as resp:
        return resp.status, await resp.json()


def still_sim(**kw: Any) -> Simulator:
    rec = make_recording(12, trades_per_block=3)
    return Simulator(rec, settings=SimSettings(history_blocks=11), autostart=False, **kw)


def test_http_lags_while_the_websocket_feed_and_ws_calls_do_not() -> None:
    async def main() -> None:
        async with still_sim(speed=10) as sim, aiohttp.ClientSession() as h, \
                websockets.connect(sim.urls["ws"]) as ws:
            url = sim.urls["http"]
            head = sim.chain.head_number
            heads = await rpc_ws(ws, 1, "eth_subscribe", "newHeads")
            await rpc_ws(ws, 2, "eth_subscribe", "logs", {"topics": [ORDER_FILLED_V1]})
            status, started = await start_over_api(h, sim, {"name": "rpc_lag",
                                                            "params": {"blocks": 2}})
            assert status == 200 and started["fault"]["target"] == "rpc_http"
            assert await rpc_http(h, url, "eth_blockNumber") == hex(head - 2)
            assert await rpc_http(h, url, "eth_getBlockByNumber", hex(head - 1), False) is None
            latest = await rpc_http(h, url, "eth_getBlockByNumber", "latest", False)
            assert latest["number"] == hex(head - 2)
            logs = await rpc_http(h, url, "eth_getLogs", log_filter(head - 4, head))
            assert logs and max(int(lg["blockNumber"], 16) for lg in logs) == head - 2
            # the WebSocket node is at the head, and its feed is not held back: the next
            # block's head and logs arrive while the HTTP node is still two behind
            assert await rpc_ws(ws, 3, "eth_blockNumber") == hex(head)
            sim.begin()
            got_head, got_logs = None, 0
            while got_head is None or got_logs < 3:
                msg = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                if msg["params"]["subscription"] == heads:
                    got_head = int(msg["params"]["result"]["number"], 16)
                else:
                    got_logs += 1
                    assert int(msg["params"]["result"]["blockNumber"], 16) == head + 1
            assert got_head == head + 1 and sim.chain.head_number == head + 1
            assert await rpc_http(h, url, "eth_blockNumber") == hex(head - 1)
            assert await rpc_http(h, url, "eth_getBlockByNumber", hex(head), False) is None
            assert await rpc_ws(ws, 4, "eth_blockNumber") == hex(head + 1)
            rows = [r["name"] for r in sim.history.events("fault_start")]
            assert rows == ["rpc_lag"]
    run(main)


def test_the_fault_ends_and_the_http_answers_catch_up() -> None:
    async def main() -> None:
        async with still_sim(speed=5) as sim, aiohttp.ClientSession() as h:
            url = sim.urls["http"]
            sim.begin()
            await sim.wait_published(12, TIMEOUT)
            head = sim.chain.head_number
            # 3 simulated s at speed 5: 0.6 s of loop time
            status, _ = await start_over_api(h, sim, {"name": "rpc_lag", "duration": 3,
                                                      "params": {"blocks": 3}})
            assert status == 200
            assert await rpc_http(h, url, "eth_blockNumber") == hex(head - 3)
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while await rpc_http(h, url, "eth_blockNumber") != hex(head):
                assert asyncio.get_running_loop().time() < deadline, "the HTTP node never caught up"
                await asyncio.sleep(0.05)  # polling interval under a deadline
            block = await rpc_http(h, url, "eth_getBlockByNumber", hex(head), False)
            assert block["hash"] == hash_at(sim.chain, head)
            logs = await rpc_http(h, url, "eth_getLogs", log_filter(head, head))
            assert len(logs) == 3
            events = [(r["event"], r["name"]) for r in sim.history.rows or []
                      if r["event"] in ("fault_start", "fault_stop")]
            assert events == [("fault_start", "rpc_lag"), ("fault_stop", "rpc_lag")]
    run(main)


def test_a_scheduled_rpc_lag_starts_and_stops_like_any_fault() -> None:
    async def main() -> None:
        settings = SimSettings(faults=({"name": "rpc_lag", "at": 0, "duration": 2,
                                        "params": {"blocks": 4}},))
        async with Simulator(make_recording(8), settings=settings, speed=10) as sim:
            deadline = asyncio.get_running_loop().time() + TIMEOUT
            while len(sim.history.events("fault_stop")) < 1:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.02)  # polling interval under a deadline
            start = sim.history.events("fault_start")[0]
            assert (start["name"], start["target"], start["params"]) == (
                "rpc_lag", "rpc_http", {"blocks": 4})
    run(main)


@pytest.mark.parametrize(("params", "message"), [
    ({"blocks": 0}, "params.blocks: expected a number in [1, 64], got 0"),
    ({"blocks": 100}, "params.blocks: expected a number in [1, 64], got 100"),
    ({"blocks": 1.5}, "params.blocks: expected a whole number of blocks in [1, 64], got 1.5"),
])
def test_bad_params_are_refused_over_the_control_api(params: dict[str, Any],
                                                     message: str) -> None:
    async def main() -> None:
        async with still_sim() as sim, aiohttp.ClientSession() as h:
            status, body = await start_over_api(h, sim, {"name": "rpc_lag", "params": params})
            assert (status, body) == (400, {"error": message})
            assert not sim.board.active and not sim.history.events("fault_start")
    run(main)


def test_right_after_a_reorg_the_lagging_http_node_answers_from_the_replaced_chain() -> None:
    async def main() -> None:
        async with still_sim(speed=10) as sim, aiohttp.ClientSession() as h, \
                websockets.connect(sim.urls["ws"]) as ws:
            url = sim.urls["http"]
            head = sim.chain.head_number
            old = {n: hash_at(sim.chain, n) for n in (head - 2, head - 1)}
            sim.start_fault("rpc_lag", params={"blocks": 1})
            sim.start_fault("reorg", params={"depth": 3, "seed": 3})
            new = {n: hash_at(sim.chain, n) for n in (head - 2, head - 1, head)}
            assert not set(old.values()) & set(new.values())
            for n in (head - 2, head - 1):
                block = await rpc_http(h, url, "eth_getBlockByNumber", hex(n), False)
                assert block["hash"] == old[n]
                assert await rpc_http(h, url, "eth_getBlockByHash", new[n], False) is None
            assert await rpc_http(h, url, "eth_getBlockByNumber", hex(head), False) is None
            logs = await rpc_http(h, url, "eth_getLogs", log_filter(head - 2, "latest"))
            assert {lg["blockHash"] for lg in logs} == set(old.values())
            # over WebSocket, the fork
            ws_block = await rpc_ws(ws, 1, "eth_getBlockByNumber", hex(head - 1), False)
            assert ws_block["hash"] == new[head - 1]
            # one block later the HTTP node is at the reorg's height: it has the fork too
            sim.begin()
            await sim.wait_published(12, TIMEOUT)
            for n in (head - 2, head - 1, head):
                block = await rpc_http(h, url, "eth_getBlockByNumber", hex(n), False)
                assert block["hash"] == new[n]
    run(main)
