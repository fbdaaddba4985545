"""Rate limiting as plain data: token buckets keyed by API key (or client address).

No clock and no I/O here: every call takes ``now_ns`` and answers at once, so the same
core limits the explorer's callers (server side) and paces the recorder (client side).

A :class:`TokenBucket` holds up to ``rate`` tokens (at least one) and refills at ``rate``
tokens per (simulated) second: ``rate`` requests in the same instant pass, the next one
fails, and one more passes every ``1 / rate`` seconds. ``speed`` compresses time: the
limit in wall time is ``rate * speed`` requests per wall second, exactly as every other
interval in the simulator is divided by the speed factor.

:class:`KeyedRateLimiter` adds one bucket per key and a per-key daily quota (a fixed
window of one simulated day, also divided by ``speed``). It tracks at most ``max_keys``
keys and forgets the least recently used one past that, so a flood of made-up keys costs
bounded memory (a forgotten key starts again with a full bucket and a fresh quota).
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["Decision", "KeyedRateLimiter", "Limit", "TokenBucket"]

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
class TokenBucket:
    """One bucket. ``rate`` may change between calls (a fault tightening the limit)."""

    rate: float
    speed: float = 1.0
    tokens: float = field(default=-1.0)
    last_ns: int | None = None

    def __post_init__(self) -> None:
        if not self.rate > 0 or not self.speed > 0:
            raise ValueError(f"rate and speed must be positive, got {self.rate}, {self.speed}")
        if self.tokens < 0:
            self.tokens = self.capacity(self.rate)

    @staticmethod
    def capacity(rate: float) -> float:
        return max(1.0, rate)

    def take(self, now_ns: int, rate: float | None = None) -> Decision:
        """Spend one token if there is one; ``rate`` overrides the bucket's own rate."""
        r = self.rate if rate is None else rate
        if not r > 0:
            raise ValueError(f"rate must be positive, got {r}")
        cap = self.capacity(r)
        per_ns = r * self.speed / _NS  # tokens per wall nanosecond
        if self.last_ns is not None and now_ns > self.last_ns:
            self.tokens += (now_ns - self.last_ns) * per_ns
        if self.last_ns is None or now_ns > self.last_ns:
            self.last_ns = now_ns
        self.tokens = min(self.tokens, cap)
        if self.tokens >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return ALLOWED
        wait = math.ceil((1.0 - self.tokens) / per_ns)
        return Decision(False, Limit.RATE, max(1, wait))


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
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(TokenBucket(rate, self.speed), _Daily())
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
        decision = entry.bucket.take(now_ns, rate)
        if decision.allowed and daily is not None:
            daily.count += 1
        return decision

    def reset(self) -> None:
        """Forget every bucket and quota (the simulator's ``/_sim/reset``)."""
        self._entries.clear()
