"""The sync loop's wait after failures in a row (``sync_retry_delay``): 2, 4, 8, 16, then
30 simulated seconds, for as long as the failures last. It was ``2.0 ** failures``
uncapped: a node refusing for hours (a spent quota asked every ``backoff_max``, an outage
asked every 30 s) reached 1,024 failures and the sync loop crashed with OverflowError
inside its own error handling (a task crash and a restart, the count begun again)."""

from __future__ import annotations

import pytest

from monitor.wallet_monitor import sync_retry_delay


def test_the_backoff_doubles_up_to_30_simulated_seconds() -> None:
    assert [sync_retry_delay(n, speed=1.0) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    assert sync_retry_delay(3, speed=20.0) == pytest.approx(0.4)
    assert sync_retry_delay(1, speed=0.01) == 30.0  # never more than 30 clock seconds


@pytest.mark.parametrize("failures", [1023, 1024, 1025, 10**6])
def test_a_day_of_failures_keeps_the_30_s_pace(failures: int) -> None:
    assert sync_retry_delay(failures, speed=1.0) == 30.0
