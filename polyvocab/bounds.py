"""Bounds on everything read from the network. Pure functions, no I/O.

A node, a provider or an explorer may send anything: a frame of nested arrays 100 KB deep,
a request id of thousands of digits, a block number of 2^200, an HTML page with status
200. Every parser in the monitor and the shared JSON-RPC client goes through these
helpers, so that past a bound the input is rejected with a
:class:`~polyvocab.errors.BadResponse` carrying a short ``kind`` (counted by the caller),
and never with a ``RecursionError``, an ``OverflowError`` in SQLite or a
multi-gigabyte loop.

Bounds (module constants, documented in docs/contracts.md):

- ``MAX_QUANTITY``: block numbers, log indexes, timestamps fit a signed 64-bit integer
  (SQLite's INTEGER); Polygon is at block ~8e7.
- ``MAX_DEPTH``: JSON nesting. A JSON-RPC answer or an explorer envelope is at most 4-5
  levels deep; anything past 32 is hostile.
- values in one document (:func:`values_ok`, each reader its own limit): what parsing
  costs is the number of values, not the bytes. ``[],`` is three bytes and a list of
  ~70 bytes of memory: 15 MB of them took 357 MB and 0.8-3 s of the event loop to
  parse; an ``eth_getLogs`` answer has ~13 values a log (~1.1 KB).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import reprlib
import sys
from collections.abc import Iterable
from typing import Any

from polyvocab.errors import BadResponse
from polyvocab.redact import redact

__all__ = ["MAX_DEPTH", "MAX_QUANTITY", "REDACT_MARGIN", "brief", "cut", "loads", "nesting_ok",
           "quantity", "too_deep", "values_ok"]

MAX_QUANTITY = (1 << 63) - 1
MAX_DEPTH = 32
_MAX_HEX_DIGITS = 16
#: the digits of a quantity: ASCII only, nothing else (no sign, '_', white space)
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
_DECIMAL = re.compile(r"[0-9]+")


def quantity(value: Any, what: str = "quantity") -> int:
    """A JSON-RPC hex quantity (or an int, or a decimal string) as an int in
    ``0..MAX_QUANTITY``. Raises ``ValueError`` naming ``what`` otherwise."""
    if type(value) is int:
        n = value
    elif isinstance(value, str):
        text = value
        if text[:2] in ("0x", "0X"):
            digits = text[2:]
            if _HEX_DIGITS.fullmatch(digits) is None:
                # int() also read '0x1_0', '0x 10', '0x+10' and other scripts' digits
                raise ValueError(f"{what} is not a hex quantity: {text[:24]!r}")
            if len(digits.lstrip("0")) > _MAX_HEX_DIGITS:
                raise ValueError(f"{what} out of range: {text[:24]}...")
            n = int(digits, 16) if digits else 0
        else:
            if len(text.lstrip("0")) > 19 or _DECIMAL.fullmatch(text) is None:
                raise ValueError(f"{what} is not a quantity: {text[:24]!r}")
            n = int(text)
    else:
        raise ValueError(f"{what} is not a quantity: {type(value).__name__}")
    if n < 0 or n > MAX_QUANTITY:
        raise ValueError(f"{what} out of range: {n}")
    return n


#: a JSON string, or (group 1, kept) the start of one that never closes: possessive, so a
#: string that does not close is scanned once. The backtracking form tried it again from
#: each escaped quote inside it: '"' + '\\"' * 40,000 took ~40 s, quadratic. Removing
#: group 0 and keeping group 1 removes exactly what the backtracking form removed.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*+"|("(?:[^"\\]|\\.)*+)')
_STRING_SUB = functools.partial(_STRING.sub, r"\1")
#: every byte but the four brackets (a bracket is one ASCII byte in UTF-8, and no byte of
#: a multi-byte character is one), for ``bytes.translate``'s ``delete``
_NOT_BRACKET_BYTES = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {"[": 1, "]": -1}
_SQUARE = str.maketrans("{}", "[]")  # depth counts both kinds alike
_RUNS = re.compile(r"\[+|\]+")


def nesting_ok(text: str, limit: int = MAX_DEPTH, *, strict: bool = False) -> bool:
    """Whether the JSON ``text`` nests arrays/objects at most ``limit`` deep, decided
    *before* parsing. The C parser recurses on the C stack, guarded only by Python's
    recursion limit: a library that raised that limit turns a frame of 100,000 nested
    arrays into a segmentation fault. Cost: two ``count`` calls for anything with few
    brackets (every notification); C-speed scans, linear in ``len(text)``, for big
    bodies.

    The middle shortcut counts brackets inside strings too. Openings there only add
    depth, but closings subtract: ``'["]]]", [[[1]]]]'`` passes it at a limit of 2.
    ``strict=True`` skips it (exact for JSON: strings dropped, then summed), for a server
    that must never hand deep JSON to the parser whatever the recursion limit."""
    opening = text.count("[") + text.count("{")
    if opening <= limit:
        return True
    if not strict and _depth(_brackets(text)) <= limit:
        return True
    return _depth(_brackets(_STRING_SUB(text))) <= limit  # strings dropped: exact


def values_ok(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` holds at most about ``limit`` values, decided *before*
    parsing: its commas (a value past the first of an array or object follows one;
    without commas, nesting bounds the count). Commas in strings count too: it errs on
    the side of refusing. A text no longer than ``limit`` is not scanned at all."""
    return len(text) <= limit or text.count(",") <= limit


def _brackets(text: str) -> str:
    """The brackets of ``text`` alone, in order: its UTF-8 bytes with every other byte
    deleted (``bytes.translate``: ~6x faster than the regex substitution it replaces, which
    cost more than parsing a 40-log ``eth_getLogs`` answer). ``surrogatepass``: a lone
    surrogate encodes (to non-bracket bytes) instead of raising."""
    return text.encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKET_BYTES).decode(
        "ascii")


