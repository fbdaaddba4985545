"""Client policies every part that talks JSON-RPC or to an explorer shares: pure functions
and a pure class, time as an argument, no I/O (the monitor, the simulator's recorder and
the experiments' reconciliation all stand on them; one implementation each).

- :class:`TokenBucket` - ``rate`` calls per unit of ``now``, bursts of ``burst``. Client
  side (pacing): ``reserve(now)`` takes a token and says how long to wait before using
  it, ``penalise(now, s)`` pushes every later call back after a rate-limit answer.
  Server side (refusing): ``try_take(now)`` takes a token only if one is there, else says
  how long until one is (the simulator's explorer limits its callers with it).
- :func:`retry_delays` - backoff ``initial * factor**k`` capped at ``maximum``, each delay
  shortened by up to ``jitter`` of itself, drawn from a seeded generator (so retries of
  many clients do not synchronise, and a run is still reproducible).
- :func:`backoff_delay` - the same backoff's ``k``-th delay (no jitter) for a caller that
  counts its own failures; never an OverflowError, however long the streak.
- :func:`parse_retry_after` - a ``Retry-After`` header (delta-seconds or HTTP-date),
  0 .. :data:`MAX_RETRY_AFTER_S` (a day).
- :data:`RANGE_TOO_LARGE_TEXTS` / :func:`is_range_too_large` - the texts providers answer
  an ``eth_getLogs`` range with when a smaller range would succeed (geth "query returned
  more than 10000 results", Alchemy "Log response size exceeded ... block range",
  Infura "query returned more than 10000 results", QuickNode "eth_getLogs is limited to a
  10,000 range", public RPCs "block range too large").
- :data:`PROVIDER_TIMEOUT_TEXTS` / :func:`is_provider_timeout` - a provider's own timeout
  of a request said in a JSON-RPC error (dRPC's free tier "Request timeout on the free
  tier", code 30; geth's -32002 "request timed out"): a timeout, retried.
- :class:`QuotaEpisode` - when a client says a spent quota (once an episode, at most
  once every ``alert_every``) and when the episode ends (the refused kind of call
  answered again, or a quiet period without a refusal).
- :data:`KEY_REFUSED_STATUSES` / :func:`is_key_refused_status` - the HTTP statuses a
  provider refuses its key with (401, 403), at an HTTP call or a WebSocket handshake;
  :data:`KEY_REFUSED_TEXTS` / :func:`is_key_refused_text` - the explorer's texts for it
  (Etherscan answers HTTP 200 ``NOTOK`` "Invalid API Key"). A key refused is a setting
  to fix, never an outage to retry into.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Iterable, Iterator

__all__ = ["KEY_REFUSED_STATUSES", "KEY_REFUSED_TEXTS", "MAX_RETRY_AFTER_S",
           "PROVIDER_TIMEOUT_TEXTS", "PRUNED_HISTORY_CODE",
           "QUOTA_TEXTS", "RANGE_TOO_LARGE_TEXTS", "QuotaEpisode",
           "TokenBucket", "backoff_delay", "is_beyond_head", "is_key_refused_status",
           "is_key_refused_text", "is_provider_timeout", "is_quota_exhausted",
           "is_range_too_large", "is_rate_limited", "parse_retry_after", "retry_delays",
           "text_retry_after"]

RANGE_TOO_LARGE_TEXTS = ("more than", "too many", "range", "limit exceeded", "exceed",
                         "too large", "response size")
_RATE_TEXTS = ("rate limit", "too many requests", "request count", "capacity",
               "throughput", "exceeded the rate", "rate exceeded",
               # QuickNode: "15/second request limit reached - reduce calls per second or
               # upgrade your account at quicknode.com" (code -32007)
               "request limit reached", "reduce calls per second",
               # QuickNode's credits: code -32012, "credits limited to 6000/sec"
               "credits limited to")
#: a quota spent for hours or days, not a per-second limit (a plan to raise, a key to
#: change): Alchemy "Monthly capacity limit exceeded. Visit https://dashboard.alchemy.com/
#: settings/billing to upgrade your scaling policy for continued service." (HTTP 429 or
#: 403, code 429, -32600 or -32000), Infura "daily request count exceeded, request rate
#: limited" (-32005)
QUOTA_TEXTS = ("monthly capacity limit", "daily request count exceeded")
#: a provider's own timeout of the request (its backend did not answer in time), said in a
#: JSON-RPC error: dRPC's free tier (code 30, at HTTP 408) "Request timeout on the free
#: tier, please upgrade your tier to the paid one" / "Request timeout on the free plan,
#: please upgrade to paid plan"; geth's -32002 "request timed out". Not the request's
#: fault: asked again (a heavy eth_getLogs range in halves), never refused for good
PROVIDER_TIMEOUT_TEXTS = ("request timeout", "request timed out")
#: the wait a provider writes in its text when no header or data field says it:
#: Ankr's public RPC (polygon-rpc.com's, code -32090) "Too many requests, reason: call rate
#: limit exhausted, retry in 10s" (a Go duration: "10m0s", "24h0m0s"), and "try again in
#: 30 seconds" texts
_RETRY_IN = re.compile(
    r"\b(?:retry|try again) (?:in|after) ((?:[0-9]+(?:\.[0-9]+)?(?:ns|us|\u00b5s|ms|h|m|s))+"
    r"|[0-9]+(?:\.[0-9]+)? ?(?:seconds?|secs?|minutes?|mins?|hours?))\b", re.IGNORECASE)
_WORDS = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?([a-z]+)")
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|\u00b5s|ms|h|m|s)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
           "h": 3600.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0,
           "hour": 3600.0}


#: HTTP statuses with which a provider refuses the key itself (revoked, wrong, not allowed
#: for this origin): Alchemy, Infura and QuickNode answer an HTTP call or a WebSocket
#: upgrade so. Whatever the body says: the status is the answer
KEY_REFUSED_STATUSES = frozenset({401, 403})
#: words of an explorer's NOTOK text that say the key itself is refused (Etherscan V2:
#: "Invalid API Key", "Missing/Invalid API Key"): no retry helps, the key must be fixed
KEY_REFUSED_TEXTS = ("invalid api key", "missing/invalid api key", "missing api key")
#: geth v1.16+ (history expiry, core/history PrunedHistoryError): a block, its logs or
#: receipts below the node's history cutoff, "pruned history unavailable"
PRUNED_HISTORY_CODE = 4444


def is_key_refused_status(status: object) -> bool:
    """An HTTP status (of a call or a WebSocket handshake) that refuses the key."""
    return type(status) is int and status in KEY_REFUSED_STATUSES


#: characters of a provider's text the recognisers read: its words are at the start, and a
#: 64-MB error body was lower-cased whole for each of them (~50 ms a time)
TEXT_READ = 4096


def is_key_refused_text(text: str) -> bool:
    """An explorer's refusal text that is about the key ("Invalid API Key"), not the
    request or the pace."""
    low = text[:TEXT_READ].lower()
    return any(t in low for t in KEY_REFUSED_TEXTS)


def is_rate_limited(message: str) -> bool:
    """A provider's "slow down" text ("daily request count exceeded", "Too Many
    Requests", "project ID request rate exceeded", ...): retry later, same query."""
    text = message[:TEXT_READ].lower()
    return any(t in text for t in _RATE_TEXTS)


