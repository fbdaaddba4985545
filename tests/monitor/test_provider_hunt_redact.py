"""A masked query key keeps the text around it: the pilot's log read "(JSON-RPC error
-32000: invalid project id /rpc?apikey=*** using the setting", its ");" eaten by the
mask."""

from __future__ import annotations

import pytest

from polyvocab.redact import redact


@pytest.mark.parametrize(("text", "expected"), [
    ("(invalid project id /rpc?apikey=UnregisteredKey0001); using the setting",
     "(invalid project id /rpc?apikey=***); using the setting"),
    ("failed (https://h/api?module=proxy&apikey=UnregisteredKey0002), retry",
     "failed (https://h/api?module=proxy&apikey=***), retry"),
    ("api_key=UnregisteredKey0003; next", "api_key=***; next"),
    ("[url: https://h/api?token=UnregisteredKey0004]", "[url: https://h/api?token=***]"),
])
def test_a_masked_query_value_ends_at_the_texts_punctuation(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "https://h/api?apikey=UnregisteredKey0005&x=1", "apikey=UnregisteredKey0006 x",
    '{"apikey": "UnregisteredKey0007"}', "https://h/v2/api?key=UnregisteredKey0008#f"])
def test_the_key_itself_is_still_masked_whole(text: str) -> None:
    assert "UnregisteredKey" not in redact(text)
