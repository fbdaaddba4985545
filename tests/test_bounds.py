"""The shared input bounds (polyvocab.bounds): the nesting check decides before parsing,
exactly, and fast on the hostile frames the soak sends every hour."""

from __future__ import annotations

import itertools
import random
import re
import time

from polyvocab.bounds import MAX_DEPTH, _depth, nesting_ok

_SIGN = {"[": 1, "{": 1, "]": -1, "}": -1}


def naive_depth(brackets: str) -> int:
    return max(itertools.accumulate(_SIGN[c] for c in brackets), default=0)


def test_depth_is_the_highest_running_sum_of_openings_and_closings() -> None:
    """By runs or by bracket, the same number as a bracket-by-bracket sum, for deep runs,
    alternations, unbalanced and mixed kinds."""
    rng = random.Random(3)
    cases = ["", "]", "][", "[{]}", "{[}]]]][[[", "]]]]", "[" * 1000, "[]" * 500,
             "[" * 40 + "]" * 45 + "{" * 40, "}" * 10 + "[" * 5]
    for _ in range(300):
        run = rng.choice([1, 2, 50, 2000])
        cases.append("".join(rng.choice("[]{}") * rng.randint(1, run)
                             for _ in range(rng.randint(0, 60))))
    for text in cases:
        assert _depth(text) == naive_depth(text), text[:40]


def reference_nesting_ok(text: str, limit: int = MAX_DEPTH) -> bool:
    """The check as it was: brackets summed one at a time."""
    if text.count("[") + text.count("{") <= limit:
        return True
    if naive_depth(re.sub(r"[^\[\]{}]+", "", text)) <= limit:
        return True
    return naive_depth(re.sub(r"[^\[\]{}]+", "", re.sub(r'"(?:[^"\\]|\\.)*"', "", text))
                       ) <= limit


def test_nesting_ok_decides_as_the_bracket_by_bracket_check_did() -> None:
    """Bodies mostly brackets or mostly text, brackets in strings, escapes, unbalanced."""
    rng = random.Random(5)
    texts = ['{"a": "' + "[" * 100 + '"}', "[" * 40 + '"]]]"' + "]" * 40, "x" * 10 + "[" * 33]
    for _ in range(1500):
        parts = [rng.choice(["[", "]", "{", "}", '"', "\\", "a", ", ", '"[[["', "[" * 20,
                             "]" * 20, '{"k": [1, 2]}']) for _ in range(rng.randint(0, 80))]
        texts.append("".join(parts))
    for text in texts:
        for limit in (2, 8, MAX_DEPTH):
            assert nesting_ok(text, limit) == reference_nesting_ok(text, limit), text[:60]


def test_a_frame_nested_100_000_deep_is_refused_in_milliseconds() -> None:
    """The soak's hostile frame (100 KB of '[') took ~25-35 ms of pure Python a frame
    (~2 % of a virtual soak's CPU); its brackets are summed a run at a time now (~2-4 ms).
    Ordinary JSON is unaffected."""
    frame = '{"jsonrpc":"2.0","method":"eth_subscription","params":' + "[" * 100_000
    assert not nesting_ok(frame)
    t = time.process_time()
    for _ in range(100):
        nesting_ok(frame)
    assert time.process_time() - t < 1.2  # ~0.3 s; bracket by bracket took ~2.5-3.5 s
    assert nesting_ok("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert not nesting_ok("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert nesting_ok('{"a": "' + "[" * 100 + '"}')  # brackets inside strings do not nest