def is_quota_exhausted(message: str) -> bool:
    """A provider's text for a quota spent for hours or days (:data:`QUOTA_TEXTS`), not a
    per-second limit: retrying at a rate limit's pace cannot help, a human must know."""
    text = message[:TEXT_READ].lower()
    return any(t in text for t in QUOTA_TEXTS)


def is_provider_timeout(message: str) -> bool:
    """A provider's text saying it timed out on the request (:data:`PROVIDER_TIMEOUT_TEXTS`):
    a timeout like one of the client's own, retried, not a refusal of the request."""
    text = message[:TEXT_READ].lower()
    return any(t in text for t in PROVIDER_TIMEOUT_TEXTS)


def text_retry_after(message: str) -> float | None:
    """The wait a rate-limit text asks for ("... retry in 10s", "retry in 10m0s", "try
    again in 30 seconds"), seconds between 0 and :data:`MAX_RETRY_AFTER_S`; None when it
    names none."""
    found = _RETRY_IN.search(message[:1000])
    if found is None:
        return None
    text = found.group(1).lower()
    parts = _GO_PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:  # a Go duration: 1h2m3.5s
        seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    else:  # "30 seconds", "2 minutes"
        words = _WORDS.fullmatch(text)
        if words is None:
            return None
        seconds = float(words.group(1)) * _UNIT_S[words.group(2).rstrip("s")]
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


