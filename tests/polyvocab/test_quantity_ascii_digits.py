"""A JSON-RPC quantity is "0x" and hex digits (or, from the explorer, decimal digits):
ASCII, nothing else. int() also read '0x1_0', '0x 10', '0x+10', a padded ' 12' and other
scripts' digits ('١٢') as numbers: a hostile or broken node's block number or log index
taken for a real one."""

from __future__ import annotations

import pytest

from polyvocab.bounds import MAX_QUANTITY, quantity


@pytest.mark.parametrize(("text", "value"), [
    ("0x10", 16), ("0X1f", 31), ("0x", 0), ("0x0", 0), ("123", 123), ("0", 0),
    ("0x" + "0" * 40 + "1", 1), (hex(MAX_QUANTITY), MAX_QUANTITY), (7, 7)])
def test_hex_and_decimal_quantities_are_read(text: str | int, value: int) -> None:
    assert quantity(text) == value


@pytest.mark.parametrize("text", [
    "0x1_0", "0x 10", "0x+10", "0x-1", " 0x10", "0x10 ", "0x10\n", "\t16", "١٢", "0x٣",
    "1_000", "+5", "-5", "", "0xg", "1e3", "12 ", "0x10\x00"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        quantity(text)
