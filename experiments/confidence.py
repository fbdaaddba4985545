"""Exact binomial confidence bounds for rates (missed, late, duplicate, phantom per trade;
"fallback engaged" per fault event) and distribution-free bounds for quantiles (latency
p50/p95/p99). Pure functions, no dependencies beyond ``math``.

A gate such as ``missed < 1%`` passes only when the *upper* bound of the miss rate is below
1% at the chosen confidence (one-sided Clopper-Pearson): "0 missed in 428 trades" bounds
the miss rate below 0.70% at 95%, "0 in 48,200" below 0.0063% (0.00622%). Where the
trades seen so far cannot decide a gate, :func:`trials_needed` says how many more would,
had they all gone well.

The one-sided upper bound ``u`` for ``k`` events in ``n`` trials solves
``P[X <= k | n, u] = 1 - confidence``; the lower bound ``l`` solves
``P[X >= k | n, l] = 1 - confidence``. Both by bisection on the exact binomial tail.

Quantiles (:func:`quantile_bound`): of ``n`` samples drawn independently from one
distribution, sorted ``x_(1) <= ... <= x_(n)``, the number below the true ``q``-quantile
``xi`` is Binomial(n, q). So ``P[xi <= x_(k)] >= P[Binomial(n, q) <= k - 1]`` and
``P[x_(j) <= xi] >= P[Binomial(n, q) >= j]``, whatever the distribution: the one-sided
upper bound at ``confidence`` is ``x_(k)`` for the smallest ``k`` with
``P[Binomial(n, q) <= k - 1] >= confidence``, the lower bound ``x_(j)`` for the largest
``j`` with ``P[Binomial(n, q) >= j] >= confidence``. Neither needs to exist: the upper
bound of a p95 needs ``1 - 0.95**n >= 0.95``, 59 samples (a p99: 299, a p50: 5); with
fewer, the largest sample is not yet above the p95 with 95 % confidence. (Equivalently, a
gate ``p95 < X`` passes when the Clopper-Pearson upper bound of the share of samples at or
above ``X`` is at most 5 %: the rate gates' reasoning, applied to "slower than X".) Both
assume independent samples, as the rates' bounds assume independent trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["QuantileBound", "RateBound", "lower_bound", "min_samples_for_upper", "pct_up",
           "quantile_bound", "quantile_ranks", "rate_bound", "samples_to_lower_upper",
           "samples_to_raise_lower", "trials_needed", "upper_bound"]


def _log_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


#: a term this far (in log) below the largest ends the sum once past the mode: the terms
#: left fall off faster than geometrically, and all of them together are below 1e-12 of it
_NEGLIGIBLE_LOG = -60.0


def _cdf(k: int, n: int, p: float) -> float:
    """P[X <= k] for X ~ Binomial(n, p), summed in log space from ``k`` down, stopping
    once the terms are negligible beside the largest (past the mode): a bound on 400,000
    trades summed all 400,000 terms at each step of its bisection (28 s for one bound)."""
    if k >= n:
        return 1.0
    if k < 0:
        return 0.0
    mode = min(k, max(0, math.floor((n + 1) * p)))
    top = _log_pmf(mode, n, p)
    if top == -math.inf:
        return 0.0
    total = 0.0
    for i in range(k, -1, -1):
        t = _log_pmf(i, n, p) - top
        total += math.exp(t)
        if i < mode and t < _NEGLIGIBLE_LOG:
            break
    return min(1.0, math.exp(top) * total)


def _check(k: int, n: int, confidence: float) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound of the rate behind ``k`` events in ``n`` trials
    (1.0 when ``n`` is 0: nothing is known)."""
    _check(k, n, confidence)
    if n == 0 or k == n:
        return 1.0
    alpha = 1.0 - confidence
    if k == 0:
        return 1.0 - alpha ** (1.0 / n)
    lo, hi = k / n, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if _cdf(k, n, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def lower_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided lower confidence bound (0.0 when ``k`` is 0)."""
    _check(k, n, confidence)
    if k == 0:
        return 0.0
    return 1.0 - upper_bound(n - k, n, confidence)


def trials_needed(limit: float, confidence: float = 0.95, events: int = 0) -> int:
    """Trials with ``events`` events after which the upper bound falls below ``limit``."""
    if not 0.0 < limit < 1.0:
        raise ValueError(f"limit must be in (0, 1), got {limit}")
    alpha = 1.0 - confidence
    n = max(events + 1, math.ceil(math.log(alpha) / math.log1p(-limit)))
    while upper_bound(events, n, confidence) >= limit:
        n = math.ceil(n * 1.2) + 1
    lo, hi = events, n
    while lo + 1 < hi:  # smallest n that decides
        mid = (lo + hi) // 2
        if upper_bound(events, mid, confidence) < limit:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True, slots=True)
class RateBound:
    """``events`` in ``trials`` with its point estimate and one-sided bounds."""

    events: int
    trials: int
    confidence: float
    rate: float | None
    lower: float
    upper: float

    def text(self, what: str = "missed", unit: str = "trades") -> str:
        """``0 missed in 48,200 trades: rate < 0.0063% at 95%`` (two significant digits,
        rounded up: never below the bound)."""
        if self.trials == 0:
            return f"no {unit}: the {what} rate is unknown"
        return (f"{self.events:,} {what} in {self.trials:,} {unit}: rate < "
                f"{pct_up(self.upper)} at {self.confidence:.0%}")

    def to_dict(self) -> dict[str, float | int | None]:
        return {"events": self.events, "trials": self.trials, "confidence": self.confidence,
                "rate": self.rate, "lower": self.lower, "upper": self.upper}


def rate_bound(events: int, trials: int, confidence: float = 0.95) -> RateBound:
    return RateBound(events, trials, confidence,
                     None if trials == 0 else events / trials,
                     lower_bound(events, trials, confidence),
                     upper_bound(events, trials, confidence))


def pct_up(x: float) -> str:
    """A bound as a percentage with two significant digits, rounded up (conservative)."""
    pct = x * 100
    if pct <= 0:
        return "0%"
    scale = 10 ** (math.floor(math.log10(pct)) - 1)
    up = math.ceil(pct / scale - 1e-9) * scale
    decimals = max(0, -(math.floor(math.log10(pct)) - 1))
    return f"{up:.{decimals}f}%"


# --- quantiles -------------------------------------------------------------------------

#: a tail probability this close to the confidence meets it: ``1 - 0.05**1`` is 0.95
#: exactly, and the lower bound of a p95 from one sample is that sample (not "none")
_TIE = 1e-12
#: the order statistics between the two bounds a summary keeps (they say how many more
#: samples would decide a gate between them); past this many the summary keeps none
WINDOW_MAX = 5000


def _check_q(n: int, q: float, confidence: float) -> None:
    if n < 0:
        raise ValueError(f"need n >= 0, got {n}")
    if not 0.0 < q < 1.0:
        raise ValueError(f"the quantile must be in (0, 1), got {q}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _bracket(n: int, q: float) -> tuple[int, int]:
    """Ranks around ``n * q`` wide enough (12 standard deviations) to hold both bounds at
    any confidence below 1 - 1e-30: bisection starts there, not at 1..n (a sum of the
    binomial's terms from far past its mode costs one term each)."""
    half = 12.0 * math.sqrt(n * q * (1.0 - q)) + 2.0
    return max(1, math.floor(n * q - half)), min(n, math.ceil(n * q + half))


def _upper_rank(n: int, q: float, confidence: float) -> int | None:
    """Smallest ``k`` in 1..n with ``P[Binomial(n, q) <= k - 1] >= confidence``."""
    def ok(k: int) -> bool:
        return _cdf(k - 1, n, q) >= confidence - _TIE

    if n == 0 or not ok(n):
        return None
    lo, hi = _bracket(n, q)
    if ok(lo):
        lo, hi = 0, lo
    elif not ok(hi):
        hi = n
    while lo + 1 < hi:  # invariant: not ok(lo) (or lo == 0), ok(hi)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _lower_rank(n: int, q: float, confidence: float) -> int | None:
    """Largest ``j`` in 1..n with ``P[Binomial(n, q) >= j] >= confidence``, that is
    ``P[Binomial(n, q) <= j - 1] <= 1 - confidence``."""
    def ok(j: int) -> bool:
        return _cdf(j - 1, n, q) <= 1.0 - confidence + _TIE

    if n == 0 or not ok(1):
        return None
    lo, hi = _bracket(n, q)
    if not ok(lo):
        lo, hi = 1, lo
    elif ok(hi):
        lo, hi = hi, n + 1
    while lo + 1 < hi:  # invariant: ok(lo), not ok(hi) (or hi == n + 1)
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def quantile_ranks(n: int, q: float, confidence: float = 0.95
                   ) -> tuple[int | None, int | None]:
    """(``j``, ``k``): the 1-based ranks among ``n`` sorted samples of the one-sided lower
    and upper ``confidence`` bounds of the ``q``-quantile (see the module docstring); None
    where too few samples give none."""
    _check_q(n, q, confidence)
    return _lower_rank(n, q, confidence), _upper_rank(n, q, confidence)


def _smallest_n(start: int, ok: Callable[[int], bool]) -> int:
    """The smallest ``n >= start`` with ``ok(n)``, for ``ok`` false then true for good."""
    if ok(start):
        return start
    lo, hi = start, max(start + 1, 2 * start)
    while not ok(hi):
        lo, hi = hi, 2 * hi
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def samples_to_lower_upper(q: float, confidence: float = 0.95, above: int = 0) -> int:
    """The fewest samples, ``above`` of them at or over a limit ``X``, whose upper bound of
    the ``q``-quantile is below ``X``: the upper rank must leave ``above`` samples over it
    (``N - k(N) >= above``; ``N - k(N)`` never falls as ``N`` grows)."""
    _check_q(1, q, confidence)

    def ok(n: int) -> bool:
        k = _upper_rank(n, q, confidence)
        return k is not None and n - k >= above

    return _smallest_n(max(1, above + 1), ok)


def samples_to_raise_lower(q: float, confidence: float = 0.95, below: int = 0) -> int:
    """The fewest samples, ``below`` of them at or under a limit ``X``, whose lower bound
    of the ``q``-quantile is over ``X``: the lower rank must be past them
    (``j(N) >= below + 1``; ``j(N)`` never falls as ``N`` grows)."""
    _check_q(1, q, confidence)

    def ok(n: int) -> bool:
        j = _lower_rank(n, q, confidence)
        return j is not None and j > below

    return _smallest_n(max(1, below + 1), ok)


@dataclass(frozen=True, slots=True)
class QuantileBound:
    """The ``quantile`` of ``n`` samples: its one-sided ``confidence`` bounds (None where
    ``n`` is too small for one), their ranks, and the sorted samples from the lower
    bound's rank to the upper's (``window``, from rank ``window_from``; None past
    :data:`WINDOW_MAX`), which tell how many samples lie on either side of any limit
    between the bounds."""

    quantile: float
    confidence: float
    n: int
    lower: float | None
    upper: float | None
    lower_rank: int | None
    upper_rank: int | None
    min_n: int  # samples an upper bound needs (1 - q**n >= confidence)
    window_from: int
    window: tuple[float, ...] | None

    def to_dict(self) -> dict[str, Any]:
        return {"quantile": self.quantile, "confidence": self.confidence, "n": self.n,
                "lower": self.lower, "upper": self.upper, "lower_rank": self.lower_rank,
                "upper_rank": self.upper_rank, "min_n": self.min_n,
                "window_from": self.window_from,
                "window": None if self.window is None else list(self.window)}


def min_samples_for_upper(q: float, confidence: float = 0.95) -> int:
    """The fewest samples with an upper bound of the ``q``-quantile: ``1 - q**n >=
    confidence`` (59 for a p95 at 95 %)."""
    _check_q(1, q, confidence)
    n = max(1, math.floor(math.log(1.0 - confidence) / math.log(q)) - 1)
    while _upper_rank(n, q, confidence) is None:
        n += 1
    return n


def quantile_bound(samples: Iterable[float], q: float, confidence: float = 0.95
                   ) -> QuantileBound:
    """The bounds of the ``q``-quantile of ``samples`` (finite numbers; NaN and None are
    left out, as a quantile leaves them out)."""
    xs = sorted(float(x) for x in samples if x is not None and math.isfinite(float(x)))
    n = len(xs)
    j, k = quantile_ranks(n, q, confidence)
    first, last = (j or 1), (k or n)
    window = tuple(xs[first - 1:last]) if last - first + 1 <= WINDOW_MAX else None
    return QuantileBound(q, confidence, n, None if j is None else xs[j - 1],
                         None if k is None else xs[k - 1], j, k,
                         min_samples_for_upper(q, confidence), first, window)
