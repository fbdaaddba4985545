"""The live path's hand-written text checks against their references (issue 11: CPU a
trade). ``monitor.trades._plain_text`` (one ``bytes.translate`` pass) says a text is
written by json in plain quotes exactly when the checks it replaced said so, and exactly
when ``json.dumps`` writes it so."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import trades

_EDGES = ["", " ", "~", "\x7f", "\x1f", "\x00", '"', "\\", "é", "\u2028", "\ud800",
          "\udfff", "\U0001f600", "0x" + "ab" * 32, "0xAB:12", "BUY", "a\nb", "\t"]


def _reference(text: str) -> bool:
    """The checks the hand path replaced (isascii, isprintable, no quote or backslash)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


@settings(max_examples=3000)
@given(st.text() | st.text(alphabet=st.characters(max_codepoint=0x80)) | st.sampled_from(_EDGES)
       | st.lists(st.sampled_from(_EDGES)).map("".join))
def test_plain_text_is_the_reference_and_json_s_plain_quotes(text: str) -> None:
    plain = trades._plain_text(text)
    assert plain == _reference(text)
    assert plain == (json.dumps(text) == f'"{text}"')


def test_every_single_character_below_0x100_and_surrogates() -> None:
    for code in [*range(0x100), 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0x10FFFF]:
        ch = chr(code)
        assert trades._plain_text(ch) == _reference(ch), hex(code)
        assert trades._plain_text("0xab" + ch + "cd") == _reference("0xab" + ch + "cd")
