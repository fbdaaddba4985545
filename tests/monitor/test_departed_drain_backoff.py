"""OwedDrain (monitor.departed): a source that keeps failing (a node that pruned the
history of a cursor months behind: 4444 at every call; a spent monthly quota) is asked
again at a growing delay, and said in the log and the history a bounded number of times."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from monitor import departed
from monitor.clock import SystemClock
from monitor.departed import OwedDrain
from monitor.errors import MonitorError
from monitor.history import History


def test_a_source_that_keeps_failing_is_asked_again_ever_later_and_said_few_times(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """200 failures, then an answer. Before: asked again every ``retry_s`` (the polling
    interval, 15 s) for ever, with a warning and a history row each time (5,760 a day).
    Now the delay doubles up to ``retry_max_s`` (by default 64 times ``retry_s``; the
    monitor passes its longest back-off), and the 1st, 2nd, 4th, 8th ... failure
    of a range is said."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(s: float) -> None:
        delays.append(s)
        await real_sleep(0)
    monkeypatch.setattr(departed.asyncio, "sleep", sleep)
    fails = {"left": 200}
    delivered: list[int] = []

    async def fetch(wallets: Sequence[str], a: int, b: int) -> list[dict[str, Any]]:
        if fails["left"]:
            fails["left"] -= 1
            raise MonitorError("-32000: history has been pruned for this block (4444)")
        return []

    async def deliver(logs: list[dict[str, Any]], wallets: frozenset[str]) -> None:
        delivered.append(len(logs))

    history = History(tmp_path / "h.jsonl")
    drain = OwedDrain({"0x" + "ab" * 20: 100}, 150, fetch=fetch, deliver=deliver,
                      advance=lambda ws, b: None, forget=lambda ws: None, chunk=100,
                      group_size=500, retry_s=1.0, clock=SystemClock(),
                      history=history)
    asyncio.run(drain.run())
    history.close()
    assert drain.failures == 200 and delivered == [0] and not drain.owed
    assert delays[:8] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 64.0]
    assert max(delays) == 64.0
    rows = [json.loads(x) for x in (tmp_path / "h.jsonl").read_text().splitlines()]
    failed = [r for r in rows if r["event"] == "owed_drain_failed"]
    assert 1 <= len(failed) <= 9  # 1, 2, 4, ... 128 of 200
