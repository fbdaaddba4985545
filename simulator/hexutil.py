"""geth's ``hexutil.Uint64`` parsing (the checks and the error texts a node gives a block
number or a quantity that is not a canonical ``0x`` hex number) and geth's subscription and
filter ids (:func:`geth_id`). Shared by the
JSON-RPC node (:mod:`simulator.jsonrpc`) and the explorer's proxy (:mod:`simulator.explorer`),
which cannot import each other."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

__all__ = ["geth_id", "parse_uint64"]

_HEX_DIGITS = re.compile(r"[0-9a-fA-F]+")


def parse_uint64(value: str) -> int:
    """``value`` as geth's ``hexutil.Uint64`` reads it; ``ValueError`` with geth's text."""
    if not value.startswith(("0x", "0X")):
        raise ValueError("hex string without 0x prefix")
    body = value[2:]
    if not body:
        raise ValueError('hex string "0x"')
    if len(body) > 1 and body[0] == "0":
        raise ValueError("hex number with leading zero digits")
    # strconv.ParseUint reads digit by digit: a bad digit among the first 17 is a syntax
    # error, the 17th good one overflows (0xzz...z of 20 digits is no "> 64 bits")
    if _HEX_DIGITS.fullmatch(body[:17]) is None:
        raise ValueError("invalid hex string")
    if len(body) > 16:
        raise ValueError("hex number > 64 bits")
    return int(body, 16)


def geth_id(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    """A new subscription or filter id as geth v1.17 makes it (rpc/subscription.go
    randomIDGenerator and encodeID): 16 random bytes in hex, an RPC quantity, so the
    leading zero digits are stripped (about 1 id in 16 is shorter than 32 digits; all
    zeros would be ``0x0``). ``random_bytes``: the source (a seeded one in tests)."""
    return "0x" + (random_bytes(16).hex().lstrip("0") or "0")
