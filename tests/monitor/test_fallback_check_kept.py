"""A check of a poller's deliveries that could not run yet (the node refused: its quota
spent, so the sync loop started the next poller before it ran) is kept when that next
poller stops: the check runs from the lower start. It was overwritten by the later
poller's floor, and the first poller's deliveries (an explorer's orphans) were never
asked of the node again."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from monitor.wallet_monitor import WsShard


def _stopped_shard(pending: int | None, floor: int) -> WsShard:
    shard = WsShard.__new__(WsShard)  # only what _end_polling reads
    shard._poller, shard._poll_task = None, None
    shard._fallback_floor = floor
    shard._fallback_check = pending
    shard.tracker = SimpleNamespace(keep=64)  # type: ignore[assignment]
    shard._wake = asyncio.Event()
    return shard


def test_a_pending_check_of_an_earlier_poller_is_kept() -> None:
    shard = _stopped_shard(pending=100, floor=1000)  # the first poller delivered from 164
    asyncio.run(shard._end_polling("node answers again after its quota was spent"))
    assert shard._fallback_check == 100
    assert shard._wake.is_set()


def test_without_a_pending_check_it_starts_below_the_floor() -> None:
    shard = _stopped_shard(pending=None, floor=1000)
    asyncio.run(shard._end_polling("feed healthy and backfilled"))
    assert shard._fallback_check == 1000 - 64
    shard = _stopped_shard(pending=2000, floor=1000)  # a higher pending one: the lower
    asyncio.run(shard._end_polling("feed healthy and backfilled"))
    assert shard._fallback_check == 1000 - 64
