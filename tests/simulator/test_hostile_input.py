"""Request bodies a hostile or careless client sends: decided quickly, and as geth decides.

* the depth check before decoding is linear and exact (polyvocab's ``nesting_ok``);
* hex quantities and hex data are ASCII ``0x`` + hex digits, nothing ``int()`` also takes;
* a batch over the limit is answered in geth's shape.

The JSON-RPC cases run over HTTP against a running :class:`Simulator` on loopback.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from simulator.jsonrpc import JsonInputError, parse_json

LIMIT = 64


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 60))


# -- the depth check (D4) ----------------------------------------------------------------
def reference_depth(text: str) -> int:
    """The deepest nesting of ``text``, one character at a time, strings skipped as a
    JSON decoder skips them."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


_STRING_PARTS = ["[", "]", "{", "}", '\\"', "\\\\", "a", "\\n", "é", "]]]]]]]]"]


def _random_value(rng: random.Random, depth: int) -> Any:
    """A JSON value nested about ``depth`` deep, with brackets, quotes and backslashes in
    its strings (a closing bracket in a string must not hide real depth)."""
    if depth <= 0 or rng.random() < 0.1:
        return rng.choice([1, None, "".join(rng.choice(_STRING_PARTS)
                                            for _ in range(rng.randint(0, 12)))])
    items = [_random_value(rng, depth - 1 if i == 0 else rng.randint(0, 2))
             for i in range(rng.randint(1, 3))]
    rng.shuffle(items)
    if rng.random() < 0.5:
        return items
    return {f"k{i}]": v for i, v in enumerate(items)}


def test_the_depth_check_decides_like_a_character_by_character_scan() -> None:
    """Random bodies (valid, and broken by one character): a body the decoder takes is
    refused exactly when it nests deeper than the limit, and otherwise decoded as is."""
    rng = random.Random(11)
    for _ in range(600):
        text = json.dumps(_random_value(rng, rng.randint(LIMIT - 8, LIMIT + 8)),
                          ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.3:
            pos = rng.randrange(len(text) + 1)
            text = text[:pos] + rng.choice(['"', "]", "[", "\\", ""]) + text[pos + 1:]
        try:
            decoded: Any = json.loads(text)
        except (ValueError, RecursionError):
            with pytest.raises(JsonInputError):
                parse_json(text, max_depth=LIMIT)
            continue
        if reference_depth(text) > LIMIT:
            with pytest.raises(JsonInputError, match="nested deeper"):
                parse_json(text, max_depth=LIMIT)
        else:
            assert parse_json(text, max_depth=LIMIT) == decoded
            assert parse_json(text.encode("utf-16"), max_depth=LIMIT) == decoded


def test_a_closing_bracket_in_a_string_does_not_hide_depth() -> None:
    body = '["' + "]" * 100 + '", ' + "[" * 70 + "]" * 70 + "]"
    with pytest.raises(JsonInputError, match="nested deeper"):
        parse_json(body, max_depth=LIMIT)


def _cpu_s(fn: Callable[[], Any]) -> float:
    t = time.process_time()
    try:
        fn()
    except ValueError:  # JsonInputError, or the decoder's own error
        pass
    return time.process_time() - t


@pytest.mark.parametrize("body", [
    # 1 MB of 63-deep nests in one batch: the depth check was O(bytes x depth), ~2 s
    "[" + ",".join(["[" * 63 + "]" * 63] * 8000) + "]",
    # an unclosed string of escaped quotes behind 65 openings: each escaped quote was a
    # new start for the string pattern, quadratic (~7 s at 20,000)
    "[" * 65 + '"' + '\\"' * 20_000,
])
def test_a_hostile_megabyte_costs_about_what_decoding_a_megabyte_costs(body: str) -> None:
    """Measured against the decoder on the same body and machine: the depth check adds
    little to the decoding it guards (it was ~10 times the decoding, or quadratic)."""
    baseline = min(_cpu_s(lambda: json.loads(body)) for _ in range(2))
    cost = min(_cpu_s(lambda: parse_json(body, max_depth=LIMIT)) for _ in range(2))
    assert cost < 2 * baseline + 0.1, (cost, baseline)
