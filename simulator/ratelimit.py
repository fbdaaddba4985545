"""Rate limiting as plain data: token buckets keyed by API key (or client address).

No clock and no I/O here: every call takes ``now_ns`` and answers at once.

Each key's bucket is the house's one token bucket (:class:`polyvocab.policies.TokenBucket`,
used here server side with ``try_take``, counting in wall nanoseconds). It holds up to
``rate`` tokens (at least one) and refills at ``rate`` tokens per (simulated) second:
``rate`` requests in the same instant pass, the next one fails, and one more passes every
``1 / rate`` seconds. ``speed`` compresses time: the limit in wall time is
``rate * speed`` requests per wall second, exactly as every other interval in the
simulator is divided by the speed factor.

:class:`KeyedRateLimiter` adds one bucket per key and a per-key daily quota (a fixed
window of one simulated day, also divided by ``speed``). It tracks at most ``max_keys``
keys and forgets the least recently used one past that, so a flood of made-up keys costs
bounded memory (a forgotten key starts again with a full bucket and a fresh quota).
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from dataclasses import dataclass

from polyvocab.policies import TokenBucket

__all__ = ["Decision", "KeyedRateLimiter", "Limit"]

_NS = 1_000_000_000
_DAY_S = 86_400


class Limit(enum.Enum):
    """Which limit a refused request ran into."""

    NONE = "none"
    RATE = "rate"
    DAILY = "daily"


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request: allowed or not, and when to try again (wall ns)."""

    allowed: bool
    limit: Limit = Limit.NONE
    retry_after_ns: int = 0


ALLOWED = Decision(True)


@dataclass(slots=True)
class _Daily:
    window: int = -1
    count: int = 0


@dataclass(slots=True)
class _Entry:
    bucket: TokenBucket
    daily: _Daily


class KeyedRateLimiter:
    """Per-key token buckets plus an optional per-key daily quota.

    ``check(key, now_ns)`` spends one call of ``key``'s allowance and says whether the
    request may proceed. A refused call does not count against the daily quota. At most
    ``max_keys`` keys are tracked (least recently used forgotten first).
    """

    def __init__(self, rate_per_s: float, *, daily_limit: int | None = None,
                 speed: float = 1.0, max_keys: int = 10_000) -> None:
        if not rate_per_s > 0 or not speed > 0:
            raise ValueError("rate_per_s and speed must be positive")
        if daily_limit is not None and daily_limit < 1:
            raise ValueError("daily_limit must be >= 1 or None")
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.rate_per_s = rate_per_s
        self.daily_limit = daily_limit
        self.speed = speed
        self.max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._day_ns = max(1, int(_DAY_S * _NS / speed))

    def __len__(self) -> int:
        """How many keys are tracked now (at most ``max_keys``)."""
        return len(self._entries)

    def check(self, key: str, now_ns: int, *, rate_per_s: float | None = None) -> Decision:
        """Spend one call for ``key`` at ``now_ns``; ``rate_per_s`` overrides the rate."""
        rate = self.rate_per_s if rate_per_s is None else rate_per_s
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate}")
        per_ns, burst = rate * self.speed / _NS, max(1.0, rate)  # tokens per wall ns
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(TokenBucket(per_ns, burst), _Daily())
            if len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        daily = None
        if self.daily_limit is not None:
            daily = entry.daily
            window = now_ns // self._day_ns
            if window != daily.window:
                daily.window, daily.count = window, 0
            if daily.count >= self.daily_limit:
                return Decision(False, Limit.DAILY, (window + 1) * self._day_ns - now_ns)
        bucket = entry.bucket
        bucket.rate, bucket.burst = per_ns, burst  # a fault may have changed the rate
        wait_ns = bucket.try_take(now_ns)
        if wait_ns > 0:
            return Decision(False, Limit.RATE, max(1, math.ceil(wait_ns)))
        if daily is not None:
            daily.count += 1
        return ALLOWED

    def reset(self) -> None:
        """Forget every bucket and quota (the simulator's ``/_sim/reset``)."""
        self._entries.clear()
