"""The depth check's fast bracket extraction (``bytes.translate``) decides exactly as the
regex substitution it replaced: the same brackets, so the same answer, for any text
(non-ASCII, lone surrogates, strings full of brackets, hostile nesting)."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from polyvocab.bounds import _STRING_SUB, MAX_DEPTH, _brackets, _depth, nesting_ok

_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _regex_brackets(text: str) -> str:
    """What the check used before: the regex substitution (and its findall twin)."""
    return _NOT_BRACKET.sub("", text)


def _reference(text: str, limit: int, strict: bool) -> bool:
    opening = text.count("[") + text.count("{")
    if opening <= limit:
        return True
    if not strict and _depth(_regex_brackets(text)) <= limit:
        return True
    return _depth(_regex_brackets(_STRING_SUB(text))) <= limit


_BRACKETY = st.text(alphabet=st.sampled_from('[]{}"\\,:a1 é€\U0001f600\ud800'), max_size=300)
_ANY = st.text(max_size=300)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(_BRACKETY, _ANY), limit=st.integers(0, 40), strict=st.booleans())
def test_brackets_and_decision_equal_the_regex_forms(text: str, limit: int,
                                                     strict: bool) -> None:
    assert _brackets(text) == _regex_brackets(text)
    assert nesting_ok(text, limit, strict=strict) == _reference(text, limit, strict)


def test_real_answers_and_hostile_nesting_decide_as_before() -> None:
    log = {"address": "0x" + "ab" * 20, "topics": ["0x" + "1" * 64, "0x" + "2" * 64],
           "data": "0x" + "0" * 128, "note": "é]]]}[[{"}
    answer = json.dumps({"jsonrpc": "2.0", "id": 7, "result": [log] * 60},
                        ensure_ascii=False)
    hostile = "[" * 100_000 + "]" * 100_000
    in_strings = json.dumps(["]" * 50 + "[" * 50] * 3 + [[[[1]]]])
    for text in (answer, hostile, in_strings, "\ud800" + "[" * 40 + "]" * 40):
        for strict in (False, True):
            assert nesting_ok(text, MAX_DEPTH, strict=strict) == _reference(
                text, MAX_DEPTH, strict)
    assert nesting_ok(answer) and not nesting_ok(hostile)
