"""web3.py 8, unmodified, against the node: WS subscriptions and HTTP calls with POA middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from web3 import AsyncWeb3, Web3, WebSocketProvider
from web3.middleware import ExtraDataToPOAMiddleware

from polyvocab import ORDER_FILLED_V1, address_topic
from simulator.server import Simulator
from tests.simulator.node_fixtures import WALLETS, make_recording, serving_in_thread


def test_async_web3_websocket_provider_receives_new_heads_and_logs() -> None:
    rec = make_recording(6)
    wallet = address_topic(WALLETS[1])
    expected_logs = sum(1 for b in rec.blocks for lg in b.logs
                        if lg["topics"][0] == ORDER_FILLED_V1 and lg["topics"][2] == wallet)

    async def main() -> None:
        async with Simulator(rec, speed=50, autostart=False) as sim, \
                AsyncWeb3(WebSocketProvider(sim.urls["ws"])) as w3:
                # Polygon's extraData is longer than 32 bytes, as on the real network
                w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
                assert await w3.eth.chain_id == 137
                heads_id = await w3.eth.subscribe("newHeads")
                logs_id = await w3.eth.subscribe("logs", {"topics": [ORDER_FILLED_V1, None,
                                                                     wallet]})
                sim.begin()
                heads: list[Any] = []
                logs: list[Any] = []
                async def collect() -> None:
                    async for msg in w3.socket.process_subscriptions():
                        if msg["subscription"] == heads_id:
                            heads.append(msg["result"])
                        elif msg["subscription"] == logs_id:
                            logs.append(msg["result"])
                        if len(heads) == 6 and len(logs) == expected_logs:
                            return
                await asyncio.wait_for(collect(), 30)
                assert [h["number"] for h in heads] == [b.number for b in rec.blocks]
                assert heads[0]["hash"].to_0x_hex() == rec.blocks[0].hash
                assert all(lg["topics"][2].to_0x_hex() == wallet for lg in logs)
                assert await w3.eth.unsubscribe(heads_id) is True

    asyncio.run(main())


@pytest.fixture
def node_in_thread() -> Iterator[Simulator]:
    """A node on its own event loop thread, for the synchronous HTTPProvider."""
    sim = Simulator(make_recording(6), speed=1000)
    with serving_in_thread(sim) as loop:
        asyncio.run_coroutine_threadsafe(sim.wait_published(6), loop).result(20)
        yield sim


def test_http_provider_with_poa_middleware(node_in_thread: Simulator) -> None:
    sim = node_in_thread
    rec = sim.recording
    w3 = Web3(Web3.HTTPProvider(sim.urls["http"]))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    assert w3.eth.chain_id == 137
    assert w3.eth.block_number == 1005
    block = w3.eth.get_block(1003, full_transactions=True)
    assert block["hash"].to_0x_hex() == rec.blocks[3].hash
    assert len(block["proofOfAuthorityData"]) > 32
    latest = w3.eth.get_block("latest")
    assert latest["number"] == 1005
    logs = w3.eth.get_logs({"fromBlock": 1000, "toBlock": 1005, "address": Web3.to_checksum_address(
        rec.blocks[0].logs[0]["address"]), "topics": [ORDER_FILLED_V1]})
    assert len(logs) == 12
    tx_hash = rec.blocks[2].transactions[0]["hash"]
    tx = w3.eth.get_transaction(tx_hash)
    assert tx["blockNumber"] == 1002
    receipt = w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1 and len(receipt["logs"]) == 2
