"""Chain shapes' primitives: keccak-256 as Ethereum hashes, on the fast path."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from simulator import chainshape
from simulator.chainshape import keccak256


@pytest.mark.parametrize("data", [b"", b"abc", b"x" * 135, b"y" * 136, b"z" * 1000,
                                  bytes(range(256))])
def test_keccak256_is_ethereums_hash(data: bytes) -> None:
    assert keccak256(data) == keccak(data)


def test_keccak256_takes_any_bytes_like() -> None:
    assert keccak256(bytearray(b"abc")) == keccak256(memoryview(b"abc")) == keccak(b"abc")


def test_keccak256_calls_the_c_functions_with_one_state() -> None:
    """The synthesiser hashes ~11 times a block: not through a hash object each time."""
    assert keccak256 is not chainshape._keccak256_object
    assert keccak256(b"a") != keccak256(b"b")  # the reused state is reset between calls
    assert keccak256(b"a") == keccak(b"a")
