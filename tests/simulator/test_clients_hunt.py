"""The node as a real client meets it: arguments counted as geth counts them.

geth decodes a call's params against the method's Go signature (rpc/json.go
``parseArgumentArray``): one argument past the last is "too many arguments, want at most N",
a required one left out is "missing value for required argument N" (both -32602), and a
JSON ``null`` for a ``bool`` is no error (Go leaves it false). web3.py and ethers always send
``[block, fullTx]``; a hand-written client that sends ``["latest"]`` must fail here as it
fails on a node, not pass the simulator and break on the first real provider.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording

TIMEOUT_S = 20


async def _call(http: aiohttp.ClientSession, url: str, method: str,
                params: list[Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    async with http.post(url, data=json.dumps(body),
                         headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 200
        answer: dict[str, Any] = await resp.json()
    assert answer["id"] == 7
    return answer


def test_arguments_are_counted_as_geth_counts_them() -> None:
    too_many = {"code": -32602, "message": "too many arguments, want at most {}"}

    async def main() -> None:
        async with Simulator(make_recording(3), speed=1000) as sim, \
                aiohttp.ClientSession() as http:
            await sim.wait_published(3, TIMEOUT_S)
            url = sim.urls["http"]
            head = (await _call(http, url, "eth_blockNumber", []))["result"]
            block = (await _call(http, url, "eth_getBlockByNumber", [head, False]))["result"]
            tx = block["transactions"][0]

            async def error(method: str, params: list[Any]) -> dict[str, Any]:
                answer = await _call(http, url, method, params)
                assert "result" not in answer, (method, params, answer)
                err: dict[str, Any] = answer["error"]
                return err

            # a required fullTx left out: the block here, an error from geth
            assert await error("eth_getBlockByNumber", ["latest"]) == {
                "code": -32602, "message": "missing value for required argument 1"}
            assert await error("eth_getBlockByHash", [block["hash"]]) == {
                "code": -32602, "message": "missing value for required argument 1"}
            assert await error("eth_getLogs", []) == {
                "code": -32602, "message": "missing value for required argument 0"}
            # one argument too many, for methods with none, one and two
            for method, params, most in [
                    ("eth_chainId", [1], 0), ("eth_blockNumber", ["latest"], 0),
                    ("net_version", [None], 0), ("eth_newBlockFilter", [{}], 0),
                    ("eth_getLogs", [{"blockHash": block["hash"]}, True], 1),
                    ("eth_getTransactionReceipt", [tx, "latest"], 1),
                    ("eth_getTransactionByHash", [tx, 0], 1),
                    ("eth_getBlockByNumber", [head, False, "extra"], 2),
                    ("eth_getBlockByHash", [block["hash"], True, None], 2)]:
                assert await error(method, params) == {
                    **too_many, "message": too_many["message"].format(most)}, method
            # an argument is decoded before the count is checked (geth's order)
            assert (await error("eth_getBlockByNumber", ["0xzz", False, 1]))["message"] \
                .startswith("invalid argument 0")
            # null for the bool is Go's zero value: the block, with hashes only
            by_null = (await _call(http, url, "eth_getBlockByNumber", [head, None]))["result"]
            assert by_null == block
            # the calls real clients make still answer
            assert (await _call(http, url, "eth_getBlockByNumber", [head, True]))["result"][
                "transactions"][0]["hash"] == tx
            assert (await _call(http, url, "eth_getTransactionReceipt", [tx]))["result"][
                "transactionHash"] == tx
            assert (await _call(http, url, "eth_chainId", []))["result"] == "0x89"

    asyncio.run(asyncio.wait_for(main(), 60))


async def _ws_call(ws: aiohttp.ClientWebSocketResponse, req_id: int, method: str,
                   params: list[Any]) -> dict[str, Any]:
    """Send one call and read up to its answer (no notification can come first: the
    replay has not started)."""
    await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method,
                                  "params": params}))
    answer: dict[str, Any] = json.loads((await ws.receive(timeout=TIMEOUT_S)).data)
    assert answer["id"] == req_id
    return answer


def test_a_logs_subscription_keeps_to_its_block_range_as_geth_does() -> None:
    """geth's SubscribeLogs (eth/filters/filter_system.go): fromBlock/toBlock of an
    ``eth_subscribe "logs"`` filter are checked ("pending" refused, latest..N, toBlock
    earliest, safe, finalized and N..M with N > M are "invalid block range params") and
    only the logs of blocks in the range are sent (no backfill). The simulator ignored both: a
    subscription with a toBlock already passed got every new log, one with "pending" or an
    inverted range was accepted."""
    rec = make_recording(6, first=1000)
    # -32602 since geth v1.17 (#33320), -32000 before
    pending = {"code": -32602, "message": "pending logs are not supported"}
    invalid = {"code": -32602, "message": "invalid block range params"}

    async def main() -> None:
        async with Simulator(rec, speed=1000, autostart=False) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            refused = [({"fromBlock": "pending"}, pending), ({"toBlock": "pending"}, pending),
                       # fromBlock "earliest" is taken since geth v1.15.8 (#31361)
                       ({"toBlock": "earliest"}, invalid), ({"toBlock": "0x3ea"}, invalid),
                       ({"fromBlock": "latest", "toBlock": "0x3ea"}, invalid),
                       ({"fromBlock": "0x3eb", "toBlock": "0x3ea"}, invalid),
                       ({"fromBlock": "0x3e8", "toBlock": "safe"}, invalid)]
            for n, (bounds, err) in enumerate(refused):
                answer = await _ws_call(ws, 100 + n, "eth_subscribe", ["logs", bounds])
                assert answer.get("error") == err, (bounds, answer)
                answer = await _call(http, sim.urls["http"], "eth_newFilter", [bounds])
                assert answer.get("error") == err, (bounds, answer)
            assert (await _ws_call(ws, 99, "eth_subscribe", ["logs", {"fromBlock": "0xzz"}]))[
                "error"]["message"].startswith("invalid argument 1")
            subs = {}
            for name, bounds in [("open", {}), ("latest", {"fromBlock": "latest"}),
                                 ("from", {"fromBlock": hex(1003)}),
                                 ("between", {"fromBlock": hex(1001), "toBlock": hex(1002)})]:
                answer = await _ws_call(ws, len(subs) + 1, "eth_subscribe", ["logs", bounds])
                subs[answer["result"]] = name
            heads = (await _ws_call(ws, 9, "eth_subscribe", ["newHeads"]))["result"]
            sim.begin()
            seen: dict[str, set[int]] = {name: set() for name in subs.values()}
            last = rec.blocks[-1].number
            while True:  # the last head comes after the last block's logs
                note = json.loads((await ws.receive(timeout=TIMEOUT_S)).data)["params"]
                if note["subscription"] == heads:
                    if int(note["result"]["number"], 16) == last:
                        break
                    continue
                seen[subs[note["subscription"]]].add(int(note["result"]["blockNumber"], 16))
            every = {b.number for b in rec.blocks}
            assert seen["open"] == seen["latest"] == every
            assert seen["from"] == {n for n in every if n >= 1003}
            assert seen["between"] == {1001, 1002}

    asyncio.run(asyncio.wait_for(main(), 60))
