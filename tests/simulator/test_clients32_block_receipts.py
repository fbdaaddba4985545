"""eth_getBlockReceipts, which this node answered -32601 ("does not exist"), as geth v1.17
internal/ethapi GetBlockReceipts serves it: each transaction's receipt (as
eth_getTransactionReceipt gives it) in block order, the block named as rpc/types.go
BlockNumberOrHash reads it (a number, a tag, a hash, an object); null past the head; read
by web3.py 8 unmodified too."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3

from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording, serving_in_thread


@pytest.fixture
def node() -> Iterator[Simulator]:
    sim = Simulator(make_recording(6, trades_per_block=3), speed=1000)
    with serving_in_thread(sim) as loop:
        asyncio.run_coroutine_threadsafe(sim.wait_published(6), loop).result(20)
        yield sim


def _rpc(url: str, method: str, *params: Any) -> dict[str, Any]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    req = urllib.request.Request(url, data=body.encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
        return answer


def test_block_receipts_are_the_blocks_transaction_receipts_in_order(node: Simulator) -> None:
    url = node.urls["http"]
    rb = node.recording.blocks[2]
    one_by_one = [_rpc(url, "eth_getTransactionReceipt", tx["hash"])["result"]
                  for tx in rb.transactions]
    assert len(one_by_one) == 3
    for arg in (rb.block["number"], rb.hash, {"blockNumber": rb.block["number"]},
                {"blockHash": rb.hash, "requireCanonical": True}):
        assert _rpc(url, "eth_getBlockReceipts", arg)["result"] == one_by_one, arg
    head = node.recording.blocks[-1]
    latest = _rpc(url, "eth_getBlockReceipts", "latest")["result"]
    assert [r["transactionHash"] for r in latest] == [tx["hash"] for tx in head.transactions]
    assert _rpc(url, "eth_getBlockReceipts", "pending")["result"] == []
    assert _rpc(url, "eth_getBlockReceipts", hex(head.number + 5))["result"] is None
    assert _rpc(url, "eth_getBlockReceipts", "0x" + "ab" * 32)["result"] is None
    assert _rpc(url, "eth_getBlockReceipts", {"blockNumber": "0x1", "blockHash": rb.hash}
                )["error"] == {"code": -32602, "message": "invalid argument 0: cannot specify "
                               "both BlockHash and BlockNumber, choose one or the other"}
    assert _rpc(url, "eth_getBlockReceipts", {})["error"] == {
        "code": -32602, "message": "invalid argument 0: must specify either BlockHash or "
                                   "BlockNumber"}
    assert _rpc(url, "eth_getBlockReceipts", 5)["error"] == {
        "code": -32602, "message": "invalid argument 0: json: cannot unmarshal number into "
                                   "Go value of type string"}
    w3 = Web3(Web3.HTTPProvider(url))
    receipts = w3.eth.get_block_receipts(rb.number)
    assert [r["transactionHash"].to_0x_hex() for r in receipts] == [
        tx["hash"] for tx in rb.transactions]
    assert all(r["blockNumber"] == rb.number and r["status"] == 1 for r in receipts)
