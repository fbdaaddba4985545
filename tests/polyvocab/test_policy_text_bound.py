"""The recognisers of provider texts read the start of a text, not all of it: a 64-MB error
body was lower-cased whole for each (~50 ms and 64 MB a time). Measured by the memory a
call allocates (tracemalloc), not by the clock."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import pytest

from polyvocab.policies import (
    TEXT_READ,
    is_key_refused_text,
    is_provider_timeout,
    is_quota_exhausted,
    is_rate_limited,
)

PAD = "x" * 8_000_000


@pytest.mark.parametrize(("check", "words"), [
    (is_quota_exhausted, "Monthly capacity limit exceeded. "),
    (is_rate_limited, "Too Many Requests. "),
    (is_provider_timeout, "Request timeout on the free tier. "),
    (is_key_refused_text, "Invalid API Key. "),
])
def test_a_huge_text_is_read_from_its_start_only(check: Callable[[str], bool],
                                                  words: str) -> None:
    text = words + PAD
    tracemalloc.start()
    try:
        assert check(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * TEXT_READ + 64 * 1024
    assert not check(PAD[:TEXT_READ] + words)  # past what is read: not seen
