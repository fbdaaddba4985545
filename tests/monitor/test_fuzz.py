"""Fuzzing the monitor's input paths, and a table of named bad inputs beside it.

Property for every path: no exception escapes but the documented ones, nothing hangs, and
valid trades in the same stream are still delivered. Hypothesis runs with a fixed seed
(``derandomize``) so the suite is deterministic; ``make soak`` can raise the examples.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from monitor_helpers import WALLET, order_filled

from monitor.clock import ManualClock
from monitor.connection import WsSettings
from monitor.errors import MonitorError
from monitor.explorer_client import ExplorerClient, explorer_log_to_rpc
from monitor.history import NullHistory
from monitor.jsonrpc_client import classify_http
from monitor.pipeline import Pipeline
from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.trades import DecodeError, decode_order_filled
from monitor.websocket_manager import WebSocketManager, _Link, _Sub

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=40),
                        st.sampled_from(["0x", "0xZZ", "0x" + "f" * 80, "-0x1", "1e309"]))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=30)

LOG_KEYS = ["address", "topics", "data", "blockNumber", "blockHash", "blockTimestamp",
            "transactionHash", "transactionIndex", "logIndex", "removed"]


@st.composite
def mutated_log(draw: st.DrawFn) -> dict[str, Any]:
    """A valid OrderFilled log with one to three fields replaced by random JSON."""
    log: dict[str, Any] = order_filled(block=draw(st.integers(1, 10**6)),
                                       tx=draw(st.integers(1, 10**6)))
    for key in draw(st.lists(st.sampled_from(LOG_KEYS), min_size=1, max_size=3)):
        if draw(st.booleans()):
            log[key] = draw(json_value)
        else:
            log.pop(key, None)
    return log


# -- log decoding --------------------------------------------------------------------------

@FUZZ
@given(mutated_log())
def test_decoding_a_mutated_log_raises_only_decode_error(log: dict[str, Any]) -> None:
    try:
        decode_order_filled(log)
    except DecodeError:
        pass


@FUZZ
@given(st.lists(st.one_of(mutated_log(), json_value), max_size=6), st.integers(0, 6))
def test_valid_trades_survive_any_garbage_in_the_same_batch(garbage: list[Any],
                                                             at: int) -> None:
    store = Store(":memory:")
    sink = MemorySink()
    pipe = Pipeline(store, sink, wallets=[WALLET])
    valid = [order_filled(block=5, tx=10**7 + i, log_index=i) for i in range(3)]
    batch = garbage[:at] + valid + garbage[at:]
    asyncio.run(pipe.on_logs(batch, "ws"))
    ids = {e.trade_id for e in sink.events if e.kind == "trade"}
    assert {f"{v['transactionHash']}:{int(v['logIndex'], 16)}" for v in valid} <= ids
    store.close()


# -- WebSocket frames ------------------------------------------------------------------------

def _manager() -> tuple[WebSocketManager, _Link, list[Any]]:
    got: list[Any] = []
    mgr = WebSocketManager("ws://127.0.0.1:9/", settings=WsSettings(), clock=ManualClock(),
                           history=NullHistory())
    link = _Link(None, 1)
    sub = _Sub("sub-1", ["logs", {}], got.append, node_id="0xabc")
    mgr._subs[sub.stable_id] = sub
    link.by_node["0xabc"] = sub
    return mgr, link, got


def _note(result: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                       "params": {"subscription": "0xabc", "result": result}})


frames = st.one_of(
    json_value.map(lambda v: json.dumps(v)),
    st.text(max_size=200),
    st.binary(max_size=200),
    json_value.map(lambda v: json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                         "params": v})),
    json_value.map(lambda v: json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                                         "params": {"subscription": v, "result": 1}})),
    json_value.map(lambda v: json.dumps({"jsonrpc": "2.0", "id": v, "result": v})),
    json_value.map(lambda v: json.dumps({"jsonrpc": "2.0", "id": 1, "error": v})),
    st.integers(1, 200_000).map(lambda n: "[" * n + "]" * n),
)


@FUZZ
@given(st.lists(frames, max_size=8))
def test_any_frame_sequence_is_absorbed_and_valid_notifications_still_arrive(
        garbage: list[str | bytes]) -> None:
    mgr, link, got = _manager()

    async def go() -> None:
        for i, frame in enumerate(garbage):
            await mgr._handle_frame(link, frame)
            await mgr._handle_frame(link, _note({"n": i}))
    asyncio.run(go())
    assert [g for g in got if isinstance(g, dict) and "n" in g] == \
        [{"n": i} for i in range(len(garbage))]


# -- explorer and JSON-RPC answers -------------------------------------------------------------

@FUZZ
@given(st.dictionaries(st.sampled_from([*LOG_KEYS, "timeStamp", "gasPrice"]), json_value,
                       max_size=12))
def test_explorer_rows_convert_or_raise_value_error(row: dict[str, Any]) -> None:
    try:
        out = explorer_log_to_rpc(row)
    except (ValueError, TypeError):
        return
    assert int(out["blockNumber"], 16) < 1 << 63


@FUZZ
@given(json_value)
def test_explorer_envelopes_are_read_or_refused_with_a_monitor_error(body: Any) -> None:
    client = ExplorerClient.__new__(ExplorerClient)
    try:
        client._envelope(body)
    except MonitorError:
        pass


@FUZZ
@given(st.integers(100, 599), st.one_of(json_value.map(json.dumps), st.text(max_size=300)))
def test_jsonrpc_http_answers_are_classified_never_raised(status: int, body: str) -> None:
    out = classify_http(status, body, {"Retry-After": "banana"})
    assert out is None or isinstance(out, (MonitorError, dict, list, str, int, float, bool))


def _answer_item() -> Any:
    """A JSON-RPC response object with any id, result or error (or any JSON at all)."""
    return st.one_of(json_value, st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"),
         "id": st.one_of(st.integers(0, 4), json_value)},
        optional={"result": json_value, "error": json_value}))


@FUZZ
@given(st.one_of(st.lists(_answer_item(), max_size=5), _answer_item()))
def test_jsonrpc_http_answer_matching_raises_only_a_monitor_error(parsed: Any) -> None:
    """Whatever parsed JSON the node answers a call or a batch of two with, the client
    returns a value for each call or raises a MonitorError (retried or surfaced), never
    TypeError and the like from matching ids (the HTTP layer is replaced by the answer)."""
    from polyvocab.jsonrpc_http import JsonRpcHttpClient

    client = JsonRpcHttpClient("http://127.0.0.1:9/", None, max_retries=0)  # type: ignore[arg-type]

    async def post(body: Any, methods: list[str], check: Any, rule: Any = None) -> Any:
        return check(parsed)

    client._post = post  # type: ignore[method-assign]
    for call in (client.call("eth_blockNumber"),
                 client.batch([("eth_blockNumber", []), ("eth_chainId", [])])):
        try:
            out = asyncio.run(call)
        except MonitorError:
            continue
        if isinstance(out, list) and isinstance(parsed, list):
            assert len(out) == 2


# -- the named bad inputs ------------------------------------------------------------------

def _log(**over: Any) -> dict[str, Any]:
    log = order_filled(block=100, tx=1)
    log.update(over)
    return log


_V2 = order_filled()
BAD_LOGS: dict[str, Any] = {
    "not_an_object": [1, 2, 3],
    "null": None,
    "string": "0xdeadbeef",
    "no_topics": _log(topics=None),
    "three_topics": _log(topics=_V2["topics"][:3]),
    "five_topics": _log(topics=[*_V2["topics"], _V2["topics"][0]]),
    "topic_not_hex": _log(topics=[_V2["topics"][0], "0xZZ", *_V2["topics"][2:]]),
    "topic_short": _log(topics=[_V2["topics"][0], "0x12", *_V2["topics"][2:]]),
    "topic_is_list": _log(topics=[_V2["topics"][0], [1], *_V2["topics"][2:]]),
    "unknown_topic0": _log(topics=["0x" + "ab" * 32, *_V2["topics"][1:]]),
    "other_address": _log(address="0x" + "99" * 20),
    "data_not_hex": _log(data="0xGG"),
    "data_short": _log(data=_V2["data"][:-64]),
    "data_long": _log(data=_V2["data"] + "00" * 32),
    "data_number": _log(data=12345),
    "block_number_2_64": _log(blockNumber=hex(1 << 64)),
    "block_number_5000_digits": _log(blockNumber="0x" + "f" * 5000),
    "block_number_negative": _log(blockNumber="-0x1"),
    "block_number_decimal_text": _log(blockNumber="100"),
    "block_number_float": _log(blockNumber=1.5),
    "log_index_list": _log(logIndex=[0]),
    "log_index_huge": _log(logIndex="0x" + "1" * 40),
    "tx_hash_short": _log(transactionHash="0x1234"),
    "tx_hash_object": _log(transactionHash={"a": 1}),
    "block_hash_missing": {k: v for k, v in _V2.items() if k != "blockHash"},
    "side_2": _log(data="0x" + "2".rjust(64, "0") + _V2["data"][66:]),
    "deeply_nested_data": _log(data=json.loads("[" * 300 + "]" * 300)),
}


@pytest.mark.parametrize("name", sorted(BAD_LOGS))
def test_named_bad_log_is_counted_and_the_valid_trade_beside_it_delivered(name: str) -> None:
    store = Store(":memory:")
    sink = MemorySink()
    pipe = Pipeline(store, sink, wallets=[WALLET])
    good = order_filled(block=100, tx=2)
    delivered = asyncio.run(pipe.on_logs([BAD_LOGS[name], good], "ws"))
    assert [t.tx_hash for t in delivered] == [good["transactionHash"]]
    assert pipe.counters["decode_errors"] + pipe.counters["other_wallet"] == 1


def test_a_flood_of_bad_logs_is_logged_sparingly_and_recorded_bounded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # a node sending garbage at full rate wrote a warning a log (34,800 in 30 s), and a
    # 10 MB transactionHash went whole into the history and the log line
    from monitor.history import History

    history = History(tmp_path / "h.jsonl")
    pipe = Pipeline(Store(":memory:"), MemorySink(), wallets=[WALLET], history=history)
    bad = _log(transactionHash="0x" + "ab" * 5_000_000, data="0xzz")
    with caplog.at_level("WARNING", logger="monitor.pipeline"):
        for _ in range(2_500):
            pipe.report_decode_error(bad, "data is not hex")
    history.close()
    warnings = [r for r in caplog.records if "decode error" in r.getMessage()]
    assert len(warnings) == 5  # the first three, the 1000th and the 2000th
    assert max(len(r.getMessage()) for r in warnings) < 400
    rows = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    errors = [r for r in rows if r["event"] == "decode_error"]
    assert len(errors) == 2_500 and max(len(json.dumps(r)) for r in errors) < 600


BAD_RPC_ANSWERS: dict[str, tuple[int, str]] = {
    "html_200": (200, "<html><body>Bad Gateway</body></html>"),
    "html_502": (502, "<html>502</html>"),
    "truncated": (200, '{"jsonrpc":"2.0","id":1,"res'),
    "empty": (200, ""),
    "deep": (200, "[" * 100_000 + "]" * 100_000),
    "huge_number": (200, '{"jsonrpc":"2.0","id":1,"result":' + "9" * 5000 + "}"),
    "error_not_object": (200, '{"jsonrpc":"2.0","id":1,"error":"boom"}'),
    "error_code_text": (200, '{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}'),
    "rate_limit_text_429": (429, "Too Many Requests"),
    "nul_bytes": (200, "\x00\x00\x00"),
}


@pytest.mark.parametrize("name", sorted(BAD_RPC_ANSWERS))
def test_named_bad_rpc_answer_is_a_monitor_error(name: str) -> None:
    status, body = BAD_RPC_ANSWERS[name]
    out = classify_http(status, body)
    assert isinstance(out, MonitorError) or (isinstance(out, dict) and "error" in out), out


BAD_EXPLORER_BODIES: dict[str, Any] = {
    "list": [1, 2],
    "no_status": {"message": "OK", "result": []},
    "status_1_result_text": {"status": "1", "message": "OK", "result": "oops"},
    "notok_invalid_key": {"status": "0", "message": "NOTOK", "result": "Invalid API Key"},
    "notok_v1": {"status": "0", "message": "NOTOK",
                 "result": "You are using a deprecated V1 endpoint, switch to Etherscan API V2."},
    "wrong_pair": {"status": "1", "message": "NOTOK", "result": "Max rate limit reached"},
    "status_number": {"status": 7, "message": None, "result": None},
}


@pytest.mark.parametrize("name", sorted(BAD_EXPLORER_BODIES))
def test_named_bad_explorer_body_is_refused_or_read_as_data(name: str) -> None:
    client = ExplorerClient.__new__(ExplorerClient)
    try:
        result = client._envelope(BAD_EXPLORER_BODIES[name])
    except MonitorError:
        return
    assert not isinstance(result, list) or result == []


def test_deep_json_never_reaches_the_c_parser_even_with_a_raised_recursion_limit() -> None:
    """A library that raised the recursion limit turns 100,000 nested arrays into a
    segmentation fault inside ``json.loads``: every parser checks nesting first. In a
    child process, so a crash fails this test instead of ending the run."""
    import subprocess
    import sys
    code = """
import asyncio, sys
sys.setrecursionlimit(1_000_000)
from monitor.jsonrpc_client import classify_http
from monitor.sinks import JsonlSink
from test_fuzz import _manager
deep = "[" * 300_000 + "]" * 300_000
assert classify_http(200, deep).kind == "too_deep"
mgr, link, _got = _manager()
asyncio.run(mgr._handle_frame(link, deep))
assert mgr.bad_frames["too_deep"] == 1
print("ok")
"""
    here = str(Path(__file__).resolve().parent)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=here, env={**os.environ, "PYTHONPATH": here})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
