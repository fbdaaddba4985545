"""JSON-RPC 2.0 the way geth answers it (pure: JsonRpc over a Chain, no sockets)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polyvocab import address_topic
from simulator.chain import Chain
from simulator.filters import LogFilter
from simulator.jsonrpc import JsonRpc
from simulator.settings import NodeSettings, SimSettings
from tests.simulator.node_fixtures import WALLETS, make_recording

S = 1_000_000_000


class Host:
    def __init__(self) -> None:
        self.subs: dict[str, tuple[str, LogFilter | None]] = {}

    def subscribe(self, kind: str, flt: LogFilter | None) -> str:
        sub_id = "0x" + f"{len(self.subs) + 1:032x}"
        self.subs[sub_id] = (kind, flt)
        return sub_id

    def unsubscribe(self, sub_id: str) -> bool:
        return self.subs.pop(sub_id, None) is not None


def make_rpc(blocks: int = 6, published_s: int = 6, **node: Any) -> JsonRpc:
    chain = Chain(make_recording(blocks), settings=SimSettings(node=NodeSettings(**node)),
                  t0_ns=0)
    chain.advance(published_s * S)
    return JsonRpc(chain, chain.settings.node)


def call(rpc: JsonRpc, method: str, *params: Any, host: Host | None = None,
         req_id: Any = 1) -> Any:
    text = rpc.handle(json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method,
                                  "params": list(params)}), host).text
    assert text is not None
    return json.loads(text)


def test_chain_id_net_version_block_number_client_version() -> None:
    rpc = make_rpc()
    assert call(rpc, "eth_chainId")["result"] == "0x89"
    assert call(rpc, "net_version")["result"] == "137"
    assert call(rpc, "eth_blockNumber")["result"] == hex(1003)  # blocks at 0,2,4,6 s
    assert call(rpc, "web3_clientVersion")["result"].startswith("bor/")


def test_ids_of_any_json_type_are_echoed() -> None:
    rpc = make_rpc()
    for req_id in (0, "abc", None, 7.5, -1):
        assert call(rpc, "eth_chainId", req_id=req_id)["id"] == req_id


def test_get_block_by_number_tags_numbers_and_full_transactions() -> None:
    rpc = make_rpc(finality_depth=2)
    assert call(rpc, "eth_getBlockByNumber", "latest", False)["result"]["number"] == hex(1003)
    # geth v1.17: the block its miner builds on the head (simfid2 test of "pending")
    assert call(rpc, "eth_getBlockByNumber", "pending", False)["result"]["number"] == hex(1004)
    assert call(rpc, "eth_getBlockByNumber", "earliest", False)["result"]["number"] == hex(1000)
    assert call(rpc, "eth_getBlockByNumber", "safe", False)["result"]["number"] == hex(1001)
    assert call(rpc, "eth_getBlockByNumber", "finalized", False)["result"]["number"] == \
        hex(1001)
    hashes = call(rpc, "eth_getBlockByNumber", hex(1001), False)["result"]
    assert all(isinstance(t, str) for t in hashes["transactions"])
    full = call(rpc, "eth_getBlockByNumber", hex(1001), True)["result"]
    assert [t["hash"] for t in full["transactions"]] == hashes["transactions"]
    assert call(rpc, "eth_getBlockByNumber", hex(1004), False)["result"] is None  # future
    # below the first block held: geth v1.17's pruned history (simfid2 tests)
    assert call(rpc, "eth_getBlockByNumber", hex(5), False)["error"] == {
        "code": 4444, "message": "pruned history unavailable"}


def test_get_block_by_hash_only_for_published_blocks() -> None:
    rpc = make_rpc()
    blocks = rpc.chain.recording.blocks
    assert call(rpc, "eth_getBlockByHash", blocks[2].hash, False)["result"]["hash"] == \
        blocks[2].hash
    assert call(rpc, "eth_getBlockByHash", blocks[5].hash, False)["result"] is None


def test_get_logs_by_range_address_topics_and_block_hash() -> None:
    rpc = make_rpc()
    wallet = address_topic(WALLETS[0])
    logs = call(rpc, "eth_getLogs", {"fromBlock": hex(1000), "toBlock": "latest",
                                     "topics": [None, None, [wallet]]})["result"]
    assert logs and {lg["topics"][2] for lg in logs} == {wallet}
    assert all(int(lg["blockNumber"], 16) <= 1003 for lg in logs)
    one = call(rpc, "eth_getLogs", {"blockHash": rpc.chain.recording.blocks[1].hash})["result"]
    assert {lg["blockNumber"] for lg in one} == {hex(1001)}
    assert call(rpc, "eth_getLogs", {"fromBlock": hex(1003), "toBlock": hex(1001)})[
        "error"]["code"] == -32602


def test_get_logs_answer_is_spliced_from_cached_texts_and_equals_a_fresh_encoding() -> None:
    """eth_getLogs splices the logs' cached JSON texts (10,000 logs are not re-encoded per
    request): the answer is byte-identical to encoding the logs afresh, in a batch too."""
    rpc = make_rpc()
    flt = {"fromBlock": hex(1000), "toBlock": "latest"}
    expected = rpc.chain.logs(LogFilter.parse(flt), 1000, 1003)
    assert expected
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "eth_getLogs", "params": [flt]})
    text = rpc.handle(body).text
    assert text == json.dumps({"jsonrpc": "2.0", "id": 7, "result": expected},
                              separators=(",", ":"))
    batch = rpc.handle(f"[{body},{body}]").text
    assert batch is not None and json.loads(batch) == [json.loads(text)] * 2


def test_get_logs_limits_answer_like_providers() -> None:
    """Default profile alchemy: past the free range, the log cap decides (per-profile tests:
    tests/simulator/test_providers.py)."""
    rpc = make_rpc(logs_max_range=2, logs_max_results=3)
    err = call(rpc, "eth_getLogs", {"fromBlock": hex(1000), "toBlock": hex(1003)})["error"]
    assert err["code"] == -32602 and err["message"].startswith("Log response size exceeded.")
    assert call(rpc, "eth_getLogs", {"fromBlock": hex(1000), "toBlock": hex(1001)})["result"]
    rpc = make_rpc(profile="geth", logs_max_results=3)
    err = call(rpc, "eth_getLogs", {"fromBlock": hex(1000), "toBlock": hex(1001)})["error"]
    assert err == {"code": -32005, "message": "query returned more than 3 results"}


def test_transaction_and_receipt() -> None:
    rpc = make_rpc()
    block = rpc.chain.recording.blocks[1]
    tx_hash = block.transactions[1]["hash"]
    tx = call(rpc, "eth_getTransactionByHash", tx_hash)["result"]
    assert tx["hash"] == tx_hash and tx["blockNumber"] == hex(1001)
    receipt = call(rpc, "eth_getTransactionReceipt", tx_hash)["result"]
    assert receipt["status"] == "0x1" and receipt["logs"]
    assert {lg["transactionHash"] for lg in receipt["logs"]} == {tx_hash}
    future = rpc.chain.recording.blocks[5].transactions[0]["hash"]
    assert call(rpc, "eth_getTransactionByHash", future)["result"] is None
    assert call(rpc, "eth_getTransactionReceipt", future)["result"] is None


def test_batches_return_one_answer_per_call_and_skip_notifications() -> None:
    rpc = make_rpc()
    body = json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
                       {"jsonrpc": "2.0", "method": "eth_chainId"},
                       {"jsonrpc": "2.0", "id": "x", "method": "nope"}, 5])
    reply = rpc.handle(body)
    out = json.loads(reply.text or "")
    assert [o.get("id") for o in out] == [1, "x", None]
    assert out[1]["error"]["code"] == -32601 and out[2]["error"]["code"] == -32600
    assert rpc.handle(json.dumps({"jsonrpc": "2.0", "method": "eth_chainId"})).text is None


@pytest.mark.parametrize(("body", "code"), [
    ("{not json", -32700), (b"\xff\xfe", -32700), ("[]", -32600), ("5", -32600),
    ('{"jsonrpc":"1.0","id":1,"method":"eth_chainId"}', -32600),
    ('{"jsonrpc":"2.0","id":{},"method":"eth_chainId"}', -32600),
    ('{"jsonrpc":"2.0","id":1,"method":7}', -32600),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_foo"}', -32601),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}', -32601),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":{"a":1}}', -32602),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["12",false]}', -32602),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0xzz",false]}',
     -32602),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["0x01",false]}',
     -32602),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":[1,false]}', -32602),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["latest","yes"]}',
     -32602),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByHash","params":["0x12",false]}', -32602),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":[{"address":"0x12"}]}', -32602),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_getLogs","params":["x"]}', -32602),
    ('{"jsonrpc":"2.0","id":1,"method":"eth_getTransactionByHash","params":[12]}', -32602),
])
def test_bad_input_gets_the_right_error_code(body: str | bytes, code: int) -> None:
    out = json.loads(make_rpc().handle(body).text or "")
    assert out["error"]["code"] == code
    assert isinstance(out["error"]["message"], str) and out["error"]["message"]


def test_subscribe_and_unsubscribe_through_the_host() -> None:
    rpc, host = make_rpc(), Host()
    sub = call(rpc, "eth_subscribe", "newHeads", host=host)["result"]
    assert sub in host.subs
    logs = call(rpc, "eth_subscribe", "logs", {"address": WALLETS[0]}, host=host)["result"]
    assert host.subs[logs][1] == LogFilter.parse({"address": WALLETS[0]})
    assert call(rpc, "eth_unsubscribe", sub, host=host)["result"] is True
    assert call(rpc, "eth_unsubscribe", sub, host=host)["result"] is False
    # geth: an unknown kind is -32601 (test_fidelity_hunt: its text)
    assert call(rpc, "eth_subscribe", "pendingStuff", host=host)["error"]["code"] == -32601
    assert call(rpc, "eth_subscribe", "logs", {"topics": ["0x1"]}, host=host)["error"][
        "code"] == -32602
