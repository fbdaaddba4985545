"""The JSON-lines reader's line decoder gives what ``json.loads`` gives: the same value, or
the same error (type and message), for rows, torn rows, garbage and odd whitespace."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.store import _loads_line

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                               max_size=4),
    max_leaves=12)


def _outcome(fn: Any, line: str) -> tuple[str, Any]:
    try:
        return "value", fn(line)
    except Exception as exc:  # the exception is what is compared
        return type(exc).__name__, str(exc)


def _same(line: str) -> None:
    got, want = _outcome(_loads_line, line), _outcome(json.loads, line)
    assert got == want, line
    if got[0] == "value":
        assert json.dumps(got[1]) == json.dumps(want[1])  # same types (1 vs 1.0, True vs 1)


@settings(max_examples=500, deadline=None)
@given(row=st.dictionaries(st.text(max_size=6), _json, max_size=6),
       before=st.sampled_from(["", " ", "\t", "\ufeff", "x"]),
       after=st.sampled_from(["", "\n", " \n", "\t", "x\n", "}\n", ",\n", "\n\n"]),
       cut=st.integers(0, 400), compact=st.booleans())
def test_same_as_json_loads(row: dict[str, Any], before: str, after: str, cut: int,
                            compact: bool) -> None:
    text = json.dumps(row, separators=(",", ":") if compact else None)
    _same(before + text + after)
    _same(text[:cut])  # torn rows
    _same(text[:cut] + "\n")


def test_non_objects_and_garbage() -> None:
    for line in ["[1, 2]\n", "3\n", "\"x\"\n", "{\n", "{}\n", "{} {}\n", "{\"a\": NaN}\n",
                 "{\"a\": 1e400}\n", "{\"a\":\"\\ud800\"}\n", "", "\n", "{\"a\" 1}\n"]:
        _same(line)