def _depth(brackets: str) -> int:
    """The highest running sum of +1 (opening) and -1 (closing) over ``brackets``. Long
    runs (the hostile frame: 100,000 openings) are summed a run at a time (~0.2 ms
    instead of ~11 ms a 100 KB frame), short ones a bracket at a time: the same sums."""
    square = brackets.translate(_SQUARE)
    steps: Iterable[int]
    if (square.count("[]") + square.count("][")) * 16 < len(square):
        runs = [len(run) if run[0] == "[" else -len(run) for run in _RUNS.findall(square)]
        if runs[0] < -1:  # a leading run of closings peaks at its first: -1
            runs[0:1] = [-1, runs[0] + 1]
        steps = runs
    else:
        steps = map(_STEP.__getitem__, square)
    return max(itertools.accumulate(steps), default=0)


def too_deep(obj: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``obj`` nests lists/dicts deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


#: a recursion limit up to this keeps json's C parser on its own guard (a RecursionError
#: long before the C stack ends, in any thread); py_ecc, imported with web3 or eth-account,
#: sets 100,000: then 100,000 nested arrays overflow the C stack, a segmentation fault
SAFE_RECURSION_LIMIT = 4000


def guard_c_parser(text: str | bytes, limit: int = MAX_DEPTH) -> None:
    """Raise RecursionError (what ``json.loads`` raises under the default limit) for
    ``text`` nested deeper than ``limit``, when the process's recursion limit no longer
    protects the C parser. For large texts read in bulk (a recording's 800 KB lines: the
    exact scan costs ~73 ms a line against ~4.5 ms to parse it) the scan runs only then;
    under a sane limit this costs one call."""
    if sys.getrecursionlimit() <= SAFE_RECURSION_LIMIT:
        return
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not nesting_ok(text, limit, strict=True):
        raise RecursionError(f"JSON nested deeper than {limit}")


def loads(data: str | bytes, *, what: str, max_bytes: int, max_depth: int = MAX_DEPTH,
          check_depth: bool = True) -> Any:
    """Parse one JSON document from the network, or raise :class:`BadResponse` whose
    ``kind`` is ``too_large`` | ``not_json`` | ``too_deep``.

    ``check_depth=False`` skips the walk (the hot WebSocket path checks the shape of what
    it uses instead); the C parser's own recursion guard still applies.
    """
    if len(data) > max_bytes:
        raise BadResponse(f"{what}: {len(data)} bytes, more than {max_bytes}",
                          kind="too_large")
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if not nesting_ok(text, max_depth):
        raise BadResponse(f"{what}: JSON nested deeper than {max_depth}", kind="too_deep")
    try:
        obj = json.loads(text)
    except RecursionError:
        raise BadResponse(f"{what}: JSON nested too deep", kind="too_deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        snippet = (data[:60].decode("utf-8", "replace") if isinstance(data, bytes)
                   else data[:60]).replace("\n", " ")
        raise BadResponse(f"{what}: not JSON ({type(exc).__name__}): {snippet!r}",
                          kind="not_json") from None
    if check_depth and too_deep(obj, max_depth):
        raise BadResponse(f"{what}: JSON nested deeper than {max_depth}", kind="too_deep")
    return obj


#: characters read past a cut before it is made (:func:`cut`), so that a secret the cut
#: would halve is masked whole first: a provider's key is at most ~100 characters
REDACT_MARGIN = 256


def cut(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text`` (read from the network: it may echo a
    URL with its key) with every secret masked (:func:`polyvocab.redact.redact`) *before*
    the cut, reading ``REDACT_MARGIN`` characters past it. Cut first, a key the cut
    halved kept its head in the clear: a registered key no longer matched its half, and
    the key-shaped pattern needs 16 characters (up to 15 of an Alchemy key's 32 in the
    error of a 503 page that echoed the URL)."""
    return redact(text[:limit + REDACT_MARGIN])[:limit]


class _BriefRepr(reprlib.Repr):
    """:mod:`reprlib`, with every string's secrets masked before it is cut (its head and
    its tail: reprlib keeps both ends of a long string)."""

    def repr_str(self, x: str, level: int) -> str:
        n = self.maxstring + REDACT_MARGIN
        # a long one: the ends reprlib keeps, each masked whole with the margin beyond it
        x = redact(x) if len(x) <= 2 * n else redact(x[:n]) + "..." + redact(x[len(x) - n:])
        return super().repr_str(x, level)


def _brief_repr() -> reprlib.Repr:
    r = _BriefRepr()  # (3.11: no keyword arguments)
    r.maxlevel = 3
    r.maxtuple = r.maxlist = r.maxarray = r.maxdict = r.maxset = r.maxfrozenset = 4
    r.maxdeque = 4
    r.maxstring = r.maxother = 80
    r.maxlong = 40
    return r


_BRIEF = _brief_repr()


def brief(value: Any, limit: int = 120) -> str:
    """A bounded text of anything read from the network, for an error message or a log
    line: a few items of a few levels (:mod:`reprlib`), never the whole. ``str()`` of a
    55-MB answer built 55 MB of text (~0.2 s of the loop) to keep its first 120
    characters. A text is cut, not quoted. Secrets are masked before any cut
    (:func:`cut`): a key the cut halved showed its head."""
    if isinstance(value, str):
        return cut(value, limit)
    try:
        return _BRIEF.repr(value)[:limit]
    except Exception:  # a repr that raises: its type is all that is said
        return f"<{type(value).__name__}>"
