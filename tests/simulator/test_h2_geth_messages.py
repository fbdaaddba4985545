"""Requests read as geth v1.17 reads them (rpc/json.go jsonrpcMessage, rpc/handler.go):
Go's encoding/json fills the message (member names in any case, null and mistyped strings
left empty, a raw field holding null is set), a call needs a method name of at most 2048
bytes, and ``*_subscribe`` / ``*_unsubscribe`` are told by their suffix, whatever the
namespace."""

from __future__ import annotations

import json
from typing import Any

from simulator.jsonrpc import JsonRpc
from tests.simulator.test_jsonrpc import Host, make_rpc

INVALID = {"code": -32600, "message": "invalid request"}


def answer(rpc: JsonRpc, body: Any, host: Host | None = None) -> Any:
    text = rpc.handle(json.dumps(body), host).text
    return None if text is None else json.loads(text)


def test_member_names_match_in_any_case_as_go_decodes_them() -> None:
    rpc = make_rpc()
    for body in ({"JSONRPC": "2.0", "ID": 5, "Method": "eth_chainId"},
                 {"jsonRpc": "2.0", "Id": 5, "METHOD": "eth_chainId", "Params": []},
                 # the long s and the Kelvin sign fold to s and k (bytes.EqualFold)
                 {"j\u017fonrpc": "2.0", "id": 5, "method": "eth_chainId"}):
        assert answer(rpc, body) == {"jsonrpc": "2.0", "id": 5, "result": "0x89"}, body
    # the last member naming a field wins; unknown members are ignored
    assert answer(rpc, {"jsonrpc": "2.0", "id": 5, "method": "eth_nope",
                        "Method": "eth_chainId", "extra": {"x": 1}})["result"] == "0x89"
    # a batch's first call is found by the same reading (batch too large carries its id)
    rpc = make_rpc(max_batch=1)
    refusal = answer(rpc, [{"ID": 9, "jsonrpc": "2.0", "method": "eth_chainId"},
                           {"jsonrpc": "2.0", "id": 10, "method": "eth_chainId"}])
    assert refusal == [{"jsonrpc": "2.0", "id": 9,
                        "error": {"code": -32600, "message": "batch too large"}}]


def test_a_batch_too_large_takes_the_id_of_the_first_call_of_version_2() -> None:
    """geth's isCall wants version 2.0: an entry without it is no call."""
    rpc = make_rpc(max_batch=1)
    refusal = answer(rpc, [{"id": 8, "method": "eth_chainId"},
                           {"jsonrpc": "2.0", "id": 9, "method": "eth_chainId"}])
    assert refusal[0]["id"] == 9


def test_an_empty_or_mistyped_method_is_an_invalid_request() -> None:
    """isCall and isNotification want a method name: without one a message is an invalid
    request, answered with its id, or with null when it has none (a would-be notification
    gets its answer too)."""
    rpc = make_rpc()
    for method in ("", None, 7, ["eth_chainId"]):
        assert answer(rpc, {"jsonrpc": "2.0", "id": 3, "method": method}) == {
            "jsonrpc": "2.0", "id": 3, "error": INVALID}, method
        assert answer(rpc, {"jsonrpc": "2.0", "method": method}) == {
            "jsonrpc": "2.0", "id": None, "error": INVALID}, method
    assert answer(rpc, [{"jsonrpc": "2.0", "method": ""}, {"jsonrpc": "2.0", "method": "x"}]) \
        == [{"jsonrpc": "2.0", "id": None, "error": INVALID}]


def test_an_error_member_of_null_makes_a_response_which_is_dropped() -> None:
    """A json.RawMessage holding null is set: ``{"id":1,"error":null}`` is a response to a
    request of the node's own (none), dropped without an answer like any other."""
    rpc = make_rpc()
    assert answer(rpc, {"jsonrpc": "2.0", "id": 1, "error": None}) is None
    assert answer(rpc, {"jsonrpc": "2.0", "id": 1, "result": None}) is None


def test_a_method_name_past_2048_bytes_is_refused_and_a_shorter_one_echoed_whole() -> None:
    rpc = make_rpc()
    long_name = "eth_" + "x" * 2045
    assert answer(rpc, {"jsonrpc": "2.0", "id": 1, "method": long_name})["error"] == {
        "code": -32600, "message": "method name too long: 2049 > 2048"}
    wide = "eth_" + "\u00e9" * 1023  # 4 + 2046 bytes in UTF-8
    assert answer(rpc, {"jsonrpc": "2.0", "id": 1, "method": wide})["error"] == {
        "code": -32600, "message": "method name too long: 2050 > 2048"}
    assert answer(rpc, {"jsonrpc": "2.0", "method": long_name}) is None  # a notification
    name = "eth_" + "y" * 2044
    assert answer(rpc, {"jsonrpc": "2.0", "id": 1, "method": name})["error"] == {
        "code": -32601, "message": f"the method {name} does not exist/is not available"}


