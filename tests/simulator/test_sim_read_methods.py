"""The read-only JSON-RPC methods real clients call, answered as geth v1.17 answers them
(internal/ethapi/api.go, eth/api_backend.go, eth/gasprice/feehistory.go, node/api.go), over
a real server on loopback; and a WebSocket message that is not JSON, read as geth's
rpc/client.go ``read`` reads it. Each failed before (-32601 "does not exist", or the
connection stayed open)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import aiohttp
import pytest
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware

from simulator.chain import Chain
from simulator.chainshape import keccak256
from simulator.jsonrpc import GO_SCAN_MAX_BYTES, JsonRpc
from simulator.recording import Recording
from simulator.server import Simulator
from simulator.settings import SimSettings
from tests.simulator.node_fixtures import make_recording, serving_in_thread

TIMEOUT = 30.0
FIRST = 1000  # make_recording's first block: below it the node's history is pruned
PRUNED = {"code": 4444, "message": "pruned history unavailable"}
# block 1003's transactions (fees_recording): tips 5, 1 and 3 effective, gas 100, 300, 600
FEE_BLOCK = 1003
BASE_FEES = [90, 95, 97, 100, 104, 110]  # blocks 1000..1005


def fees_recording(n_blocks: int = 6) -> Recording:
    """make_recording with a base fee per block and, in block 1003, three transactions
    whose effective tips (geth's EffectiveGasTip at base fee 100) are 5 (type 2, tip 5 under
    a 200 cap), 1 (legacy, gasPrice 101) and 3 (type 2, tip 9 but cap 103), of gas 100,
    300 and 600 (the block's gasUsed 1000); block 1004 half full; every other transaction
    pays the base fee and no tip."""
    rec = make_recording(n_blocks)
    for k, rb in enumerate(rec.blocks):
        rb.block["baseFeePerGas"] = hex(BASE_FEES[k % len(BASE_FEES)])
        for tx in rb.transactions:  # legacy, no tip: the price is the base fee
            tx["gasPrice"] = rb.block["baseFeePerGas"]
    rb = rec.blocks[FEE_BLOCK - FIRST]
    txs = rb.transactions
    txs[0].update(type="0x2", maxPriorityFeePerGas=hex(5), maxFeePerGas=hex(200),
                  gasPrice=hex(105), gas=hex(100))
    txs[1].update(gasPrice=hex(101), gas=hex(300))
    third = {**txs[1], "hash": "0x" + "cd" * 32, "transactionIndex": "0x2", "type": "0x2",
             "maxPriorityFeePerGas": hex(9), "maxFeePerGas": hex(103), "gasPrice": hex(103),
             "gas": hex(600)}
    txs.append(third)
    rb.block["transactions"] = [*rb.block["transactions"], third["hash"]]
    rb.block["gasUsed"] = hex(1000)
    rec.blocks[FEE_BLOCK + 1 - FIRST].block["gasUsed"] = hex(15_000_000)
    return rec


def _run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))


async def _serving(rec: Recording) -> AsyncIterator[Simulator]:
    """The node with every block of ``rec`` published (history but the last, replayed
    at once)."""
    settings = SimSettings(history_blocks=len(rec.blocks) - 1)
    async with Simulator(rec, settings=settings) as sim:
        await sim.wait_published(len(rec.blocks), TIMEOUT)
        yield sim


class Node:
    """JSON-RPC over HTTP to a running node: ``raw`` is the response text."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url

    async def raw(self, method: str, *params: Any) -> str:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        async with self.http.post(self.url, json=body) as resp:
            assert resp.status == 200
            return await resp.text()

    async def call(self, method: str, *params: Any) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(await self.raw(method, *params))
        return out

    async def result(self, method: str, *params: Any) -> Any:
        reply = await self.call(method, *params)
        assert "error" not in reply, reply
        return reply["result"]

    async def error(self, method: str, *params: Any) -> dict[str, Any]:
        reply = await self.call(method, *params)
        assert "result" not in reply, reply
        err: dict[str, Any] = reply["error"]
        return err


def with_node(rec: Recording, body: Callable[[Node, Simulator],
                                             Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async for sim in _serving(rec):
            async with aiohttp.ClientSession() as http:
                await body(Node(http, sim.urls["http"]), sim)
    _run(main)


# -- web3_sha3, eth_accounts, net_peerCount -------------------------------------------------
def test_sha3_accounts_and_peer_count_as_geth() -> None:
    """web3_sha3 is keccak-256 of hexutil.Bytes (``""`` is no bytes; bad hex is geth's
    wrapped json type error); eth_accounts [] (a node without keys); net_peerCount a
    hexutil.Uint quantity (a constant here: 32)."""
    async def body(node: Node, sim: Simulator) -> None:
        assert await node.result("web3_sha3", "0x68656c6c6f20776f726c64") == (
            "0x47173285a8d7341e5e972fc677286384f802f8ef42a5ec5f03bbfa254cb01fad")
        assert await node.result("web3_sha3", "") == "0x" + keccak256(b"").hex()
        assert await node.result("web3_sha3", "0x") == "0x" + keccak256(b"").hex()
        wrapped = "invalid argument 0: json: cannot unmarshal {} into Go value of type " \
                  "hexutil.Bytes"
        for arg, why in [("0x1", "hex string of odd length"), ("0xzz", "invalid hex string"),
                         ("abcd", "hex string without 0x prefix"), (1, "non-string"),
                         (None, "non-string")]:
            assert await node.error("web3_sha3", arg) == {
                "code": -32602, "message": wrapped.format(why)}
        assert await node.error("web3_sha3") == {
            "code": -32602, "message": "missing value for required argument 0"}
        assert (await node.error("web3_sha3", "0x", "0x"))["message"] == (
            "too many arguments, want at most 1")
        assert await node.raw("eth_accounts") == '{"jsonrpc":"2.0","id":1,"result":[]}'
        assert await node.result("net_peerCount") == "0x20"
        assert (await node.error("net_peerCount", 1))["code"] == -32602
    with_node(make_recording(6), body)


# -- transaction counts and transactions by block and index -----------------------------------
def test_transaction_count_and_transaction_by_block_and_index_as_geth() -> None:
    """By number (tags too) and by hash: the count a hex quantity; the transaction the same
    object eth_getTransactionByHash gives; null past the end and for a block the node does
    not have; the pending block (the head's child, no pool) has none; below the first
    block held: pruned history (4444); the index a hexutil.Uint (geth's wrapped errors)."""
    rec = fees_recording()

    async def body(node: Node, sim: Simulator) -> None:
        block = rec.blocks[FEE_BLOCK - FIRST]
        number, block_hash = hex(FEE_BLOCK), block.hash
        for method, arg in [("eth_getBlockTransactionCountByNumber", number),
                            ("eth_getBlockTransactionCountByHash", block_hash)]:
            assert await node.result(method, arg) == "0x3"
        assert await node.result("eth_getBlockTransactionCountByNumber", "latest") == "0x2"
        assert await node.result("eth_getBlockTransactionCountByNumber", "earliest") == "0x2"
        assert await node.result("eth_getBlockTransactionCountByNumber", "pending") == "0x0"
        assert await node.result("eth_getBlockTransactionCountByNumber", hex(5000)) is None
        assert await node.result("eth_getBlockTransactionCountByHash", "0x" + "ab" * 32) is None
        assert await node.error("eth_getBlockTransactionCountByNumber", hex(FIRST - 1)) == PRUNED
        # by hash, the first block's parent is a header the pruned node knows
        assert await node.error("eth_getBlockTransactionCountByHash",
                                rec.blocks[0].block["parentHash"]) == PRUNED
        for i, tx in enumerate(block.transactions):
            by_hash = await node.result("eth_getTransactionByHash", tx["hash"])
            assert by_hash["hash"] == tx["hash"]
            assert await node.result("eth_getTransactionByBlockNumberAndIndex", number,
                                     hex(i)) == by_hash
            assert await node.result("eth_getTransactionByBlockHashAndIndex", block_hash,
                                     hex(i)) == by_hash
        for method, arg in [("eth_getTransactionByBlockNumberAndIndex", number),
                            ("eth_getTransactionByBlockHashAndIndex", block_hash)]:
            assert await node.result(method, arg, "0x3") is None  # past the end
            assert await node.result(method, arg, "") == await node.result(method, arg, "0x0")
            wrapped = "invalid argument 1: json: cannot unmarshal {} into Go value of type " \
                      "hexutil.Uint"
            for index, why in [("1", "hex string without 0x prefix"),
                               ("0x01", "hex number with leading zero digits"),
                               ("0x", 'hex string "0x"'), ("0xg", "invalid hex string"),
                               ("0x" + "f" * 17, "hex number > 64 bits"), (1, "non-string")]:
                assert await node.error(method, arg, index) == {
                    "code": -32602, "message": wrapped.format(why)}
            assert await node.error(method, arg) == {
                "code": -32602, "message": "missing value for required argument 1"}
            assert (await node.error(method, arg, "0x0", 1))["message"] == (
                "too many arguments, want at most 2")
        assert await node.result("eth_getTransactionByBlockNumberAndIndex", "pending",
                                 "0x0") is None
        assert await node.result("eth_getTransactionByBlockNumberAndIndex", hex(5000),
                                 "0x0") is None
        assert await node.error("eth_getTransactionByBlockNumberAndIndex", hex(FIRST - 1),
                                "0x0") == PRUNED
        # the block argument is decoded first, as geth's parseArgumentArray does
        assert (await node.error("eth_getTransactionByBlockNumberAndIndex", "0xzz", 1)
                )["message"] == "invalid argument 0: invalid hex string"
    with_node(rec, body)


# -- uncles ---------------------------------------------------------------------------------
def test_uncle_counts_and_uncles_as_geth() -> None:
    """Polygon's blocks have no uncles: the count "0x0" for a block the node has, null
    for one it does not; every uncle by index null; the arguments still decoded, and a
    pruned block still 4444."""
    rec = make_recording(6)

    async def body(node: Node, sim: Simulator) -> None:
        block = rec.blocks[2]
        for tag in (hex(block.number), "latest", "earliest", "pending", "safe"):
            assert await node.result("eth_getUncleCountByBlockNumber", tag) == "0x0"
        assert await node.result("eth_getUncleCountByBlockHash", block.hash) == "0x0"
        assert await node.result("eth_getUncleCountByBlockNumber", hex(5000)) is None
        assert await node.result("eth_getUncleCountByBlockHash", "0x" + "ab" * 32) is None
        assert await node.error("eth_getUncleCountByBlockNumber", hex(FIRST - 1)) == PRUNED
        for method, arg in [("eth_getUncleByBlockNumberAndIndex", hex(block.number)),
                            ("eth_getUncleByBlockHashAndIndex", block.hash)]:
            assert await node.result(method, arg, "0x0") is None
            assert (await node.error(method, arg, "0"))["code"] == -32602
            assert await node.error(method, arg) == {
                "code": -32602, "message": "missing value for required argument 1"}
        assert await node.error("eth_getUncleByBlockNumberAndIndex", hex(FIRST - 1),
                                "0x0") == PRUNED
    with_node(rec, body)


# -- eth_feeHistory --------------------------------------------------------------------------
def test_fee_history_as_geths_oracle() -> None:
    """baseFeePerGas has blockCount + 1 entries (the next block's last), gasUsedRatio is
    gasUsed / gasLimit written as Go writes a float64, reward the percentiles of the
    effective tips weighted by gas used (processBlock), blob fields geth's zeros for
    headers without them; blockCount 0 is an empty answer before any check; percentiles
    increasing within 0..100, at most 100; blockCount cut to 1024 and at the first block
    held (no headers below it here; with percentiles geth's pruned history error); a
    newest block past the head is "request beyond head block"."""
    rec = fees_recording()

    async def body(node: Node, sim: Simulator) -> None:
        got = await node.result("eth_feeHistory", "0x3", "latest", [0, 25, 50, 95, 100])
        assert got == {
            "oldestBlock": hex(1003),
            # tips sorted (1, gas 300), (3, 600), (5, 100) of 1000: 25% -> 1, 50% -> 3, 95% -> 5
            "reward": [["0x1", "0x1", "0x3", "0x5", "0x5"], ["0x0"] * 5, ["0x0"] * 5],
            "baseFeePerGas": [hex(100), hex(104), hex(110), hex(110)],
            "gasUsedRatio": [1000 / 30_000_000, 0.5, 21000 / 30_000_000],
            "baseFeePerBlobGas": ["0x0"] * 4, "blobGasUsedRatio": [0, 0, 0]}
        raw = await node.raw("eth_feeHistory", "0x2", hex(1004), [])
        assert raw == ('{"jsonrpc":"2.0","id":1,"result":{"oldestBlock":"0x3eb",'
                       '"baseFeePerGas":["0x64","0x68","0x6e"],'
                       '"gasUsedRatio":[0.000033333333333333335,0.5],'
                       '"baseFeePerBlobGas":["0x0","0x0","0x0"],"blobGasUsedRatio":[0,0]}}')
        # a decimal count and null percentiles: no reward
        assert "reward" not in await node.result("eth_feeHistory", 2, "latest", None)
        # pending: the head's child, empty, its base fee the next one (the head's here:
        # nothing follows it in the recording)
        pend = await node.result("eth_feeHistory", "0x2", "pending", [50])
        assert pend["oldestBlock"] == hex(1005) and pend["reward"] == [["0x0"], ["0x0"]]
        assert pend["baseFeePerGas"] == [hex(110)] * 3 and pend["gasUsedRatio"][1] == 0
        empty = '{"jsonrpc":"2.0","id":1,"result":{"oldestBlock":"0x0","gasUsedRatio":null}}'
        assert await node.raw("eth_feeHistory", "0x0", "latest", [101]) == empty
        # cut at the first block held: without percentiles (geth would read the pruned
        # headers; this node has none), with them geth's pruned history error
        cut = await node.result("eth_feeHistory", "0x400", "latest", [])
        assert cut["oldestBlock"] == hex(FIRST) and len(cut["gasUsedRatio"]) == 6
        assert await node.error("eth_feeHistory", "0x7", "latest", [50]) == PRUNED
        assert await node.error("eth_feeHistory", "0x1", hex(FIRST - 1), []) == PRUNED
        errors = [
            (("0x1", "latest", [50, 50]), -32000,
             "invalid reward percentile: #0:50.000000 >= #1:50.000000"),
            (("0x1", "latest", [-1]), -32000, "invalid reward percentile: -1.000000"),
            (("0x1", "latest", [100.5]), -32000, "invalid reward percentile: 100.500000"),
            (("0x1", "latest", list(range(101))), -32000,
             "invalid reward percentile: over the query limit 100"),
            (("0x1", hex(1006), []), -32000,
             "request beyond head block: requested 1006, head 1005"),
            (("0x1", "latest"), -32602, "missing value for required argument 2"),
            (("-1", "latest", []), -32602, 'invalid argument 0: invalid hex or decimal '
                                           'integer "-1"'),
            ((None, "latest", []), -32602, 'invalid argument 0: invalid hex or decimal '
                                           'integer "null"'),
            (("0x1", "latest", "50"), -32602, "invalid argument 2: json: cannot unmarshal "
                                              "string into Go value of type []float64"),
            (("0x1", "latest", ["50"]), -32602, "invalid argument 2: json: cannot unmarshal "
                                                "string into Go value of type float64"),
            (("0x1", "0x", []), -32602, 'invalid argument 1: hex string "0x"'),
        ]
        for params, code, message in errors:
            assert await node.error("eth_feeHistory", *params) == {
                "code": code, "message": message}, params
    with_node(rec, body)


def test_fee_history_caps_block_count_at_geths_1024() -> None:
    """FullNodeGPO MaxHeaderHistory: a longer blockCount is cut to the newest 1024."""
    rec = make_recording(1100, trades_per_block=0, noise=False)

    async def body(node: Node, sim: Simulator) -> None:
        got = await node.result("eth_feeHistory", "0x7d0", "latest", [])
        head = FIRST + 1099
        assert got["oldestBlock"] == hex(head - 1023)
        assert len(got["gasUsedRatio"]) == 1024 and len(got["baseFeePerGas"]) == 1025
    with_node(rec, body)


def test_the_next_base_fee_is_the_next_recorded_blocks() -> None:
    """geth's last baseFeePerGas entry (and the pending block's base fee) is CalcBaseFee of
    the newest block: the base fee the next block will have. The replay's base fees come
    from the recording, so it is the next recorded block's, published or not."""
    rec = fees_recording()
    chain = Chain(rec, settings=SimSettings(), t0_ns=0)
    chain.advance(4 * 1_000_000_000)  # blocks at 0, 2, 4 s: 1000..1002 published
    rpc = JsonRpc(chain, chain.settings.node)
    reply = json.loads(rpc.handle(json.dumps({"jsonrpc": "2.0", "id": 1,
                                              "method": "eth_feeHistory",
                                              "params": ["0x2", "latest", []]})).text or "")
    assert reply["result"]["baseFeePerGas"] == [hex(95), hex(97), hex(100)]
    pending = json.loads(rpc.handle(json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber",
        "params": ["pending", False]})).text or "")["result"]
    assert pending["baseFeePerGas"] == hex(100)


# -- methods that need state ------------------------------------------------------------------
@pytest.mark.parametrize("method", ["eth_getBalance", "eth_getCode", "eth_getStorageAt",
                                    "eth_getTransactionCount", "eth_call", "eth_estimateGas",
                                    "eth_sendRawTransaction", "eth_createAccessList",
                                    "eth_getProof"])
def test_methods_that_need_state_are_refused_saying_why(method: str) -> None:
    """geth's -32601 for a method the node does not serve (an HTTP 200 JSON-RPC error),
    its text kept and the reason added: the node replays blocks and has no state."""
    rpc = JsonRpc(Chain(make_recording(2), settings=SimSettings(), t0_ns=0))
    reply = json.loads(rpc.handle(json.dumps({"jsonrpc": "2.0", "id": 7, "method": method,
                                              "params": ["0x" + "00" * 20, "latest"]})).text
                       or "")
    assert reply["id"] == 7 and reply["error"]["code"] == -32601
    assert reply["error"]["message"] == (
        f"the method {method} does not exist/is not available: this node replays recorded "
        f"blocks and has no state (balances, code, storage, nonces, calls, transaction pool)")
    other = json.loads(rpc.handle('{"jsonrpc":"2.0","id":1,"method":"eth_nope"}').text or "")
    assert other["error"] == {"code": -32601,
                              "message": "the method eth_nope does not exist/is not available"}


def test_a_method_that_needs_state_is_a_json_rpc_error_over_http() -> None:
    async def body(node: Node, sim: Simulator) -> None:
        err = await node.error("eth_call", {"to": "0x" + "00" * 20}, "latest")
        assert err["code"] == -32601 and "has no state" in err["message"]
    with_node(make_recording(3), body)


# -- WebSocket: a message that is not JSON ----------------------------------------------------
def test_a_websocket_message_that_is_not_json_gets_a_parse_error_then_the_close() -> None:
    """geth v1.17 rpc/client.go read: a JSON syntax error (json.SyntaxError) gets a -32700
    with encoding/json's text, then read returns and the connection closes (v1.17.5
    websocketCodec.close: close frame 1000). It answered -32700 "parse error" and kept the
    connection open. A message that ends before a whole value (gorilla ReadJSON's
    io.ErrUnexpectedEOF) closes it without an answer; after a whole first value the rest
    of the message is ignored (a json.Decoder reads one value)."""
    rec = make_recording(3)

    async def main() -> None:
        async for sim in _serving(rec):
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(sim.urls["ws"]) as ws:
                    await ws.send_str('{"jsonrpc":"2.0","id":1,"method":"eth_chainId"} junk')
                    assert json.loads(await ws.receive_str(timeout=TIMEOUT)) == {
                        "jsonrpc": "2.0", "id": 1, "result": "0x89"}
                    await ws.send_str('{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}')
                    assert json.loads(await ws.receive_str(timeout=TIMEOUT))["id"] == 2
                    await ws.send_str("hello")
                    assert json.loads(await ws.receive_str(timeout=TIMEOUT)) == {
                        "jsonrpc": "2.0", "id": None, "error": {
                            "code": -32700,
                            "message": "invalid character 'h' looking for beginning of value"}}
                    msg = await ws.receive(timeout=TIMEOUT)
                    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000
                for bad, text in [(b'{"a":1 "b":2}', "invalid character '\"' after object "
                                                     "key:value pair"),
                                  (b"[1,]", "invalid character ']' looking for beginning "
                                            "of value"),
                                  (b'"\\q"', "invalid character 'q' in string escape code")]:
                    async with http.ws_connect(sim.urls["ws"]) as ws:
                        await ws.send_bytes(bad)
                        reply = json.loads(await ws.receive_str(timeout=TIMEOUT))
                        assert reply["error"] == {"code": -32700, "message": text}
                        msg = await ws.receive(timeout=TIMEOUT)
                        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000
                # past GO_SCAN_MAX_BYTES the C decoder reads it, in the same words
                big = "[" + "1," * 150_000 + "x]"  # within MAX_JSON_VALUES
                assert len(big) > GO_SCAN_MAX_BYTES
                async with http.ws_connect(sim.urls["ws"]) as ws:
                    pad = "a" * (GO_SCAN_MAX_BYTES + 10)
                    await ws.send_str('{"jsonrpc":"2.0","id":4,"method":"eth_chainId",'
                                      f'"params":[],"pad":"{pad}"}} junk')
                    assert json.loads(await ws.receive_str(timeout=TIMEOUT))["id"] == 4
                    await ws.send_str(big)
                    reply = json.loads(await ws.receive_str(timeout=TIMEOUT))
                    assert reply["error"] == {"code": -32700, "message": "invalid character "
                                              "'x' looking for beginning of value"}
                    msg = await ws.receive(timeout=TIMEOUT)
                    assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000
                for cut in ("", '{"jsonrpc":"2.0","id":1,', big[:-2]):
                    async with http.ws_connect(sim.urls["ws"]) as ws:
                        await ws.send_str(cut)
                        msg = await ws.receive(timeout=TIMEOUT)
                        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1000
                # the node's own bounds stay answers on an open connection
                async with http.ws_connect(sim.urls["ws"]) as ws:
                    await ws.send_str("[" * 100 + "]" * 100)
                    reply = json.loads(await ws.receive_str(timeout=TIMEOUT))
                    assert reply["error"]["code"] == -32700
                    await ws.send_str('{"jsonrpc":"2.0","id":3,"method":"eth_chainId"}')
                    assert json.loads(await ws.receive_str(timeout=TIMEOUT))["id"] == 3
    _run(main)


# -- web3.py 8, unmodified ----------------------------------------------------------------------
@pytest.fixture
def fees_node() -> Iterator[Simulator]:
    rec = fees_recording()
    sim = Simulator(rec, settings=SimSettings(history_blocks=len(rec.blocks) - 1))
    with serving_in_thread(sim) as loop:
        asyncio.run_coroutine_threadsafe(sim.wait_published(len(rec.blocks)),
                                         loop).result(TIMEOUT)
        yield sim


def test_web3_reads_fee_history_counts_and_transactions_by_block(fees_node: Simulator) -> None:
    w3 = Web3(Web3.HTTPProvider(fees_node.urls["http"]))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    history = w3.eth.fee_history(3, "latest", [25, 50, 95])
    assert history["oldestBlock"] == FEE_BLOCK
    assert history["reward"][0] == [1, 3, 5]
    assert history["baseFeePerGas"] == [100, 104, 110, 110]
    assert history["gasUsedRatio"][1] == 0.5
    assert w3.eth.get_block_transaction_count(FEE_BLOCK) == 3
    block = w3.eth.get_block(FEE_BLOCK)
    assert w3.eth.get_block_transaction_count(block["hash"]) == 3
    tx = w3.eth.get_transaction_by_block(FEE_BLOCK, 2)
    assert tx["hash"].to_0x_hex() == "0x" + "cd" * 32 and tx["transactionIndex"] == 2
    assert w3.eth.get_transaction_by_block(block["hash"], 0)["hash"] == block["transactions"][0]
