"""The simulator's prebuilt JSON encoders write what ``json.dumps`` with the same options
wrote, and the filter's hex check accepts what the character scan accepted."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import explorer, filters, history, jsonrpc, recording

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                               max_size=4),
    max_leaves=16)


@settings(max_examples=300, deadline=None)
@given(obj=_json)
def test_encoders_equal_json_dumps(obj: Any) -> None:
    compact = json.dumps(obj, separators=(",", ":"))
    assert recording.compact_json(obj) == compact  # the chain's headers and logs
    assert jsonrpc._dumps(obj) == compact
    assert explorer._dumps(obj) == compact.encode()
    assert history._encode(obj) == json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def test_history_rows_as_before(tmp_path: Any) -> None:
    h = history.SimHistory(tmp_path / "h.jsonl", clock_ns=lambda: 7)
    fields = {"number": 1, "hash": "0xab", "note": "é ü \u2028", "x": 1.5, "order_filled": []}
    h.record("block_published", **fields)
    h.close()
    want = json.dumps({"t_ns": 7, "event": "block_published", **fields},
                      separators=(",", ":"), ensure_ascii=False) + "\n"
    assert (tmp_path / "h.jsonl").read_text(encoding="utf-8") == want


def _is_ascii_hex(body: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in body)


@settings(max_examples=1000, deadline=None)
@given(body=st.text(alphabet="0123456789abcdefABCDEFxg_ +-\t\n\u3000\u00a0\u0665\uff15",
                    max_size=12))
def test_is_hex_as_an_ascii_character_scan(body: str) -> None:
    """ASCII hex digits only, as geth reads them (it took what int(x, 16) takes: tabs,
    newlines, NBSP, non-ASCII digits)."""
    assert filters._is_hex(body) == _is_ascii_hex(body)
