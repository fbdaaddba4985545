"""The Etherscan-V2 explorer: envelope, texts, paging, indexes, rate limits, faults, HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from polyvocab import (
    CONDITIONAL_TOKENS,
    CTF_EXCHANGE_V2,
    ORDER_FILLED_V2,
    TRANSFER,
    TRANSFER_SINGLE,
    USDC_E,
    address_topic,
)
from simulator.explorer import (
    TEXT_ACTION,
    TEXT_ADDRESS,
    TEXT_CHAINID,
    TEXT_INVALID_KEY,
    TEXT_KEYLESS,
    TEXT_MISSING_KEY,
    TEXT_MODULE,
    TEXT_V1,
    Explorer,
    ExplorerReply,
    ExplorerSettings,
    make_explorer_handler,
    mask_key,
)
from simulator.recording import RecordedBlock

S = 1_000_000_000
KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ123456"
WALLET = "0x" + "aa" * 20
OTHER = "0x" + "bb" * 20
OPERATOR = "0x" + "cc" * 20
FIRST = 1000
T0 = 1_700_000_000


def _h(*parts: int) -> str:
    return "0x" + "".join(f"{p:08x}" for p in parts).rjust(64, "0")


def _word(n: int) -> str:
    return f"{n:064x}"


def make_block(number: int, *, fork: int = 0, n_transfers: int = 1) -> RecordedBlock:
    """Block ``number``: tx0 WALLET->OTHER, tx1 OTHER->WALLET, tx2 from OPERATOR (a trade).

    Logs: ``n_transfers`` USDC Transfer WALLET->OTHER (tx0), a CTF TransferSingle
    OTHER->WALLET (tx1), an OrderFilled V2 with maker WALLET (tx2).
    """
    bhash = _h(0xB10C, number, fork)
    txs = []
    for i, (frm, to) in enumerate([(WALLET, OTHER), (OTHER, WALLET), (OPERATOR, CTF_EXCHANGE_V2)]):
        txs.append({
            "blockHash": bhash, "blockNumber": hex(number), "from": frm, "to": to,
            "gas": hex(100_000 + i), "gasPrice": hex(30_000_000_000),
            "hash": _h(0x7A, number, i, fork),
            "input": "0xa9059cbb" + _word(i) if i != 1 else "0x", "nonce": hex(number * 10 + i),
            "transactionIndex": hex(i), "value": hex(i * 10**18), "type": "0x2",
        })
    logs: list[dict[str, Any]] = []

    def add(tx: int, address: str, topics: list[str], data: str) -> None:
        logs.append({
            "address": address, "topics": topics, "data": data, "blockNumber": hex(number),
            "blockHash": bhash, "blockTimestamp": hex(T0 + 2 * (number - FIRST)),
            "transactionHash": txs[tx]["hash"], "transactionIndex": hex(tx),
            "logIndex": hex(len(logs)), "removed": False,
        })

    for j in range(n_transfers):
        add(0, USDC_E, [TRANSFER, address_topic(WALLET), address_topic(OTHER)],
            "0x" + _word(1_000_000 + j))
    add(1, CONDITIONAL_TOKENS, [TRANSFER_SINGLE, address_topic(OPERATOR), address_topic(OTHER),
                                address_topic(WALLET)], "0x" + _word(42) + _word(5_000_000))
    add(2, CTF_EXCHANGE_V2, [ORDER_FILLED_V2, _h(0x0D, number), address_topic(WALLET),
                             address_topic(CTF_EXCHANGE_V2)], "0x" + _word(0) * 7)
    block = {
        "number": hex(number), "hash": bhash, "parentHash": _h(0xB10C, number - 1, 0),
        "timestamp": hex(T0 + 2 * (number - FIRST)), "gasUsed": "0x0",
        "transactions": [t["hash"] for t in txs],
    }
    return RecordedBlock(block=block, logs=logs, transactions=txs)


class FakeChain:
    """The first ``indexed`` blocks are visible to the explorer."""

    def __init__(self, blocks: list[RecordedBlock], indexed: int | None = None) -> None:
        self.blocks = blocks
        self.indexed = len(blocks) if indexed is None else indexed

    def indexed_blocks(self, now_ns: int) -> Sequence[RecordedBlock]:
        return self.blocks[: self.indexed]


def make(n: int = 5, *, indexed: int | None = None, **settings: Any) -> tuple[Explorer, FakeChain]:
    chain = FakeChain([make_block(FIRST + i) for i in range(n)], indexed)
    settings.setdefault("rate_per_s", 1e9)
    return Explorer(ExplorerSettings(**settings), chain), chain


class Caller:
    """Calls the explorer at a clock the test moves."""

    def __init__(self, explorer: Explorer) -> None:
        self.explorer = explorer
        self.now = 0

    def __call__(self, path: str = "/v2/api", key: str | None = KEY, chainid: str | None = "137",
                 **params: str) -> ExplorerReply:
        q = dict(params)
        if key is not None:
            q["apikey"] = key
        if chainid is not None:
            q["chainid"] = chainid
        self.now += 1
        return self.explorer.handle(path, q, self.now)


def ok_rows(reply: ExplorerReply) -> list[dict[str, Any]]:
    body = reply.json()
    assert reply.http_status == 200 and reply.outcome == "ok"
    assert body["status"] == "1" and body["message"] == "OK"
    assert isinstance(body["result"], list)
    return body["result"]


def notok(reply: ExplorerReply) -> str:
    body = reply.json()
    assert reply.http_status == 200
    assert body["status"] == "0" and body["message"] == "NOTOK", body
    return str(body["result"])


def all_strings(obj: Any) -> bool:
    if isinstance(obj, dict):
        return all(all_strings(v) for v in obj.values())
    if isinstance(obj, list):
        return all(all_strings(v) for v in obj)
    return isinstance(obj, str)


# -- actions --------------------------------------------------------------------------


def test_txlist_lists_transactions_where_the_address_is_from_or_to() -> None:
    ex, _ = make(3)
    rows = ok_rows(Caller(ex)(module="account", action="txlist", address=WALLET))
    assert len(rows) == 6  # 2 per block: WALLET->OTHER and OTHER->WALLET
    assert all_strings(rows)
    first = rows[0]
    assert list(first) == [
        "blockNumber", "timeStamp", "hash", "nonce", "blockHash", "transactionIndex", "from",
        "to", "value", "gas", "gasPrice", "isError", "txreceipt_status", "input",
        "contractAddress", "cumulativeGasUsed", "gasUsed", "confirmations", "methodId",
        "functionName"]
    assert first["blockNumber"] == str(FIRST) and first["timeStamp"] == str(T0)
    assert first["from"] == WALLET and first["to"] == OTHER
    assert first["nonce"] == str(FIRST * 10) and first["gas"] == "100000"
    assert first["gasPrice"] == "30000000000" and first["value"] == "0"
    assert first["methodId"] == "0xa9059cbb" and first["confirmations"] == "3"
    assert rows[1]["methodId"] == "0x" and rows[1]["value"] == str(10**18)
    assert rows[1]["cumulativeGasUsed"] == str(100_000 + 100_001)


def test_tokentx_rows_come_from_erc20_transfer_logs() -> None:
    ex, _ = make(2)
    call = Caller(ex)
    rows = ok_rows(call(module="account", action="tokentx", address=OTHER))
    assert len(rows) == 2 and all_strings(rows)
    r = rows[0]
    assert r["from"] == WALLET and r["to"] == OTHER and r["contractAddress"] == USDC_E
    assert r["value"] == "1000000" and r["tokenDecimal"] == "6" and r["tokenSymbol"] == "USDC"
    assert r["timeStamp"] == str(T0) and r["hash"] == _h(0x7A, FIRST, 0, 0)
    assert r["nonce"] == str(FIRST * 10)
    # OPERATOR never appears in an ERC-20 transfer
    assert call(module="account", action="tokentx", address=OPERATOR).outcome == "empty"
    # contractaddress alone, and as a filter
    assert len(ok_rows(call(module="account", action="tokentx", contractaddress=USDC_E))) == 2
    assert call(module="account", action="tokentx", address=WALLET,
                contractaddress=CONDITIONAL_TOKENS).outcome == "empty"


def test_token1155tx_rows_come_from_transfer_single_logs() -> None:
    ex, _ = make(2)
    rows = ok_rows(Caller(ex)(module="account", action="token1155tx", address=WALLET))
    assert len(rows) == 2 and all_strings(rows)
    r = rows[0]
    assert r["from"] == OTHER and r["to"] == WALLET and r["contractAddress"] == CONDITIONAL_TOKENS
    assert r["tokenID"] == "42" and r["tokenValue"] == "5000000"
    assert {"tokenName", "tokenSymbol", "confirmations", "blockHash"} <= set(r)


def test_getlogs_uses_hex_strings_with_zero_as_0x() -> None:
    ex, _ = make(2)
    rows = ok_rows(Caller(ex)(module="logs", action="getLogs", address=USDC_E,
                              fromBlock=str(FIRST), toBlock=str(FIRST + 1)))
    assert len(rows) == 2 and all_strings(rows)
    r = rows[0]
    assert list(r) == ["address", "topics", "data", "blockNumber", "blockHash", "timeStamp",
                       "gasPrice", "gasUsed", "logIndex", "transactionHash", "transactionIndex"]
    assert r["blockNumber"] == hex(FIRST) and r["timeStamp"] == hex(T0)
    assert r["logIndex"] == "0x" and r["transactionIndex"] == "0x"
    assert r["gasPrice"] == hex(30_000_000_000) and r["gasUsed"] == hex(100_000)
    assert r["topics"][0] == TRANSFER and r["data"] == "0x" + _word(1_000_000)


def test_getlogs_topic_filters_and_operators() -> None:
    ex, _ = make(3)
    call = Caller(ex)
    wallet_t = address_topic(WALLET)
    # OrderFilled with maker == WALLET (topic2), the monitor's query
    rows = ok_rows(call(module="logs", action="getLogs", address=CTF_EXCHANGE_V2,
                        topic0=ORDER_FILLED_V2, topic2=wallet_t, topic0_2_opr="and"))
    assert len(rows) == 3
    # no address: topics only
    assert len(ok_rows(call(module="logs", action="getLogs", topic0=ORDER_FILLED_V2))) == 3
    # and: Transfer with topic1 == WALLET -> 3 (one per block); or with TransferSingle -> 6
    assert len(ok_rows(call(module="logs", action="getLogs", topic0=TRANSFER,
                            topic1=wallet_t))) == 3
    rows = ok_rows(call(module="logs", action="getLogs", topic0=TRANSFER,
                        topic3=wallet_t, topic0_3_opr="or"))
    assert len(rows) == 6
    # and that matches nothing -> the getLogs empty message
    reply = call(module="logs", action="getLogs", topic0=TRANSFER, topic3=wallet_t)
    assert reply.outcome == "empty"
    assert reply.json() == {"status": "0", "message": "No records found", "result": []}


def test_getlogs_or_desc_and_unindexed_topics() -> None:
    ex, _ = make(4)
    call = Caller(ex)
    q = {"module": "logs", "action": "getLogs", "topic0": TRANSFER,
         "topic3": address_topic(WALLET), "topic0_3_opr": "or"}
    asc = ok_rows(call(**q))
    assert ok_rows(call(**q, sort="desc")) == list(reversed(asc))
    positions = [(int(r["blockNumber"], 16), int(r["logIndex"] + "0", 16) // 16) for r in asc]
    assert positions == sorted(positions) and len(positions) == 8
    # an order hash (topic1, not an address) is matched by scanning
    rows = ok_rows(call(module="logs", action="getLogs", topic1=_h(0x0D, FIRST + 2)))
    assert len(rows) == 1 and rows[0]["blockNumber"] == hex(FIRST + 2)
    rows = ok_rows(call(module="logs", action="getLogs", topic0=ORDER_FILLED_V2,
                        topic1=_h(0x0D, FIRST + 1), topic0_1_opr="and"))
    assert len(rows) == 1 and rows[0]["blockNumber"] == hex(FIRST + 1)


def test_getlogs_block_range_and_latest() -> None:
    ex, _ = make(5)
    call = Caller(ex)
    rows = ok_rows(call(module="logs", action="getLogs", address=USDC_E,
                        fromBlock=str(FIRST + 1), toBlock=str(FIRST + 2)))
    assert [int(r["blockNumber"], 16) for r in rows] == [FIRST + 1, FIRST + 2]
    rows = ok_rows(call(module="logs", action="getLogs", address=USDC_E,
                        fromBlock=str(FIRST + 3), toBlock="latest"))
    assert [int(r["blockNumber"], 16) for r in rows] == [FIRST + 3, FIRST + 4]


def test_proxy_eth_blocknumber_is_the_indexed_head_as_raw_jsonrpc() -> None:
    ex, _ = make(5, indexed=3)
    call = Caller(ex)
    reply = call(module="proxy", action="eth_blockNumber")
    assert reply.outcome == "ok"
    assert reply.json() == {"jsonrpc": "2.0", "id": 83, "result": hex(FIRST + 2)}
    assert call(module="proxy", action="eth_blockNumber", id="7").json()["id"] == 7


def test_results_only_from_indexed_blocks() -> None:
    ex, chain = make(5, indexed=2)
    call = Caller(ex)
    assert len(ok_rows(call(module="account", action="txlist", address=WALLET))) == 4
    chain.indexed = 5  # the explorer caught up
    rows = ok_rows(call(module="account", action="txlist", address=WALLET))
    assert len(rows) == 10 and rows[0]["confirmations"] == "5"


def test_reorg_replaces_indexed_rows() -> None:
    ex, chain = make(4)
    call = Caller(ex)
    before = ok_rows(call(module="account", action="token1155tx", address=WALLET))
    assert before[-1]["blockHash"] == _h(0xB10C, FIRST + 3, 0)
    # the last two blocks are replaced by a fork, the second without the 1155 transfer
    fork2 = make_block(FIRST + 2, fork=1)
    fork3 = make_block(FIRST + 3, fork=1)
    fork3.logs = [lg for lg in fork3.logs if lg["topics"][0] != TRANSFER_SINGLE]
    chain.blocks[2:] = [fork2, fork3]
    after = ok_rows(call(module="account", action="token1155tx", address=WALLET))
    assert [r["blockHash"] for r in after] == [
        _h(0xB10C, FIRST, 0), _h(0xB10C, FIRST + 1, 0), _h(0xB10C, FIRST + 2, 1)]
    # and a shorter chain (index rewound) drops the rest
    chain.indexed = 1
    assert len(ok_rows(call(module="account", action="token1155tx", address=WALLET))) == 1


class CountingChain(FakeChain):
    """A FakeChain that counts which block positions were read."""

    def __init__(self, blocks: list[RecordedBlock]) -> None:
        super().__init__(blocks, 0)
        self.reads: list[int] = []

    def indexed_blocks(self, now_ns: int) -> Sequence[RecordedBlock]:
        chain = self

        class View(Sequence[RecordedBlock]):
            def __len__(self) -> int:
                return chain.indexed

            def __getitem__(self, i: Any) -> Any:
                positions = range(*i.indices(chain.indexed)) if isinstance(i, slice) else [i]
                chain.reads.extend(positions)
                out = [chain.blocks[k] for k in positions]
                return out if isinstance(i, slice) else out[0]

        return View()


def test_an_idle_explorer_with_a_window_indexes_only_the_blocks_it_keeps() -> None:
    blocks = [make_block(FIRST + i) for i in range(60)]
    idle, busy = CountingChain(blocks), CountingChain(blocks)
    ex_idle = Explorer(ExplorerSettings(rate_per_s=1e9, retain_blocks=8), idle)
    ex_busy = Explorer(ExplorerSettings(rate_per_s=1e9, retain_blocks=8), busy)
    call_idle, call_busy = Caller(ex_idle), Caller(ex_busy)
    q = {"module": "account", "action": "txlist", "address": WALLET}
    idle.indexed = 5
    call_idle(**q)
    for n in range(5, 61):  # one caller asks at every block, the other only at the end
        busy.indexed = n
        busy_rows = ok_rows(call_busy(**q))
    idle.indexed = 60
    idle.reads.clear()
    assert ok_rows(call_idle(**q)) == busy_rows and len(busy_rows) == 2 * 8
    # blocks 5..51 would be indexed only to be let go at once: they are never read
    assert not any(4 < k < 52 for k in idle.reads) and max(idle.reads) == 59


# -- paging ---------------------------------------------------------------------------


def test_paging_is_exact_and_sort_desc_reverses() -> None:
    ex, _ = make(25)
    call = Caller(ex)
    q = {"module": "account", "action": "token1155tx", "address": WALLET}
    everything = ok_rows(call(**q))
    assert len(everything) == 25
    page3 = ok_rows(call(**q, page="3", offset="10"))
    assert page3 == everything[20:25]
    page2 = ok_rows(call(**q, page="2", offset="10", sort="desc"))
    assert page2 == list(reversed(everything))[10:20]
    reply = call(**q, page="4", offset="10")
    assert reply.json() == {"status": "0", "message": "No transactions found", "result": []}


def test_startblock_endblock_bound_account_results() -> None:
    ex, _ = make(10)
    rows = ok_rows(Caller(ex)(module="account", action="token1155tx", address=WALLET,
                              startblock=str(FIRST + 2), endblock=str(FIRST + 4)))
    assert [r["blockNumber"] for r in rows] == [str(FIRST + 2), str(FIRST + 3), str(FIRST + 4)]


def test_result_window_error() -> None:
    ex, _ = make(2)
    call = Caller(ex)
    text = notok(call(module="account", action="txlist", address=WALLET, page="11",
                      offset="1000"))
    assert text == ("Result window is too large, PageNo x Offset size must be less than or "
                    "equal to 10000")
    assert call(module="account", action="txlist", address=WALLET, page="10",
                offset="1000").outcome == "empty"


def test_at_most_1000_records_a_call() -> None:
    ex = Explorer(ExplorerSettings(rate_per_s=1e9),
                  FakeChain([make_block(FIRST, n_transfers=1200)]))
    call = Caller(ex)
    q = {"module": "account", "action": "tokentx", "address": WALLET}
    assert len(ok_rows(call(**q))) == 1000
    assert len(ok_rows(call(**q, offset="5000"))) == 1000
    assert len(ok_rows(call(**q, offset="5000", page="2"))) == 200
    rows = ok_rows(call(module="logs", action="getLogs", address=USDC_E, offset="1200"))
    assert len(rows) == 1000


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize("params,text", [
    ({"chainid": None, "module": "proxy", "action": "eth_blockNumber"}, TEXT_CHAINID),
    ({"chainid": "1", "module": "proxy", "action": "eth_blockNumber"}, TEXT_CHAINID),
    ({"chainid": "abc", "module": "proxy", "action": "eth_blockNumber"}, TEXT_CHAINID),
    ({"key": None, "module": "proxy", "action": "eth_blockNumber"}, TEXT_MISSING_KEY),
    ({"key": "", "module": "proxy", "action": "eth_blockNumber"}, TEXT_MISSING_KEY),
    ({"module": "account", "action": "balancemulti"}, TEXT_ACTION),
    ({"module": "account"}, TEXT_ACTION),
    ({"module": "logs", "action": "txlist"}, TEXT_ACTION),
    ({"module": "stats", "action": "ethprice"}, TEXT_MODULE),
    ({}, TEXT_MODULE),
    ({"module": "account", "action": "txlist"}, TEXT_ADDRESS),
    ({"module": "account", "action": "txlist", "address": "0x1234"}, TEXT_ADDRESS),
    ({"module": "account", "action": "tokentx", "address": "0x" + "zz" * 20}, TEXT_ADDRESS),
    ({"module": "logs", "action": "getLogs", "address": "nope"}, TEXT_ADDRESS),
    ({"module": "logs", "action": "getLogs"}, TEXT_ADDRESS),
    ({"module": "logs", "action": "getLogs", "topic0": "0x12"}, "Error! Invalid topic0 format"),
    ({"module": "logs", "action": "getLogs", "topic0": TRANSFER, "topic1": TRANSFER,
      "topic0_1_opr": "xor"}, "Error! Invalid topic0_1_opr"),
    ({"module": "logs", "action": "getLogs", "address": USDC_E, "fromBlock": "0xzz"},
     "Error! Invalid fromBlock"),
    ({"module": "account", "action": "txlist", "address": WALLET, "startblock": "-1"},
     "Error! Invalid startblock"),
    ({"module": "account", "action": "txlist", "address": WALLET, "page": "one"},
     "Error! Invalid page"),
    ({"module": "account", "action": "txlist", "address": WALLET, "offset": "1e3"},
     "Error! Invalid offset"),
])
def test_bad_requests_get_the_real_texts(params: dict[str, Any], text: str) -> None:
    ex, _ = make(2)
    call = Caller(ex)
    kwargs = dict(params)
    key = kwargs.pop("key", KEY)
    chainid = kwargs.pop("chainid", "137")
    reply = call(key=key, chainid=chainid, **kwargs)
    assert notok(reply) == text
    assert reply.outcome == "error"


def test_invalid_api_key_when_keys_are_configured() -> None:
    ex, _ = make(2, api_keys={KEY})
    call = Caller(ex)
    assert notok(call(key="WRONGKEY12345", module="proxy", action="eth_blockNumber")) == \
        TEXT_INVALID_KEY
    assert call(module="proxy", action="eth_blockNumber").outcome == "ok"


def test_deprecated_v1_path() -> None:
    ex, _ = make(2)
    reply = Caller(ex)("/api", module="account", action="txlist", address=WALLET)
    assert notok(reply) == TEXT_V1


def test_module_and_action_labels_are_bounded() -> None:
    ex, _ = make(1)
    call = Caller(ex)
    reply = call(module="x" * 1000, action="y" * 1000)
    assert (reply.module, reply.action) == ("invalid", "invalid")
    reply = call(module="account", action="tokentx", address=WALLET)
    assert (reply.module, reply.action) == ("account", "tokentx")


# -- rate limits -----------------------------------------------------------------------


def test_rate_limit_three_per_second_then_the_text() -> None:
    ex, _ = make(1, rate_per_s=3.0)
    q = {"apikey": KEY, "chainid": "137", "module": "proxy", "action": "eth_blockNumber"}
    replies = [ex.handle("/v2/api", q, 5 * S) for _ in range(4)]
    assert [r.outcome for r in replies] == ["ok", "ok", "ok", "rate_limited"]
    assert notok(replies[3]) == "Max calls per sec rate limit reached (3/sec)"
    # one more passes a third of a second later; another key is not affected
    assert ex.handle("/v2/api", q, 5 * S + S // 3 + 1).outcome == "ok"
    assert ex.handle("/v2/api", {**q, "apikey": "OTHERKEY1234"}, 5 * S).outcome == "ok"


def test_rate_text_names_the_configured_rate() -> None:
    ex, _ = make(1, rate_per_s=5.0)
    q = {"apikey": KEY, "chainid": "137", "module": "proxy", "action": "eth_blockNumber"}
    replies = [ex.handle("/v2/api", q, 0) for _ in range(6)]
    assert notok(replies[5]) == "Max calls per sec rate limit reached (5/sec)"


def test_rate_limit_scales_with_speed() -> None:
    # speed 10: 3 per simulated second = 30 per wall second
    ex, _ = make(1, rate_per_s=3.0, speed=10.0)
    q = {"apikey": KEY, "chainid": "137", "module": "proxy", "action": "eth_blockNumber"}
    outcomes = [ex.handle("/v2/api", q, i * S // 100).outcome for i in range(100)]
    assert 30 <= outcomes.count("ok") <= 33


def test_daily_limit() -> None:
    ex, _ = make(1, rate_per_s=1000.0, daily_limit=3)
    q = {"apikey": KEY, "chainid": "137", "module": "proxy", "action": "eth_blockNumber"}
    outcomes = [ex.handle("/v2/api", q, i * S).outcome for i in range(4)]
    assert outcomes == ["ok", "ok", "ok", "rate_limited"]
    assert notok(ex.handle("/v2/api", q, 10 * S)) == "Max daily rate limit reached"


def test_keyless_calls_when_keys_are_not_required() -> None:
    ex, _ = make(1, require_key=False)
    q = {"chainid": "137", "module": "proxy", "action": "eth_blockNumber"}
    assert ex.handle("/v2/api", q, 0, client="10.0.0.1").outcome == "ok"
    reply = ex.handle("/v2/api", q, 1, client="10.0.0.1")
    assert reply.outcome == "rate_limited" and notok(reply) == TEXT_KEYLESS
    assert ex.handle("/v2/api", q, 2, client="10.0.0.2").outcome == "ok"
    assert ex.handle("/v2/api", q, 5 * S + 1, client="10.0.0.1").outcome == "ok"  # 1 per 5 s


# -- faults ---------------------------------------------------------------------------


def test_rate_limit_fault_tightens_the_limit_with_the_real_text() -> None:
    ex, _ = make(1, rate_per_s=3.0)
    q = {"apikey": KEY, "chainid": "137", "module": "proxy", "action": "eth_blockNumber"}
    ex.faults.rate_limit = 1.0
    replies = [ex.handle("/v2/api", q, 0) for _ in range(2)]
    assert [r.outcome for r in replies] == ["ok", "rate_limited"]
    assert notok(replies[1]) == "Max calls per sec rate limit reached (1/sec)"
    ex.faults.rate_limit = None
    assert ex.handle("/v2/api", q, 10 * S).outcome == "ok"
    with pytest.raises(ValueError):
        ex.faults.rate_limit = 0.0


def test_down_fault_html502_and_timeout() -> None:
    ex, _ = make(1)
    call = Caller(ex)
    ex.faults.down = "html502"
    reply = call(module="proxy", action="eth_blockNumber")
    assert reply.http_status == 502 and reply.outcome == "down"
    assert reply.content_type.startswith("text/html") and b"502 Bad Gateway" in reply.body
    ex.faults.down = "timeout"
    reply = call(module="proxy", action="eth_blockNumber")
    assert reply.outcome == "timeout" and reply.http_status == 504
    ex.reset()
    assert call(module="proxy", action="eth_blockNumber").outcome == "ok"
    with pytest.raises(ValueError):
        ex.faults.down = "explode"  # type: ignore[assignment]


# -- keys never leak --------------------------------------------------------------------


def test_token_metadata_from_a_toml_table() -> None:
    settings = ExplorerSettings(tokens={USDC_E.upper().replace("0X", "0x"): {
        "name": "Test USD", "symbol": "TUSD", "decimals": 2}}, rate_per_s=1e9)
    ex = Explorer(settings, FakeChain([make_block(FIRST)]))
    row = ok_rows(Caller(ex)(module="account", action="tokentx", address=WALLET))[0]
    assert (row["tokenName"], row["tokenSymbol"], row["tokenDecimal"]) == ("Test USD", "TUSD", "2")
    with pytest.raises(ValueError, match="expected name, symbol, decimals"):
        ExplorerSettings(tokens={USDC_E: {"name": "x"}})


@pytest.mark.parametrize("bad", [{"rate_per_s": 0}, {"speed": -1}, {"max_records": 0},
                                 {"timeout_hang_s": -1.0}])
def test_bad_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ExplorerSettings(**bad)


def test_key_is_masked_in_replies_and_never_echoed() -> None:
    assert mask_key(KEY).startswith("key#") and KEY not in mask_key(KEY)
    assert mask_key("short") != mask_key(KEY)
    assert mask_key("") == "-"
    ex, _ = make(2, api_keys={"OTHERKEY1234"})
    call = Caller(ex)
    for reply in (call(module="account", action="txlist", address=WALLET),
                  call(module="nope"), call("/api")):
        assert reply.key_masked == mask_key(KEY)
        assert KEY.encode() not in reply.body


# -- scale ---------------------------------------------------------------------------


def test_indexed_queries_answer_many_wallets_from_recent_blocks() -> None:
    # 2000 blocks x 3 txs; 100 polls of tokentx near the head (speed: benchmarks/)
    ex, _ = make(2000)
    call = Caller(ex)
    for _ in range(100):
        empty = call(module="account", action="tokentx", address="0x" + "ee" * 20,
                     startblock=str(FIRST + 1990))
        assert empty.json()["message"] == "No transactions found"
    rows = ok_rows(call(module="account", action="tokentx", address=WALLET,
                        startblock=str(FIRST + 1990)))
    assert [int(r["blockNumber"]) for r in rows] == list(range(FIRST + 1990, FIRST + 2000))


# -- HTTP shell -----------------------------------------------------------------------


def _app(ex: Explorer, seen: list[ExplorerReply]) -> web.Application:
    handler = make_explorer_handler(ex, now_ns=time.monotonic_ns, on_request=seen.append)
    app = web.Application()
    app.router.add_get("/v2/api", handler)
    app.router.add_get("/api", handler)
    return app


async def _with_client(ex: Explorer, seen: list[ExplorerReply], body: Any) -> Any:
    async with TestClient(TestServer(_app(ex, seen), host="127.0.0.1")) as client:
        return await body(client)


def test_handler_serves_the_envelope_over_http() -> None:
    ex, _ = make(3)
    seen: list[ExplorerReply] = []

    async def body(client: TestClient) -> None:
        r = await client.get("/v2/api", params={"chainid": "137", "module": "account",
                                                "action": "tokentx", "address": WALLET,
                                                "apikey": KEY, "page": "1", "offset": "2"})
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/json")
        data = await r.json()
        assert data["status"] == "1" and len(data["result"]) == 2
        r = await client.get("/api", params={"module": "account", "action": "txlist"})
        assert (await r.json())["result"] == TEXT_V1

    asyncio.run(_with_client(ex, seen, body))
    assert [(s.outcome, s.module, s.action, s.key_masked) for s in seen] == [
        ("ok", "account", "tokentx", mask_key(KEY)), ("error", "account", "txlist", "-")]


@pytest.mark.parametrize("query", [
    "chainid=137&module=account&action=txlist&address=%zz&apikey=K1234",
    "chainid=137&module=account&action=txlist&address=%ff%fe&apikey=K1234",
    "chainid=137&module=logs&action=getLogs&fromBlock=0xg&address=" + USDC_E + "&apikey=K1234",
    "chainid=137&module=logs&action=getLogs&topic0=" + "f" * 5000 + "&apikey=K1234",
    "chainid=137&module=account&action=txlist&address=" + WALLET + "&page=99999999999999999999"
    "999&offset=1&apikey=K1234",
    "chainid=137&module=account&module=logs&action=txlist&address=" + WALLET + "&apikey=K1234",
    "chainid=137&&&=&module&action=&apikey=K1234",
    "chainid=%00137&apikey=K1234",
    "",
])
def test_bad_query_strings_never_give_a_500(query: str) -> None:
    ex, _ = make(2)
    seen: list[ExplorerReply] = []

    async def body(client: TestClient) -> tuple[int, Any]:
        r = await client.get("/v2/api?" + query)
        return r.status, await r.json(content_type=None)

    status, data = asyncio.run(_with_client(ex, seen, body))
    assert status == 200
    assert data["status"] in ("0", "1") and isinstance(data["message"], str)
    assert len(seen) == 1


def test_handler_html502_fault_over_http() -> None:
    ex, _ = make(1)
    ex.faults.down = "html502"
    seen: list[ExplorerReply] = []

    async def body(client: TestClient) -> tuple[int, str, str]:
        r = await client.get("/v2/api", params={"chainid": "137", "apikey": KEY})
        return r.status, r.headers["Content-Type"], await r.text()

    status, ctype, text = asyncio.run(_with_client(ex, seen, body))
    assert status == 502 and ctype.startswith("text/html") and "<html>" in text
    assert seen[0].outcome == "down"


def test_handler_timeout_fault_holds_then_504() -> None:
    ex, _ = make(1, timeout_hang_s=3.0, speed=10.0)  # 0.3 wall seconds
    ex.faults.down = "timeout"
    seen: list[ExplorerReply] = []

    async def body(client: TestClient) -> tuple[int, float]:
        started = time.monotonic()
        r = await client.get("/v2/api", params={"chainid": "137", "apikey": KEY})
        await r.read()
        return r.status, time.monotonic() - started

    status, waited = asyncio.run(_with_client(ex, seen, body))
    assert status == 504 and waited >= 0.29
    assert seen[0].outcome == "timeout"


def test_handler_timeout_fault_unbounded_until_the_client_gives_up() -> None:
    ex, _ = make(1, timeout_hang_s=None)
    ex.faults.down = "timeout"
    seen: list[ExplorerReply] = []

    async def body(client: TestClient) -> str:
        try:
            await client.get("/v2/api", params={"chainid": "137", "apikey": KEY},
                             timeout=aiohttp.ClientTimeout(total=0.3))
        except TimeoutError:
            return "gave up"
        return "answered"

    assert asyncio.run(_with_client(ex, seen, body)) == "gave up"
    assert seen[0].outcome == "timeout"
