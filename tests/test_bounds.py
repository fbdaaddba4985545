"""The shared input bounds (polyvocab.bounds): the nesting check decides before parsing,
exactly, and fast on the hostile frames the soak sends every hour."""

from __future__ import annotations

import itertools
import random
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


def test_a_frame_nested_100_000_deep_is_refused_in_well_under_a_millisecond_each() -> None:
    """The soak's hostile frame (100 KB of '[') was ~35 ms of pure Python a frame; it is
    summed a run at a time now. Ordinary JSON is unaffected."""
    frame = '{"jsonrpc":"2.0","method":"eth_subscription","params":' + "[" * 100_000
    assert not nesting_ok(frame)
    t = time.process_time()
    for _ in range(100):
        nesting_ok(frame)
    assert time.process_time() - t < 1.0  # ~0.1 s; the bracket-by-bracket sum took ~3.5 s
    assert nesting_ok("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert not nesting_ok("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert nesting_ok('{"a": "' + "[" * 100 + '"}')  # brackets inside strings do not nest
