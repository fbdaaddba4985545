"""The replay schedule and the explorer's index lag: pure functions of time.

Block ``i`` is published at ``t0 + (timestamp_i - timestamp_0) / speed``; nothing here
reads a clock, callers pass ``now_ns``.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from simulator.settings import LagSettings

__all__ = ["IndexLag", "ReplaySchedule"]

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ReplaySchedule:
    """When each block of a recording becomes visible, for a start time and a speed."""

    t0_ns: int
    timestamps: Sequence[int]
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not (self.speed > 0 and math.isfinite(self.speed)):
            raise ValueError(f"speed must be a positive number, got {self.speed!r}")
        if any(b < a for a, b in zip(self.timestamps, self.timestamps[1:], strict=False)):
            raise ValueError("block timestamps go backwards")

    @classmethod
    def build(cls, t0_ns: int, timestamps: Sequence[int], speed: float) -> ReplaySchedule:
        return cls(t0_ns=t0_ns, timestamps=tuple(timestamps), speed=speed)

    def __len__(self) -> int:
        return len(self.timestamps)

    def due_ns(self, i: int) -> int:
        """When block ``i`` (0-based position in the recording) is published."""
        return self.t0_ns + int((self.timestamps[i] - self.timestamps[0]) * _NS / self.speed)

    def published_count(self, now_ns: int) -> int:
        """How many blocks are visible at ``now_ns`` (blocks 0 .. n-1)."""
        if not self.timestamps or now_ns < self.t0_ns:
            return 0
        # block i is due when (ts_i - ts_0) * NS / speed <= now - t0
        elapsed = (now_ns - self.t0_ns) * self.speed / _NS
        n = bisect.bisect_right(self.timestamps, self.timestamps[0] + elapsed)
        # guard against float rounding at the boundary
        while n > 0 and self.due_ns(n - 1) > now_ns:
            n -= 1
        while n < len(self.timestamps) and self.due_ns(n) <= now_ns:
            n += 1
        return n

    def next_due_ns(self, published: int) -> int | None:
        """When the next block after ``published`` visible blocks is due (None: the end)."""
        return self.due_ns(published) if published < len(self.timestamps) else None

    def sim_seconds(self, now_ns: int) -> float:
        """Simulated seconds since block 0 was due."""
        return (now_ns - self.t0_ns) * self.speed / _NS


@dataclass(frozen=True, slots=True)
class IndexLag:
    """The explorer's index lag: a seeded lognormal draw per block, in simulated seconds.

    The draw depends only on the seed and the block hash, so the same block always gets the
    same lag and a reorged-in block gets a fresh one.
    """

    settings: LagSettings = field(default_factory=LagSettings)

    def draw_s(self, block_hash: str, extra_s: float = 0.0) -> float:
        s = self.settings
        sigma = math.log(s.p95_s / s.median_s) / 1.6448536269514722
        digest = hashlib.blake2b(f"{s.seed}:{block_hash}".encode(), digest_size=8).digest()
        rng = random.Random(int.from_bytes(digest, "big"))
        lag = s.median_s * math.exp(sigma * rng.gauss(0.0, 1.0))
        return min(max(lag, s.min_s), s.max_s) + extra_s

    def lag_ns(self, block_hash: str, speed: float, extra_s: float = 0.0) -> int:
        """The lag in real nanoseconds at ``speed``."""
        return int(self.draw_s(block_hash, extra_s) * _NS / speed)
