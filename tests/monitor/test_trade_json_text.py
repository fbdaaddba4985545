"""``Trade.to_json`` writes its text fields in plain quotes when none of them holds a
character json escapes (the decoders' hex: issue 11, one payload a trade); any other text
(quotes, backslashes, control characters, non-ASCII, DEL) is escaped as json escapes it."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import given, settings
from hypothesis import strategies as st

import monitor.trades as trades
from monitor.trades import Trade

_TEXTS = ("id", "tx_hash", "wallet", "side", "token_id", "block_hash", "exchange", "taker",
          "order_hash")
_BASE = Trade(id="0x" + "ab" * 32 + ":3", tx_hash="0x" + "ab" * 32, log_index=3,
              wallet="0x" + "11" * 20, side="BUY", token_id=str(2**200), maker_amount=5_000_000,
              taker_amount=10_000_000, fee_raw=7, block_number=80_000_000,
              block_hash="0x" + "cd" * 32, block_timestamp=1_777_000_000,
              exchange="0x" + "22" * 20, version=2, taker="0x" + "33" * 20,
              order_hash="0x" + "ef" * 32)
_ODD_TEXT = st.text() | st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "é", "\u2028",
                                         "\ud800", " ", "~", "0x\"ab\\", "a\nb"])


def _dumps(t: Trade) -> str:
    return json.dumps(t.to_dict(), separators=(",", ":"))


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(_TEXTS), _ODD_TEXT, min_size=1, max_size=3),
       st.sampled_from(["BUY", "SELL"]))
def test_text_fields_of_any_characters_are_json_s_bytes(texts: dict[str, str],
                                                         side: str) -> None:
    t = dataclasses.replace(_BASE, **{"side": side, **texts})
    assert t.to_json() == _dumps(t)


def test_the_decoders_hex_is_written_in_plain_quotes() -> None:
    assert _BASE.to_json() == _dumps(_BASE)
    assert f'"tx_hash":"{_BASE.tx_hash}"' in _BASE.to_json()


_EDGES = [0, 1, 99, 100, 101, 999_999, 1_000_000, 1_000_001, 10**15 - 1, 10**15, 2**53,
          2**53 + 1, -1, -100]


@settings(max_examples=2000)
@given(st.integers(-10**6, 2**70) | st.integers(0, 10**9) | st.sampled_from(_EDGES))
def test_an_amount_in_millionths_is_written_as_its_float_is(n: int) -> None:
    """Shares, USDC and the fee are written from the integer (no shortest-repr search):
    the same text json gives the float ``n / 10**6``."""
    assert trades._millionths(n) == json.dumps(n / 10**6)
    assert trades._millionths(n) == trades._json_float(n / 1_000_000)
