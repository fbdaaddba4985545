"""``Retry-After`` delay-seconds are digits (RFC 9110: ``1*DIGIT``): what else Python's
``float()`` reads is no wait a server asked for."""

from __future__ import annotations

import pytest

from polyvocab.policies import MAX_RETRY_AFTER_S, parse_retry_after


@pytest.mark.parametrize("value", ["1_000", "1e3", "1E2", "inf", "Infinity", "nan", "+5",
                                   "0x10", "\u0661\u0662", "5 5", "1.", ".5", "1e400"])
def test_what_float_reads_but_is_no_delay_seconds_is_unreadable(value: str) -> None:
    """``float()`` read "1_000" as 1000 s, "1e3" as 1000 s, Arabic-Indic digits as 12 s,
    "inf" as a day: a header no server writes for a wait, read as one."""
    assert parse_retry_after(value) is None


@pytest.mark.parametrize("value,seconds", [("5", 5.0), (" 7 ", 7.0), ("0", 0.0),
                                           ("0.5", 0.5), ("-3", 0.0),
                                           ("9" * 30, MAX_RETRY_AFTER_S)])
def test_digits_are_the_seconds_asked(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds
