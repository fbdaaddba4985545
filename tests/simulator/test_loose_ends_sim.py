"""The explorer's Geth proxy: ``eth_getBlockByNumber`` (Etherscan V2 answers it with the
node's raw JSON-RPC body, REFERENCE.md "proxy answers raw JSON-RPC bodies")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from simulator.chain import Chain
from simulator.explorer import Explorer, ExplorerSettings
from simulator.jsonrpc import JsonRpc
from simulator.settings import SimSettings
from simulator.source import SynthSource
from tests.simulator.test_explorer import FIRST, Caller, make

NS = 1_000_000_000


def _proxy(call: Caller, **params: str) -> dict[str, Any]:
    reply = call(module="proxy", action="eth_getBlockByNumber", **params)
    assert reply.http_status == 200
    body = reply.json()
    assert isinstance(body, dict) and body["jsonrpc"] == "2.0"
    assert "status" not in body and "message" not in body  # raw JSON-RPC, no envelope
    return body


def test_the_proxy_answers_eth_getblockbynumber_as_a_raw_jsonrpc_body() -> None:
    """The proxy answered only eth_blockNumber: eth_getBlockByNumber was NOTOK "Error!
    Missing Or invalid Action name", where Etherscan gives the node's block."""
    ex, chain = make(5)
    call = Caller(ex)
    rb = chain.blocks[2]
    hashes = _proxy(call, tag=hex(FIRST + 2), boolean="false")
    assert hashes == {"jsonrpc": "2.0", "id": 83, "result": rb.block}
    full = _proxy(call, tag=hex(FIRST + 2).upper().replace("0X", "0x"), boolean="true", id="7")
    assert full["id"] == 7
    assert full["result"] == {**rb.block, "transactions": rb.transactions}
    assert [t["hash"] for t in full["result"]["transactions"]] == rb.block["transactions"]
    assert _proxy(call, tag="latest", boolean="false")["result"]["number"] == hex(FIRST + 4)
    assert _proxy(call, tag="earliest", boolean="false")["result"]["number"] == hex(FIRST)
    # a block the node does not have: null, as geth
    assert _proxy(call, tag=hex(FIRST + 99), boolean="false") == {
        "jsonrpc": "2.0", "id": 83, "result": None}
    # the key and chainid checks still come first (the Etherscan envelope)
    reply = call(key=None, module="proxy", action="eth_getBlockByNumber", tag=hex(FIRST),
                 boolean="true")
    assert reply.json()["status"] == "0"


@pytest.mark.parametrize(("params", "message"), [
    ({"tag": "", "boolean": "true"}, "invalid argument 0: hex string without 0x prefix"),
    ({"tag": "1000", "boolean": "true"}, "invalid argument 0: hex string without 0x prefix"),
    ({"tag": "0x", "boolean": "true"}, 'invalid argument 0: hex string "0x"'),
    ({"tag": "0x03e8", "boolean": "true"},
     "invalid argument 0: hex number with leading zero digits"),
    ({"tag": "0xzz", "boolean": "true"}, "invalid argument 0: invalid hex string"),
    ({"tag": "0x-1", "boolean": "true"}, "invalid argument 0: invalid hex string"),
    ({"tag": "0x" + "f" * 17, "boolean": "true"}, "invalid argument 0: hex number > 64 bits"),
    ({"tag": "0x3e8"}, "missing value for required argument 1"),
    ({"tag": "0x3e8", "boolean": "yes"},
     "invalid argument 1: json: cannot unmarshal string into Go value of type bool"),
])
def test_a_bad_tag_is_the_node_s_jsonrpc_error_object(params: dict[str, str],
                                                       message: str) -> None:
    ex, _ = make(2)
    call = Caller(ex)
    reply = call(module="proxy", action="eth_getBlockByNumber", **params)
    assert reply.outcome == "error"
    assert reply.json() == {"jsonrpc": "2.0", "id": 83,
                            "error": {"code": -32602, "message": message}}


def _rpc(rpc: JsonRpc, *params: Any) -> Any:
    text = rpc.handle(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber",
                                  "params": list(params)}), None).text
    assert text is not None
    return json.loads(text)["result"]


def test_the_proxy_s_block_is_the_node_s_an_archived_one_and_an_unindexed_one_too() -> None:
    """A streamed chain (a window of 4 blocks) and an archiving explorer (4 blocks listed):
    the proxy gives the block the simulator's node gives - one long gone from both
    windows, the head, and one the index does not have yet."""
    chain = Chain(SynthSource("default", seed=3, blocks=40, checkpoint_every=4),
                  settings=SimSettings(history_blocks=2, window_blocks=4))
    ex = Explorer(ExplorerSettings(rate_per_s=1e9, retain_blocks=4, archive=True), chain,
                  node_head=lambda: max(chain.head_number, 0))
    rpc = JsonRpc(chain, chain.settings.node)
    now = 0
    unindexed: int | None = None
    for _ in range(40):
        now += 3 * NS
        chain.advance(now, limit=1)
        ex.keep_up(now)
        indexed = len(chain.indexed_blocks(now))
        if unindexed is None and indexed < chain.published:
            unindexed = chain.first_number + indexed  # published, not indexed yet
            got = ex.handle("/v2/api", {"module": "proxy", "action": "eth_getBlockByNumber",
                                        "tag": hex(unindexed), "boolean": "true",
                                        "chainid": "137", "apikey": "k"}, now).json()
            assert got["result"] == _rpc(rpc, hex(unindexed), True) is not None
    now += 100 * NS
    chain.advance(now)
    ex.keep_up(now)
    assert unindexed is not None, "the index was never behind the node"
    old = chain.first_number + 1
    stats = ex.archive_stats()
    assert stats is not None and stats["blocks"] > 20  # block `old` is archived
    for tag in (hex(old), hex(chain.head_number)):
        for flag in (False, True):
            got = ex.handle("/v2/api", {"module": "proxy", "action": "eth_getBlockByNumber",
                                        "tag": tag, "boolean": str(flag).lower(),
                                        "chainid": "137", "apikey": "k"}, now).json()
            want = _rpc(rpc, tag, flag)
            assert want is not None and got["result"] == want, (tag, flag)