#: a node asked for blocks above its head: geth "block range extends beyond current head
#: block", others "block N is beyond the latest block M of this node, retry later"
_BEYOND_HEAD = re.compile(r"beyond.{0,24}(head|latest)|exceeds?.{0,12}head", re.IGNORECASE)


def is_beyond_head(message: str) -> bool:
    """An ``eth_getLogs`` refusal because the range reaches above the node's head (a
    load-balanced node behind the one that gave the head): ask again up to its head, or
    later; a smaller range below the head is not the remedy its "range" word suggests."""
    return _BEYOND_HEAD.search(message) is not None


def is_range_too_large(message: str) -> bool:
    """An ``eth_getLogs`` refusal that a smaller block range would avoid (not a rate
    limit: "too many requests" is about pace, not range; not a range above the head)."""
    if is_rate_limited(message) or is_beyond_head(message):
        return False
    return any(t in message[:TEXT_READ].lower() for t in RANGE_TOO_LARGE_TEXTS)


class TokenBucket:
    """``rate`` calls per unit of ``now`` (seconds for the clients), bursts up to ``burst``
    (time as an argument). ``rate`` and ``burst`` may be changed between calls (a fault
    tightening a server's limit); the refill since the last call uses the new rate."""

    def __init__(self, rate: float, burst: float = 1.0) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None
        self._blocked_until = float("-inf")

    def _refill(self, now: float) -> None:
        if self._last is None:
            self._last = now
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = max(self._last, now)

    def reserve(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens (a batch of n calls costs n); return how long to wait
        before using them (0 = at once)."""
        self._refill(now)
        self._tokens -= cost
        wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        return max(wait, self._blocked_until - now, 0.0)

    def try_take(self, now: float) -> float:
        """Take a token if one is there and return 0.0; otherwise take nothing (a refused
        call costs nothing) and return how long until one is."""
        self._refill(now)
        if now < self._blocked_until:
            return self._blocked_until - now
        if self._tokens >= 1.0 - 1e-9:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def penalise(self, now: float, seconds: float) -> None:
        """A rate-limit answer: nothing goes out before ``now + seconds``."""
        self._blocked_until = max(self._blocked_until, now + seconds)


def retry_delays(initial: float = 0.25, maximum: float = 8.0, factor: float = 2.0, *,
                 jitter: float = 0.0, seed: int | str = 0,
                 rng: random.Random | None = None) -> Iterator[float]:
    """``initial``, ``initial*factor``, ... capped at ``maximum``, each shortened by up to
    ``jitter`` (0..1) of itself from ``rng`` (default ``random.Random(seed)``), so no
    delay ever exceeds ``maximum``. Infinite. The one backoff of the project: HTTP
    retries and WebSocket reconnects alike."""
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    rng = rng if rng is not None else random.Random(seed)
    d = initial
    while True:
        base = min(d, maximum)
        yield base * (1.0 - jitter * rng.random()) if jitter else base
        d = min(d * factor, maximum)


#: doublings :func:`backoff_delay` counts at most: every maximum in use is reached long
#: before, and ``2.0 ** 1024`` is an OverflowError (a streak of refusals an hour long or
#: more reached it: a URL refused for 17 hours, a task crashing for as long)
_DOUBLINGS_MAX = 64


def backoff_delay(k: int, *, initial: float, maximum: float, factor: float = 2.0) -> float:
    """``initial * factor**k`` capped at ``maximum`` (``k`` below 0 counts as 0): the
    ``k``-th delay of :func:`retry_delays` without jitter, for a caller that counts its
    own streak (a crash streak, refused calls in a row)."""
    return min(initial * factor ** min(max(k, 0), _DOUBLINGS_MAX), maximum)


#: the longest wait a ``Retry-After`` is read as (a day: an explorer's daily quota resets
#: within it). "1e400" read as infinity, an HTTP-date in the year 9999 as ~250,000 years;
#: each client caps what it waits lower still (the JSON-RPC client at ``max_retry_after``)
MAX_RETRY_AFTER_S = 86_400.0


#: delay-seconds as RFC 9110 writes it (``1*DIGIT``, ASCII), with what servers that do not
#: follow it send and mean plainly: a decimal fraction ("0.5"), a minus sign ("-3": now)
_DELAY_SECONDS = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, *, now_wall: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), between 0 and
    :data:`MAX_RETRY_AFTER_S`; None if absent or unreadable. 0 (a date in the past, a
    negative number) means "now": the caller's backoff is the floor of what it waits,
    never this. Delta-seconds are ASCII digits (a decimal fraction or a minus sign
    tolerated): whatever else ``float()`` reads ("1e3", "1_000", "inf", "nan", digits of
    other scripts) is unreadable, not a wait."""
    if not value:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return min(max(0.0, float(value)), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now_wall is None else now_wall
    try:
        seconds = when.timestamp() - now
    except (OverflowError, OSError, ValueError):  # a date no platform can convert
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


class QuotaEpisode:
    """A spent quota's episode, for a client that says it (time as an argument).

    The quota may be spent for one kind of call only (a provider refusing ``eth_getLogs``
    for its quota answers ``eth_blockNumber``): :meth:`refused` names the methods a
    refusal was for, :meth:`answered` the methods of an answer, and the episode ends only
    once every refused method has been answered again - or when no refusal came for
    ``alert_every`` while other calls were answered (the refused kind not asked any
    more). An answer of any other method ending it, the next refusal began another
    episode and said it again: an alert every few seconds while ``eth_getLogs`` stayed
    refused. And an episode is said at most once every ``alert_every`` whatever ends
    them (a trickle served after a daily count - one call answered, the next refused -
    ends and begins episodes all day)."""

    def __init__(self, alert_every: float = 3600.0) -> None:
        if not alert_every >= 0:
            raise ValueError("alert_every must be >= 0")
        self.alert_every = alert_every
        #: when the episode going on began (None: none)
        self.since: float | None = None
        self._refused: dict[str, float] = {}  # method -> its last refusal
        self._said_at: float | None = None

    def refused(self, methods: Iterable[str], now: float) -> bool:
        """A call of ``methods`` refused for the quota. True when this is to be said (an
        episode begins and none was said for ``alert_every``)."""
        for m in methods:
            self._refused[m] = now
        if self.since is not None:
            return False
        self.since = now
        if self._said_at is not None and now - self._said_at < self.alert_every:
            return False
        self._said_at = now
        return True

    def answered(self, methods: Iterable[str], now: float) -> bool:
        """A call of ``methods`` answered. True when that ends the episode."""
        if self.since is None:
            return False
        for m in methods:
            self._refused.pop(m, None)
        if self._refused and now - max(self._refused.values()) < self.alert_every:
            return False
        self._refused.clear()
        self.since = None
        return True