def test_subscribe_and_unsubscribe_are_told_by_their_suffix() -> None:
    rpc = make_rpc()
    host = Host()

    def call(method: str, *params: Any, on: Host | None = host) -> Any:
        return answer(rpc, {"jsonrpc": "2.0", "id": 1, "method": method,
                            "params": list(params)}, on)

    assert call("foo_subscribe", "newHeads")["error"] == {
        "code": -32601, "message": 'no "newHeads" subscription in foo namespace'}
    assert call("foo_subscribe", 'a"b\x01\u00a0c')["error"]["message"] == \
        'no "a\\"b\\x01\\u00a0c" subscription in foo namespace'
    assert call("eth_subscribe", "new\nHeads")["error"]["message"] == \
        'no "new\\nHeads" subscription in eth namespace'
    assert call("foo_subscribe")["error"] == {
        "code": -32602, "message": "expected subscription name as first argument"}
    assert call("foo_subscribe", "newHeads", on=None)["error"] == {
        "code": -32601, "message": "notifications not supported"}
    sub = call("eth_subscribe", "newHeads")["result"]
    assert call("foo_unsubscribe", sub)["result"] is True
    assert sub not in host.subs


def test_filter_and_block_reference_members_match_in_any_case() -> None:
    """FilterCriteria.UnmarshalJSON and BlockNumberOrHash decode with encoding/json too:
    ``"FromBlock"`` bounds the range and ``"blockhash"`` is the block hash."""
    rpc = make_rpc()

    def call(method: str, *params: Any) -> Any:
        return answer(rpc, {"jsonrpc": "2.0", "id": 1, "method": method,
                            "params": list(params)})

    logs = call("eth_getLogs", {"fromBlock": "0x3e8"})["result"]
    assert {log["blockNumber"] for log in logs} == {"0x3e8", "0x3e9", "0x3ea", "0x3eb"}
    later = call("eth_getLogs", {"FromBlock": "0x3ea", "TOPICS": [None]})["result"]
    assert later == [log for log in logs if int(log["blockNumber"], 16) >= 0x3ea]
    head = logs[-1]["blockHash"]
    assert call("eth_getLogs", {"fromBlock": "0x3e8", "blockhash": head})["error"] == {
        "code": -32602, "message": "invalid argument 0: cannot specify both BlockHash and "
                                   "FromBlock/ToBlock, choose one or the other"}
    assert call("eth_getLogs", {"BlockHash": head})["result"] == [
        log for log in logs if log["blockHash"] == head]
    assert call("eth_getLogs", {"fromBlock": "0x3e8", "FROMBLOCK": None})["result"] == [
        log for log in logs if log["blockNumber"] == "0x3eb"]  # null: the head
    receipts = call("eth_getBlockReceipts", {"BlockNumber": "0x3e9"})["result"]
    assert {r["blockNumber"] for r in receipts} == {"0x3e9"}
    filter_id = call("eth_newFilter", {"ToBlock": "0x3e9", "fromblock": "0x3e8"})["result"]
    assert call("eth_getFilterLogs", filter_id)["result"] == [
        log for log in logs if int(log["blockNumber"], 16) <= 0x3e9]


def test_number_ids_are_echoed_as_sent() -> None:
    """geth echoes an id's raw JSON (json.RawMessage): ``1E2`` stays ``1E2`` (Python wrote
    ``100.0``), ``1.50``, ``1e-7`` (``1e-07``), ``-0`` (``0``), all digits of a long
    fraction; in a batch, an error, and a batch too large's refusal too."""
    rpc = make_rpc(max_batch=2)
    for raw in ("1E2", "1.50", "1e-7", "-0", "-0.0", "1.0", "0.1000000000000000055511151231257827",
                "7", "-12"):
        one = rpc.handle(f'{{"jsonrpc":"2.0","id":{raw},"method":"eth_chainId"}}').text
        assert one == f'{{"jsonrpc":"2.0","id":{raw},"result":"0x89"}}'
        batch = rpc.handle(f'[{{"jsonrpc":"2.0","id":{raw},"method":"eth_nope"}}]').text
        assert batch is not None and batch.startswith(f'[{{"jsonrpc":"2.0","id":{raw},"error"')
        too_large = rpc.handle("[" + ",".join(
            [f'{{"jsonrpc":"2.0","id":{raw},"method":"eth_chainId"}}'] * 3) + "]").text
        assert too_large == (f'[{{"jsonrpc":"2.0","id":{raw},"error":{{"code":-32600,'
                             f'"message":"batch too large"}}}}]')
    logs = rpc.handle('{"jsonrpc":"2.0","id":2.50,"method":"eth_getLogs",'
                      '"params":[{"fromBlock":"0x3e8"}]}').text
    assert logs is not None and logs.startswith('{"jsonrpc":"2.0","id":2.50,"result":[{')
    assert json.loads(logs)["result"]


def test_the_rest_of_a_batch_past_its_response_size_as_geth_answers_it() -> None:
    """batchCallBuffer.respondWithError: every message left but a notification gets
    -32003 with its id as read (``"ID"`` too); one with no id gets an answer without an id
    member; a response in the batch was dropped before and gets nothing."""
    rpc = make_rpc(max_response_bytes=100)
    big = {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
           "params": [{"fromBlock": "0x3e8"}]}
    batch = [big, {"jsonrpc": "2.0", "method": "eth_chainId"}, 5,
             {"jsonrpc": "1.0", "method": "eth_chainId"},
             {"jsonrpc": "2.0", "id": 9, "result": 1},
             {"jsonrpc": "2.0", "ID": 7, "method": "eth_chainId"}]
    replies = answer(rpc, batch)
    cut = {"code": -32003, "message": "response too large"}
    assert replies[0]["id"] == 1 and replies[0]["result"]
    assert replies[1:] == [{"jsonrpc": "2.0", "error": cut}, {"jsonrpc": "2.0", "error": cut},
                           {"jsonrpc": "2.0", "id": 7, "error": cut}]
