"""Fidelity hunt: the mock node and explorer answer as the real systems do, as a client
(or the monitor) meets them."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.middleware import ExtraDataToPOAMiddleware

from polyvocab import ORDER_FILLED_V1, address_topic
from simulator.filters import BlockIndex, LogFilter
from simulator.server import Simulator
from simulator.settings import LagSettings, NodeSettings, SimSettings
from tests.simulator.node_fixtures import WALLETS, make_recording, serving_in_thread

TIMEOUT = 30.0
KEY = "ABCDEFGHIJ"


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))


async def _explorer(h: aiohttp.ClientSession, sim: Simulator, **params: str) -> Any:
    query = {"chainid": "137", "apikey": KEY, **params}
    async with h.get(sim.urls["explorer"], params=query) as resp:
        assert resp.status == 200
        return await resp.json()


def test_explorer_proxy_block_number_is_the_nodes_head_not_the_indexs() -> None:
    """Etherscan's ``module=proxy`` forwards to a node (its Geth proxy): its
    ``eth_blockNumber`` is the chain's head while getLogs answers from the index, which
    has the last blocks only some seconds later. A poller reading the head must query its
    last blocks again (the monitor's overlap). The mock answered the index's head, so a
    poller without enough overlap lost nothing here and would lose trades for real."""
    rec = make_recording(5)
    # an index an hour behind (simulated; 36 s of wall time at speed 100): nothing indexed
    lag = LagSettings(median_s=3600, p95_s=3600.001, min_s=3600, max_s=3600)
    async def main() -> None:
        async with Simulator(rec, settings=SimSettings(lag=lag), speed=100) as sim, \
                aiohttp.ClientSession() as h:
            await sim.wait_published(5)
            head = await _explorer(h, sim, module="proxy", action="eth_blockNumber")
            assert head == {"jsonrpc": "2.0", "id": 83, "result": hex(rec.blocks[-1].number)}
            # ... while the index has none of those blocks yet
            rows = await _explorer(h, sim, module="logs", action="getLogs",
                                   fromBlock=str(rec.blocks[0].number),
                                   toBlock=str(rec.blocks[-1].number),
                                   topic2="0x" + "0" * 24 + WALLETS[1][2:])
            assert rows == {"status": "0", "message": "No records found", "result": []}
    run(main)


# -- installed filters: eth_newFilter / eth_newBlockFilter / eth_getFilterChanges --------------

@pytest.fixture
def idle_node() -> Iterator[tuple[Simulator, asyncio.AbstractEventLoop]]:
    """A node on its own event loop thread (web3.py's HTTPProvider is synchronous), not
    replaying until the test calls ``sim.begin()`` on its loop. Speed 20: an installed
    filter expires after 300 unpolled simulated seconds, 15 s of wall time here (at speed
    1000 it was 0.3 s, and a loaded machine's pause between two polls expired one)."""
    sim = Simulator(make_recording(6), speed=20, autostart=False)
    with serving_in_thread(sim, TIMEOUT) as loop:
        yield sim, loop


def test_web3_filters_polled_over_http_get_the_new_blocks_and_logs(
        idle_node: tuple[Simulator, asyncio.AbstractEventLoop]) -> None:
    """web3.py's ``w3.eth.filter`` (and ethers' JsonRpcProvider events, which install one
    by default) poll installed filters: eth_newFilter / eth_newBlockFilter, then
    eth_getFilterChanges for what came since. Every node and provider has them; the mock
    answered -32601, so the Python polling recipe failed at its first line."""
    sim, loop = idle_node
    rec = sim.recording
    w3 = Web3(Web3.HTTPProvider(sim.urls["http"]))
    wallet = address_topic(WALLETS[1])
    logs_filter = w3.eth.filter({"fromBlock": rec.blocks[0].number,
                                 "topics": [ORDER_FILLED_V1, None, wallet]})
    blocks_filter = w3.eth.filter("latest")
    assert logs_filter.get_new_entries() == [] and blocks_filter.get_new_entries() == []
    loop.call_soon_threadsafe(sim.begin)
    asyncio.run_coroutine_threadsafe(sim.wait_published(6), loop).result(TIMEOUT)
    want = [(lg["transactionHash"], int(lg["logIndex"], 16)) for b in rec.blocks
            for lg in b.logs if lg["topics"][0] == ORDER_FILLED_V1 and lg["topics"][2] == wallet]
    got = logs_filter.get_new_entries()
    assert [(e["transactionHash"].to_0x_hex(), e["logIndex"]) for e in got] == want
    assert logs_filter.get_new_entries() == []  # handed over once
    assert [h.to_0x_hex() for h in blocks_filter.get_new_entries()] == [b.hash for b in rec.blocks]
    assert len(logs_filter.get_all_entries()) == len(want)  # eth_getFilterLogs
    assert w3.eth.uninstall_filter(logs_filter.filter_id) is True
    assert w3.eth.uninstall_filter(logs_filter.filter_id) is False
    with pytest.raises(Web3RPCError, match="filter not found"):
        logs_filter.get_new_entries()


def test_a_polled_filter_gets_the_orphaned_logs_again_as_removed_on_a_reorg() -> None:
    """geth's log filters, like logs subscriptions, hand over the logs of orphaned blocks
    again with ``removed: true``, then the new blocks' logs."""
    async def main() -> None:
        async with Simulator(make_recording(6), speed=1000) as sim, \
                aiohttp.ClientSession() as h:
            await sim.wait_published(6)
            fid = await _rpc(h, sim, "eth_newFilter", [{"topics": [ORDER_FILLED_V1]}])
            sim.start_fault("reorg", params={"depth": 2, "seed": 4})
            reorg = sim.history.events("reorg")[0]
            changes = await _rpc(h, sim, "eth_getFilterChanges", [fid])
            removed = [lg for lg in changes if lg["removed"]]
            assert {lg["blockHash"] for lg in removed} == set(reorg["old_hashes"])
            assert len(removed) == 2 * 2  # two trades in each of the two orphaned blocks
            assert changes[:len(removed)] == removed  # the orphans first
            assert {lg["blockHash"] for lg in changes[len(removed):]} <= set(
                reorg["new_hashes"])
    run(main)


async def _rpc(h: aiohttp.ClientSession, sim: Simulator, method: str, params: list[Any]
               ) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with h.post(sim.urls["http"], json=body) as resp:
        answer = await resp.json()
    assert "error" not in answer, answer
    return answer["result"]


class _Block:
    def __init__(self, number: int, logs: int) -> None:
        self.number = number
        self.hash = "0x" + f"{number:064x}"
        self.index = BlockIndex([{"address": "0x" + "a" * 40, "topics": []}] * logs)

    def log_json(self, i: int) -> str:
        return f'{{"n":{self.number},"i":{i}}}'

    def removed_log_json(self, i: int) -> str:
        return f'{{"n":{self.number},"i":{i},"removed":true}}'


def test_installed_filters_expire_unpolled_and_are_bounded() -> None:
    from simulator.filters import PollFilters  # new with the filters (fail-before: import)

    ids = iter(f"0x{i}" for i in range(100))
    pf = PollFilters(timeout_ns=300, new_id=lambda: next(ids), max_filters=2, max_backlog=5)
    a = pf.install(LogFilter(), 0, lo=11, hi=12)
    b = pf.install(None, 0)
    assert a and b and pf.install(None, 0) is None  # the cap
    for n in (10, 11, 12, 13):
        pf.on_block(_Block(n, 1))
    assert pf.changes(a, 100) == ['{"n":11,"i":0}', '{"n":12,"i":0}']  # its range only
    assert pf.changes(b, 100) == ['"' + _Block(n, 1).hash + '"' for n in (10, 11, 12, 13)]
    assert pf.changes(a, 399) == [] and pf.changes(b, 399) == []  # polled at 100: alive
    assert pf.changes(a, 698) == [] and pf.changes(b, 700) is None  # b expired at 699
    pf.on_block(_Block(12, 6))  # more than a backlog: a client that stopped polling
    assert pf.changes(a, 702) is None and len(pf) == 0


# -- subscription errors as geth answers them ------------------------------------------------

async def _ws_call(ws: aiohttp.ClientWebSocketResponse, method: str, params: list[Any]
                   ) -> dict[str, Any]:
    await ws.send_json({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
    while True:  # the answer, past any notification
        answer: dict[str, Any] = await ws.receive_json(timeout=TIMEOUT)
        if answer.get("id") == 7:
            return answer


@pytest.mark.parametrize("profile", ["geth", "alchemy"])
def test_subscription_errors_have_geths_codes_and_texts(profile: str) -> None:
    """geth answers an unknown subscription kind with -32601 (its client reads that code
    as ErrNotificationsUnsupported), eth_subscribe over HTTP with -32601 "notifications not
    supported", and eth_unsubscribe of an id the connection does not have with -32000
    "subscription not found" (providers document a boolean: false). The mock answered
    -32602, "the method eth_subscribe does not exist/is not available" and false."""
    settings = SimSettings(node=NodeSettings(profile=profile))

    async def main() -> None:
        async with Simulator(make_recording(3), settings=settings, speed=1000) as sim, \
                aiohttp.ClientSession() as h, h.ws_connect(sim.urls["ws"]) as ws:
            unknown = await _ws_call(ws, "eth_subscribe", ["nope"])
            assert unknown["error"] == {"code": -32601,
                                        "message": 'no "nope" subscription in eth namespace'}
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["newHeads"]}
            async with h.post(sim.urls["http"], json=body) as resp:
                over_http = await resp.json()
            assert over_http["error"] == {"code": -32601,
                                          "message": "notifications not supported"}
            sub = (await _ws_call(ws, "eth_subscribe", ["newHeads"]))["result"]
            assert (await _ws_call(ws, "eth_unsubscribe", [sub]))["result"] is True
            again = await _ws_call(ws, "eth_unsubscribe", [sub])
            if profile == "geth":
                assert again["error"] == {"code": -32000, "message": "subscription not found"}
            else:
                assert again["result"] is False
    run(main)


def test_a_reorg_resends_the_orphans_logs_in_geths_forward_order() -> None:
    """geth re-sends the logs of orphaned blocks oldest block first, each block's logs in
    order (core/blockchain.go reorg), to logs subscriptions and installed filters alike:
    the first removed log is the fork point. The mock sent the newest orphan first."""
    async def main() -> None:
        async with Simulator(make_recording(8, trades_per_block=3), speed=1000) as sim, \
                aiohttp.ClientSession() as h, h.ws_connect(sim.urls["ws"]) as ws:
            await sim.wait_published(8)
            flt = {"topics": [ORDER_FILLED_V1]}
            sub = (await _ws_call(ws, "eth_subscribe", ["logs", flt]))["result"]
            fid = await _rpc(h, sim, "eth_newFilter", [flt])
            sim.start_fault("reorg", params={"depth": 3, "seed": 4})
            orphans = sim.history.events("reorg")[0]["old_hashes"]
            want = [(b.hash, i) for b in sim.recording.blocks if b.hash in orphans
                    for i in range(3)]
            notified: list[dict[str, Any]] = []
            while len(notified) < len(want):
                msg = await ws.receive_json(timeout=TIMEOUT)
                assert msg["params"]["subscription"] == sub
                notified.append(msg["params"]["result"])
            polled = [lg for lg in await _rpc(h, sim, "eth_getFilterChanges", [fid])
                      if lg["removed"]]
            for got in (notified, polled):
                assert [(lg["blockHash"], int(lg["logIndex"], 16) // 2) for lg in got] == want
    run(main)


def test_an_orphaned_block_and_its_logs_are_still_served_by_hash(
        idle_node: tuple[Simulator, asyncio.AbstractEventLoop]) -> None:
    """geth keeps side-chain blocks: after a reorg, eth_getBlockByHash of an orphan still
    answers it and eth_getLogs by its blockHash its logs (EIP-234: a block by hash, not
    "whatever is at that height"); a removed log's getBlock() in ethers, get_block in
    web3.py, read it. The mock answered null and "unknown block"."""
    sim, loop = idle_node
    w3 = Web3(Web3.HTTPProvider(sim.urls["http"]))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    loop.call_soon_threadsafe(sim.begin)
    asyncio.run_coroutine_threadsafe(sim.wait_published(6), loop).result(TIMEOUT)

    async def reorg() -> list[str]:
        sim.start_fault("reorg", params={"depth": 2, "seed": 4})
        old: list[str] = sim.history.events("reorg")[0]["old_hashes"]
        return old

    orphans = asyncio.run_coroutine_threadsafe(reorg(), loop).result(TIMEOUT)
    by_hash = {b.hash: b for b in sim.recording.blocks}
    for orphan in orphans:
        block = w3.eth.get_block(orphan)
        assert block["hash"].to_0x_hex() == orphan
        assert block["number"] == by_hash[orphan].number
        assert w3.eth.get_block(block["number"])["hash"].to_0x_hex() != orphan  # canonical
        logs = w3.eth.get_logs({"blockHash": orphan})
        assert [lg["transactionHash"].to_0x_hex() for lg in logs] == [
            lg["transactionHash"] for lg in by_hash[orphan].logs]
        assert all(lg["blockHash"].to_0x_hex() == orphan and not lg["removed"] for lg in logs)


_ETHERS_EVENTS_OVER_HTTP = """
import { createRequire } from "node:module";
import { join } from "node:path";
const config = JSON.parse(process.argv[1]);
const { ethers } = createRequire(join(process.env.ETHERS_MODULES, "noop.js"))("ethers");
setTimeout(() => { console.error("timed out"); process.exit(1); }, config.timeout_s * 1000);
const provider = new ethers.JsonRpcProvider(config.http, undefined,
                                            { staticNetwork: true, pollingInterval: 50 });
const blocks = [];
provider.on({ topics: [config.topic0] }, (log) => {
    blocks.push(log.blockNumber);
    if (blocks.length >= 3) {
        console.log(JSON.stringify({ blocks }));
        process.exit(0);
    }
}).catch((error) => { console.error(String(error)); process.exit(1); });
"""


def test_ethers_http_events_poll_an_installed_filter_as_against_a_real_node() -> None:
    """ethers v6's JsonRpcProvider delivers contract events by installing a filter
    (eth_newFilter) and polling eth_getFilterChanges at each new block, as against geth
    or a provider; the mock refused eth_newFilter, and ethers fell back to eth_getLogs
    (another code path, without the filter's removed logs on a reorg)."""
    from tests.simulator.test_ethers_client import _ethers_modules, _node

    async def main() -> None:
        async with Simulator(make_recording(40), speed=10) as sim:
            config = {"http": sim.urls["http"], "topic0": ORDER_FILLED_V1,
                      "timeout_s": TIMEOUT}
            proc = await asyncio.create_subprocess_exec(
                _node(), "--input-type=module", "-e", _ETHERS_EVENTS_OVER_HTTP,
                json.dumps(config), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "ETHERS_MODULES": _ethers_modules()})
            out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT + 10)
            assert proc.returncode == 0, err.decode()
            blocks = json.loads(out)["blocks"]
            assert len(blocks) >= 3 and blocks == sorted(blocks)
            calls = sim.status()["requests"]["rpc_http"]
            assert calls.get("eth_newFilter") == 1 and calls.get("eth_getFilterChanges", 0) >= 1
            assert "eth_getLogs" not in calls and "?" not in calls
    run(main)


@pytest.mark.parametrize(("bounds", "message"), [
    ({"fromBlock": "pending"}, "pending logs are not supported"),
    ({"toBlock": "pending"}, "pending logs are not supported"),
    ({"fromBlock": "finalized"}, "invalid block range params"),
    # above the replay's first block (1000): below it is pruned history (simfid2 tests)
    ({"fromBlock": "0x3ea", "toBlock": "0x3e9"}, "invalid block range params"),
])
def test_a_filter_geth_refuses_is_refused_with_its_text(bounds: dict[str, str],
                                                        message: str) -> None:
    """geth's SubscribeLogs (behind eth_newFilter) refuses pending logs, tags other than
    latest and a range whose start is past its end; the first filter code took pending,
    finalized and the rest as 'moves with the head'."""
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1000) as sim, \
                aiohttp.ClientSession() as h:
            body = {"jsonrpc": "2.0", "id": 1, "method": "eth_newFilter", "params": [bounds]}
            async with h.post(sim.urls["http"], json=body) as resp:
                answer = await resp.json()
            # -32602 since geth v1.17 (#33320), -32000 before
            assert answer["error"] == {"code": -32602, "message": message}
    run(main)
