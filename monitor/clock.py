"""The one clock. Cores take ``now`` as an argument; shells read it from a :class:`Clock`.

``now_ns()`` is ``time.monotonic_ns()``: on Linux one clock for every process on the
machine, so the simulator's and the monitor's histories compare directly.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "LoopClock", "ManualClock", "SystemClock", "wall_ns"]


class Clock(Protocol):
    def now_ns(self) -> int: ...

    def now(self) -> float:
        """Seconds (float) on the same clock."""
        ...


class SystemClock:
    """The machine-wide monotonic clock."""

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def now(self) -> float:
        return time.monotonic_ns() / 1e9

    def wall_ns(self) -> int:
        """UTC wall-clock ns (``time.time_ns``)."""
        return time.time_ns()


class LoopClock:
    """The running asyncio event loop's clock, in ns. Under virtual time (looptime) the loop
    jumps to the next timer whenever nothing is ready, and every part that reads this clock
    (the monitor, the simulator, both histories) jumps with it. ``wall_ns`` is a fixed
    ``epoch_ns`` plus loop time, so a virtual run writes the same bytes every time."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *,
                 epoch_ns: int = 1_767_225_600 * 10**9) -> None:  # 2026-01-01T00:00Z
        self._loop = loop
        self.epoch_ns = epoch_ns

    def _time(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    def now_ns(self) -> int:
        return round(self._time() * 1e9)

    def now(self) -> float:
        return self._time()

    def wall_ns(self) -> int:
        return self.epoch_ns + self.now_ns()


def wall_ns(clock: Clock) -> int:
    """``clock.wall_ns()`` where the clock has one, else ``time.time_ns()``."""
    fn = getattr(clock, "wall_ns", None)
    return int(fn()) if callable(fn) else time.time_ns()


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._ns = int(start_s * 1e9)

    def now_ns(self) -> int:
        return self._ns

    def now(self) -> float:
        return self._ns / 1e9

    def advance(self, seconds: float) -> None:
        self._ns += int(seconds * 1e9)
