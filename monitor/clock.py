"""The one clock. Cores take ``now`` as an argument; shells read it from a :class:`Clock`.

``now_ns()`` is ``time.monotonic_ns()``: on Linux one clock for every process on the
machine, so the simulator's and the monitor's histories compare directly.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


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
