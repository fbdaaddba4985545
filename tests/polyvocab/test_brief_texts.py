"""Error texts of hostile answers are built from a few items, never from the whole answer.

``str()`` of a 55-MB mismatched JSON-RPC answer built 55 MB of text (~0.2 s of the loop)
to keep 120 characters of it; a log whose ``topics[0]`` or ``address`` was a huge list
was turned into text on every decode. Measured here by the memory the call allocates
(tracemalloc's peak), which does not depend on the machine's speed.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from monitor.trades import DecodeError, decode_order_filled
from polyvocab import CTF_EXCHANGE_V2, DEFAULT_EXCHANGES, ORDER_FILLED_V2
from polyvocab.bounds import brief
from polyvocab.errors import BadResponse
from polyvocab.jsonrpc_http import _result_of

HUGE = [{"blockHash": "0x" + "ab" * 32, "data": "0x" + "00" * 224, "n": i} for i in range(20_000)]
LIMIT = 256 * 1024  # bytes a call may allocate: the huge value's text is ~8 MB


def _peak(call: Callable[[], Any]) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        try:
            out: Any = call()
        except Exception as exc:  # the error is what is checked
            out = exc
        return tracemalloc.get_traced_memory()[1], out
    finally:
        tracemalloc.stop()


def test_brief_says_a_few_items_of_a_few_levels() -> None:
    assert brief("x" * 500, 10) == "x" * 10
    assert len(brief(HUGE)) <= 120
    assert brief({"a": [1, 2, 3]}) == "{'a': [1, 2, 3]}"
    deep: Any = []
    for _ in range(5_000):
        deep = [deep]
    assert brief(deep).startswith("[[[")  # no RecursionError

    class Raises:
        def __repr__(self) -> str:
            raise RuntimeError("no")
    assert brief(Raises()).startswith("<Raises")


def test_brief_of_a_huge_answer_allocates_little() -> None:
    peak, text = _peak(lambda: brief(HUGE))
    assert len(text) <= 120 and peak < LIMIT


def test_a_huge_mismatched_answer_is_refused_without_its_whole_text() -> None:
    answer = {"jsonrpc": "2.0", "id": 7, "result": HUGE}
    peak, exc = _peak(lambda: _result_of(answer, 1))
    assert isinstance(exc, BadResponse) and "not the response to id 1" in str(exc)
    assert len(str(exc)) < 300
    assert peak < LIMIT


@pytest.mark.parametrize("field", ["topic0", "address", "data"])
def test_a_log_with_a_huge_field_is_refused_without_its_whole_text(field: str) -> None:
    log: dict[str, Any] = {
        "address": CTF_EXCHANGE_V2, "topics": [ORDER_FILLED_V2, "0x" + "11" * 32,
                                               "0x" + "00" * 12 + "22" * 20,
                                               "0x" + "00" * 12 + "33" * 20],
        "data": "0x" + "00" * 224, "blockNumber": "0x1", "blockHash": "0x" + "44" * 32,
        "transactionHash": "0x" + "55" * 32, "logIndex": "0x0", "transactionIndex": "0x0"}
    if field == "topic0":
        log["topics"][0] = HUGE
    elif field == "address":
        log["address"] = HUGE
    else:
        log["data"] = "0xzz" + "00" * 4_000_000
    peak, exc = _peak(lambda: decode_order_filled(log, DEFAULT_EXCHANGES))
    assert isinstance(exc, DecodeError)
    assert len(str(exc)) < 300
    assert peak < LIMIT
