"""The one JSON-RPC over HTTP client (aiohttp): retries, rate limits, error classes.

The monitor, the simulator's recorder and the experiments' reconciliation all send their
JSON-RPC over HTTP through :class:`JsonRpcHttpClient`; each chooses its policies (which
errors to retry, which JSON-RPC errors mean "slow down", the backoff) as plain callables.

One seam: the caller hands in its :class:`aiohttp.ClientSession`, so tests point the
client at a loopback server and production at Alchemy/QuickNode/Infura unchanged.

* :func:`classify_http` (pure) turns an HTTP answer into a parsed body or one of the
  errors of :mod:`polyvocab.errors`: 429 -> :class:`RateLimited` (with ``Retry-After``),
  5xx -> :class:`ServerError` (with ``Retry-After`` too: a 503's), HTML / not JSON /
  wrong shape / nested too deep -> :class:`BadResponse`, a JSON-RPC error object ->
  :class:`RpcError` (rate-limit errors, as the ``rate_limited`` policy says, ->
  :class:`RateLimited`, with the wait a header, a data field or the text names; a spent
  quota, and HTTP 402, -> :class:`QuotaExhausted`; HTTP 408 and a provider's own
  timeout text, dRPC's free tier "Request timeout", -> :class:`Timeout`, retried). A body
  in a Content-Encoding the client did not ask for (br, zstd) is a :class:`BadResponse`
  too, not a network fault.
* :func:`~polyvocab.policies.retry_delays` (plain generator, jittered) is the retry
  backoff; :func:`should_retry` the default decision; a server's ``Retry-After`` (or
  a rate limit's ``data.backoff_seconds``) lengthens the backoff, never shortens it.
* :class:`~polyvocab.policies.TokenBucket` (pure, time as argument) is the optional
  client-side rate limit.
* :class:`JsonRpcHttpClient` sends :meth:`~JsonRpcHttpClient.call` and
  :meth:`~JsonRpcHttpClient.batch` (a retry sends the same request, same ids, again);
  every HTTP request sent is an ``api_call`` history row (kind ``rpc_http``, one per
  method in it) and is counted in ``counter`` (:class:`CallCounter`). Every error
  message is redacted (:mod:`polyvocab.redact`): a key in the URL never shows.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from polyvocab.bounds import brief, cut, nesting_ok, values_ok
from polyvocab.errors import (
    RATE_LIMIT_RPC_CODES,
    BadResponse,
    ConnectError,
    ConnectionLost,
    QuotaExhausted,
    RateLimited,
    RpcError,
    ServerError,
    ServiceError,
    Timeout,
    is_retryable,
)
from polyvocab.http_read import read_body, undecodable_encoding
from polyvocab.policies import (
    QuotaEpisode,
    TokenBucket,
    is_key_refused_status,
    is_provider_timeout,
    is_quota_exhausted,
    is_range_too_large,
    is_rate_limited,
    parse_retry_after,
    retry_delays,
    text_retry_after,
)
from polyvocab.redact import mask_url, redact

__all__ = [
    "MAX_ANSWER_VALUES",
    "CallCounter",
    "HistoryLike",
    "JsonRpcHttpClient",
    "NowClock",
    "classify_http",
    "is_rate_limit_reply",
    "rate_limit_of",
    "should_retry",
]

log = logging.getLogger("polyvocab.rpc")


class HistoryLike(Protocol):
    """Where the client writes its rows (``monitor.history.History`` is one)."""

    def record(self, event: str, **fields: Any) -> Any: ...


class NowClock(Protocol):
    """The clock the rate limit reads (``monitor.clock.Clock`` is one)."""

    def now(self) -> float: ...


class _NoHistory:
    def record(self, event: str, **fields: Any) -> None:
        return None


class _Monotonic:
    def now(self) -> float:
        return time.monotonic_ns() / 1e9


@dataclass(slots=True)
class CallCounter:
    """API calls by method, and how many failed, by error kind; HTTP requests sent and
    their statuses (``to_dict`` reports calls, failures and retries)."""

    calls: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    def call(self, method: str, ok: bool, error_kind: str | None = None) -> None:
        self.calls[method] += 1
        if not ok:
            self.failures[error_kind or "error"] += 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def to_dict(self) -> dict[str, Any]:
        return {"calls": dict(self.calls), "total": self.total,
                "failures": dict(self.failures), "retries": self.retries}


RateRule = Callable[[int, str], bool]

#: JSON values one answer may hold (:func:`polyvocab.bounds.values_ok`): an answer of
#: the 64 MB body bound made of ``[],`` (21 M empty lists) took ~1.5 GB and seconds of the
#: event loop to parse. The most an honest answer of that bound holds is ~0.9 M (64 MB of
#: eth_getLogs logs at ~13 values a log); past this it is refused as ``too_large``
MAX_ANSWER_VALUES = 1_500_000

#: QuickNode's per-second limit: code -32007, "15/second request limit reached - reduce
#: calls per second or upgrade your account at quicknode.com" (the number is the plan's;
#: its texts are :func:`~polyvocab.policies.is_rate_limited`'s too)
QUICKNODE_RATE_CODE = -32007
#: TheRPC's rate limit: HTTP 200 with error code -32029 (reown-com/blockchain-api #1102)
THERPC_RATE_CODE = -32029
#: the methods whose "limit exceeded" may be a range refusal (a smaller range succeeds);
#: on any other method a rate-limit code can only mean "slow down"
RANGED_METHODS = frozenset({"eth_getLogs"})


def is_rate_limit_reply(code: int, message: str) -> bool:
    """The one "slow down" rule for JSON-RPC error objects: code 429, a provider's
    rate-limit text (:func:`~polyvocab.policies.is_rate_limited`, QuickNode's -32007
    "request limit reached", TheRPC's -32029), or -32005 (Infura's "limit exceeded")
    unless its text is a range refusal: -32005 "query returned more than 10000 results"
    stays an :class:`RpcError` (split the range), never retried."""
    if code in (429, QUICKNODE_RATE_CODE, THERPC_RATE_CODE) or is_rate_limited(message):
        return True
    return code in RATE_LIMIT_RPC_CODES and not is_range_too_large(message)


def _for_method(rule: RateRule, method: str) -> RateRule:
    """``rule`` for an answer to ``method``: a method without a block range (not
    :data:`RANGED_METHODS`) answered with a rate-limit code (-32005 "limit exceeded", as
    public BSC/Polygon nodes answer) is slowed down, never failed as a range refusal
    (the pilot's start-block eth_blockNumber failed the start on it)."""
    if method in RANGED_METHODS:
        return rule
    return lambda code, message: rule(code, message) or code in RATE_LIMIT_RPC_CODES


def should_retry(exc: BaseException, attempt: int, max_retries: int) -> bool:
    """Retry ``exc`` after ``attempt`` (1-based) tries, with ``max_retries`` retries allowed."""
    return attempt <= max_retries and is_retryable(exc)


def _snippet(body: str, n: int = 120) -> str:
    """The first ``n`` characters of ``body``, white space collapsed, secrets masked before
    the cut (:func:`~polyvocab.bounds.cut`: a 503 page echoing the URL showed the head of
    the key its cut halved)."""
    return " ".join(cut(body, n).split())


def _rpc_error(err: Any, rate_limited: RateRule = is_rate_limit_reply) -> ServiceError:
    if not isinstance(err, dict):
        return BadResponse(f"JSON-RPC error is not an object: {_snippet(brief(err))}")
    code = err.get("code")
    message = err.get("message", "")
    # masked before it is cut: RpcError's own redaction came after, too late for a key
    # the cut halved
    message = cut(message, 500) if isinstance(message, str) else f"<{type(message).__name__}>"
    if type(code) is not int or abs(code) >= 1 << 31:
        return BadResponse(f"JSON-RPC error without an integer code: {_snippet(message)}")
    if rate_limited(code, message):
        return _limited(f"JSON-RPC {code}: {message}", message,
                        _backoff_seconds(err.get("data")))
    if is_provider_timeout(message):  # dRPC's free tier (code 30), geth's -32002: the
        # provider ran out of time, the request is not wrong (an RpcError: never retried,
        # an eth_getLogs range never halved)
        return Timeout(f"the provider timed out: JSON-RPC {code}: {message}")
    return RpcError(code, message, err.get("data"))


def _limited(text: str, message: str, asked: float | None) -> RateLimited:
    """The rate limit an answer means: the wait ``asked`` (a header's, a data field's),
    else the one its ``message`` writes ("retry in 10s"); a :class:`QuotaExhausted` when
    the message is a spent quota (:func:`~polyvocab.policies.is_quota_exhausted`)."""
    if asked is None:
        asked = text_retry_after(message)
    kind = QuotaExhausted if is_quota_exhausted(message) else RateLimited
    return kind(text, retry_after=asked)


def error_of(err: Any, method: str | None = None) -> ServiceError:
    """What a JSON-RPC error object means, by the same rules as every answer of this
    client: a :class:`RateLimited` (or :class:`QuotaExhausted`, the wait its
    ``data.backoff_seconds`` or text asks for included; :func:`is_rate_limit_reply`, for
    ``method`` as :func:`_for_method` says), a :class:`Timeout` (the provider ran out of
    time), a :class:`BadResponse` (no JSON-RPC error object), else an :class:`RpcError`.
    For the answers that come another way (the WebSocket)."""
    rule = is_rate_limit_reply if method is None else _for_method(is_rate_limit_reply, method)
    return _rpc_error(err, rule)


def rate_limit_of(err: Any, method: str | None = None) -> RateLimited | None:
    """The :class:`RateLimited` a JSON-RPC error object means (:func:`error_of`); None
    when it is no rate limit."""
    out = error_of(err, method)
    return out if isinstance(out, RateLimited) else None


def _backoff_seconds(data: Any) -> float | None:
    """The wait a rate-limit error object asks for: Infura's ``data.backoff_seconds`` (or
    ``data.rate.backoff_seconds``), a finite number >= 0; None when it names none. The
    client caps it as it caps ``Retry-After``."""
    if not isinstance(data, dict):
        return None
    rate = data.get("rate")
    for value in (data.get("backoff_seconds"),
                  rate.get("backoff_seconds") if isinstance(rate, dict) else None):
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value) and value >= 0:
            return float(value)
    return None


def _body_error(body: str) -> dict[str, Any] | None:
    """The JSON-RPC error object of a 429's body (Infura answers its rate limit with HTTP
    429, no ``Retry-After``, and ``error.data.backoff_seconds``; Ankr with "retry in 10s"
    in ``error.message``); None when it is none or no small JSON."""
    if len(body) > 64 * 1024 or not nesting_ok(body):
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    err = parsed.get("error") if isinstance(parsed, dict) else None
    return err if isinstance(err, dict) else None


def classify_http(status: int, body: str, headers: Mapping[str, str] | None = None, *,
                  rate_limited: RateRule = is_rate_limit_reply) -> Any:
    """The parsed JSON body of an HTTP answer, or the error it means (returned, not raised).

    Returns a :class:`~polyvocab.errors.ServiceError` instance for errors so the caller
    decides to raise. ``rate_limited(code, message)`` says which JSON-RPC error objects
    mean "slow down".
    """
    headers = headers or {}
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status == 429:
        body_err = _body_error(body)
        message = body_err.get("message") if body_err is not None else None
        message = cut(message, 500) if isinstance(message, str) else cut(body, 500)
        if retry_after is None and body_err is not None:  # Infura says it in the body
            retry_after = _backoff_seconds(body_err.get("data"))
        return _limited(f"HTTP 429: {_snippet(body)}", message, retry_after)
    if 300 <= status < 400:
        return redirect_refused(status, headers)
    if status == 408:  # Request Timeout, whatever the body: the provider (or a proxy in
        # front) ran out of time; dRPC's free tier answers so with a JSON-RPC error of
        # code 30, which was an RpcError, never retried
        return Timeout(f"HTTP 408 (the provider timed out): {_snippet(body)}")
    if status == 402:  # Payment Required, whatever the body: a provider's quota or
        # credits spent (dRPC's free tier answers so); read as a refused request before
        return QuotaExhausted(f"HTTP 402 (payment required): {_snippet(body)}",
                              retry_after=retry_after)
    if not nesting_ok(body):  # before parsing: deep JSON must never reach the C parser
        return BadResponse(f"HTTP {status}: JSON nested too deep", status=status,
                           kind="too_deep")
    if not values_ok(body, MAX_ANSWER_VALUES):  # before parsing: ~70 bytes of memory a
        # value; too_large, so an eth_getLogs range is asked again in halves
        return BadResponse(f"HTTP {status}: more than {MAX_ANSWER_VALUES:,} JSON values "
                           f"in {len(body):,} characters", status=status, kind="too_large")
    try:
        parsed = json.loads(body)
    except RecursionError:
        return BadResponse(f"HTTP {status}: JSON nested too deep", status=status,
                           kind="too_deep")
    except ValueError:
        parsed = None
        kind = "HTML page" if body.lstrip()[:1] == "<" else "not JSON"
        if is_key_refused_status(status) and is_quota_exhausted(body[:500]):
            # a spent quota said in plain text at 401/403: the key is good, the plan spent
            return _limited(f"HTTP {status}: {_snippet(body)}", body[:500], retry_after)
        if status >= 500:
            return ServerError(f"HTTP {status} ({kind}): {_snippet(body)}", status=status,
                               retry_after=retry_after)
        return BadResponse(f"HTTP {status} {kind}: {_snippet(body)}", status=status)
    if status >= 500:
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            err = _rpc_error(parsed["error"], rate_limited)
            if isinstance(err, RateLimited):
                if err.retry_after is None:  # the 503's Retry-After, when the body names
                    err.retry_after = retry_after  # no wait of its own
                return err
        return ServerError(f"HTTP {status}: {_snippet(body)}", status=status,
                           retry_after=retry_after)
    if is_key_refused_status(status):  # the key refused, whatever the body (Alchemy's is a
        # JSON-RPC error object, "Must be authenticated!"): the status says so, and an
        # RpcError lost it
        detail = parsed["error"] if isinstance(parsed, dict) and "error" in parsed else body
        message = detail.get("message") if isinstance(detail, dict) else detail
        if isinstance(message, str) and is_quota_exhausted(message):  # Alchemy answers
            # its "Monthly capacity limit exceeded" with a 403 too: the key is good
            return _limited(f"HTTP {status}: {_snippet(message)}", message, retry_after)
        return BadResponse(f"HTTP {status}: {_snippet(brief(message))}", status=status,
                           kind="unauthorized")
    if status != 200:
        if isinstance(parsed, dict) and "error" in parsed:
            err = _rpc_error(parsed["error"], rate_limited)
            if isinstance(err, RateLimited) and err.retry_after is None:
                err.retry_after = retry_after
            return err
        return BadResponse(f"HTTP {status}: {_snippet(body)}", status=status)
    return parsed


def redirect_refused(status: int, headers: Mapping[str, str]) -> BadResponse:
    """A redirect, refused: a provider or explorer URL is asked as configured, never
    another host (a key in the URL's path or query must not travel on, and an answer from
    elsewhere is not the provider's). The error names where it pointed, masked."""
    location = headers.get("Location") or ""
    where = mask_url(location) if location else "nowhere"
    return BadResponse(f"HTTP {status}: redirected to {where}; redirects are not followed "
                       "(configure the URL it names if it is the provider's)",
                       status=status, kind="redirect")


def _unaddressed_rate_limit(item: Any, rate_limited: RateRule) -> RateLimited | None:
    """The rate limit an error object without a request id says (``"id": null`` or no
    id, at HTTP 200: a provider's gateway refusing before it read the request, e.g.
    ``{"jsonrpc":"2.0","id":null,"error":{"code":-32005,"message":"daily request count
    exceeded, request rate limited"}}``), recognised by the same ``rate_limited`` rule as
    an answer with the id; None for anything else (a mismatched answer stays a
    :class:`BadResponse`)."""
    if not isinstance(item, dict) or item.get("id") is not None \
            or not isinstance(item.get("error"), dict):
        return None
    # given before the request was read: never a range refusal of eth_getLogs, so a
    # rate-limit code is a rate limit whatever its text (-32005 "limit exceeded")
    err = _rpc_error(item["error"], _for_method(rate_limited, ""))
    return err if isinstance(err, RateLimited) else None


def _result_of(item: Any, expected_id: int, rate_limited: RateRule = is_rate_limit_reply
               ) -> Any:
    """``result`` of one JSON-RPC response object; raise the error it carries."""
    if not isinstance(item, dict) or type(item.get("id")) is not int \
            or item["id"] != expected_id:  # true and 1.0 are not the id 1
        limited = _unaddressed_rate_limit(item, rate_limited)
        if limited is not None:  # slow down, not garbage: the backoff it asks
            raise limited
        raise BadResponse(f"not the response to id {expected_id}: {_snippet(brief(item))}")
    if item.get("error") is not None:
        raise _rpc_error(item["error"], rate_limited)
    if "result" not in item:
        raise BadResponse(f"response {expected_id} has neither result nor error")
    return item["result"]


class JsonRpcHttpClient:
    """JSON-RPC over HTTP POST with retries.

    ``max_retries`` retries after the first try for the errors ``retryable`` accepts
    (default :func:`~polyvocab.errors.is_retryable`: transport errors, timeouts, 5xx,
    429/rate-limit codes, unreadable answers; :class:`RpcError` is raised at once).
    ``rate_limited(code, message)`` says which JSON-RPC errors are rate limits (default
    :func:`is_rate_limit_reply`). ``timeout`` is per HTTP request (seconds).
    ``rate_limit_per_s`` spaces requests on the client side, in bursts of up to
    ``rate_limit_burst``. ``retry_policy`` is a zero-argument callable returning a fresh
    iterator of delays (default :func:`~polyvocab.policies.retry_delays` with jitter); a
    server's ``Retry-After`` (capped at ``max_retry_after``) longer than its delay wins
    over it, a shorter one (``Retry-After: 0``) does not: the backoff is the floor.

    A :class:`QuotaExhausted` (a month's or a day's quota spent) is retried only when the
    provider named a wait of at most ``max_retry_after`` (Infura's ``backoff_seconds``:
    after its daily count it serves a trickle), else raised at once, never retried at a
    rate limit's pace (Alchemy's monthly capacity names none: nothing comes back within
    seconds) nor held for an hour's wait (the caller asks again later); the first of an episode
    (until the refused kind of call is answered again, or ``quota_alert_every`` clock
    seconds pass without a refusal: :class:`~polyvocab.policies.QuotaEpisode`) is logged
    as an error, written as a ``quota_exhausted`` history row and given to
    ``on_quota_exhausted`` (an owner's alert: "quota exhausted", a human must act), at
    most once every ``quota_alert_every``.
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        history: HistoryLike | None = None,
        clock: NowClock | None = None,
        max_retries: int = 3,
        timeout: float = 10.0,
        rate_limit_per_s: float | None = None,
        rate_limit_burst: float = 1.0,
        retry_policy: Callable[[], Iterator[float]] = lambda: retry_delays(jitter=0.2),
        retryable: Callable[[BaseException], bool] = is_retryable,
        rate_limited: RateRule = is_rate_limit_reply,
        max_retry_after: float = 60.0,
        kind: str = "rpc_http",
        name: str = "rpc",
        on_quota_exhausted: Callable[[QuotaExhausted], None] | None = None,
        quota_alert_every: float = 3600.0,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.url = url
        self._session = session
        self._history: HistoryLike = history or _NoHistory()
        self._clock: NowClock = clock or _Monotonic()
        self.max_retries = max_retries
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limiter = (TokenBucket(rate_limit_per_s, rate_limit_burst)
                         if rate_limit_per_s else None)
        self._retry_policy = retry_policy
        self._retryable = retryable
        self._rate_limited = rate_limited
        self.max_retry_after = max_retry_after
        self.kind = kind
        self.name = name
        self._ids = itertools.count(1)
        self.counter = CallCounter()
        self._on_quota = on_quota_exhausted
        self._quota = QuotaEpisode(quota_alert_every)

    @property
    def quota_exhausted_since(self) -> float | None:
        """Clock time of the first :class:`QuotaExhausted` of the episode going on (until
        the refused kind of call is answered again: :class:`~polyvocab.policies.
        QuotaEpisode`), None when there is none."""
        return self._quota.since

    def __repr__(self) -> str:
        return f"JsonRpcHttpClient({redact(self.url)!r})"

    async def call(self, method: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        """``result`` of ``method(params)``. Raises an error of :mod:`polyvocab.errors`."""
        params = list(params) if not isinstance(params, Mapping) else dict(params)
        rid = next(self._ids)
        body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}

        rule = _for_method(self._rate_limited, method)

        async def once() -> Any:
            return await self._post(body, [method],
                                    lambda parsed: _result_of(parsed, rid, rule))

        return await self._with_retries(once, method)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Send ``calls`` as one JSON-RPC batch; results in the order of ``calls``.

        A call the node answered with an error gives an :class:`RpcError` *instance* in its
        place (check with ``isinstance``); the whole batch is retried on transport errors,
        5xx, 429 and unreadable answers (including an answer missing some ids). A node that
        refuses batches answers one error object: that :class:`RpcError` is raised.
        """
        if not calls:
            return []
        methods = [m for m, _ in calls]
        ids = [next(self._ids) for _ in calls]
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                for i, (m, p) in zip(ids, calls, strict=True)]

        rules = {i: _for_method(self._rate_limited, m) for i, m in zip(ids, methods,
                                                                       strict=True)}

        def check(parsed: Any) -> list[Any]:
            if isinstance(parsed, dict) and "error" in parsed:  # the batch itself refused
                raise _rpc_error(parsed["error"], self._rate_limited)
            if not isinstance(parsed, list):
                raise BadResponse(f"batch answer is not a list: {_snippet(brief(parsed))}",
                                  kind="batch_refused")
            # only the integer ids this client sends can match (an id that is a list or
            # an object must not raise TypeError here; true or 1.0 is not the id 1)
            by_id: dict[int, Any] = {}
            for item in parsed:
                if isinstance(item, dict) and type(item.get("id")) is int:
                    if item["id"] in by_id and item["id"] in rules:
                        # two answers to one call (a proxy joining two backends' answers:
                        # one with the logs, one empty): which is right cannot be told
                        raise BadResponse(f"batch answer has id {item['id']} twice",
                                          kind="batch_refused")
                    by_id[item["id"]] = item
            out: list[Any] = []
            for i in ids:
                if i not in by_id:
                    for item in parsed:  # a call of it refused as a rate limit, no id
                        limited = _unaddressed_rate_limit(item, self._rate_limited)
                        if limited is not None:
                            raise limited
                    raise BadResponse(f"batch answer lacks id {i}", kind="batch_refused")
                try:
                    out.append(_result_of(by_id[i], i, rules[i]))
                except RpcError as exc:
                    out.append(exc)
            return out

        async def once() -> list[Any]:
            return await self._post(body, methods, check)

        result: list[Any] = await self._with_retries(once, "batch")
        return result

    async def _with_retries(self, once: Callable[[], Any], what: str) -> Any:
        delays = self._retry_policy()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await once()
            except ServiceError as exc:
                if isinstance(exc, QuotaExhausted) and (
                        exc.retry_after is None or exc.retry_after > self.max_retry_after):
                    # a spent quota that names no wait, or one longer than a call may be
                    # held (Infura's daily count: backoff_seconds 3600): not back within
                    # the call. Raised for the caller to ask again later (a backfill
                    # keeps its gap); held, one backfill call waited max_retry_after a
                    # retry (3 minutes) for an answer that could not come, and went on
                    # waiting as long after the quota was back
                    raise
                if not (attempt <= self.max_retries and self._retryable(exc)):
                    raise
                delay = next(delays)
                # the server said when (a 429's or a 503's Retry-After): a retry on the
                # backoff alone came back in 0.25 s to a node that asked for minutes. What
                # it asks lengthens the backoff, never shortens it (as the WebSocket
                # manager's ReconnectPolicy.next_delay): a Retry-After of 0 (or a
                # backoff_seconds of 0) retried at once, a hot loop against a node that
                # is refusing for its load
                asked = exc.retry_after if isinstance(exc, RateLimited | ServerError) else None
                if asked is not None:
                    delay = max(delay, min(asked, self.max_retry_after))
                self.counter.retries += 1
                log.info("[%s] %s failed (%s: %s); retry %d/%d in %.3g s", self.name, what,
                         type(exc).__name__, exc, attempt, self.max_retries, delay)
                await asyncio.sleep(delay)

    def _quota_exhausted(self, exc: QuotaExhausted, methods: list[str]) -> None:
        """Say once an episode (:class:`~polyvocab.policies.QuotaEpisode`: at most once
        every ``quota_alert_every``) that the provider's quota is spent: an error in the
        log, a ``quota_exhausted`` history row, ``on_quota_exhausted`` (which must not
        raise; it is logged if it does)."""
        began = self._quota.since is None
        if not self._quota.refused(methods, self._clock.now()):
            if began:  # an episode, not said again so soon after the last
                log.info("[%s] the provider's quota is exhausted again (%s); said %.0f s "
                         "ago at most", self.name, exc, self._quota.alert_every)
            return
        log.error("[%s] the provider's quota is exhausted (%s): its calls fail until the "
                  "quota resets or the plan is raised; not retried at a rate limit's pace",
                  self.name, exc)
        self._history.record("quota_exhausted", source=self.kind, reason=exc.message[:200])
        if self._on_quota is not None:
            try:
                self._on_quota(exc)
            except Exception:
                log.exception("[%s] on_quota_exhausted failed", self.name)

    async def _post(self, body: Any, methods: list[str], check: Callable[[Any], Any]) -> Any:
        """POST ``body``; ``check`` turns the parsed answer into the value (or raises)."""
        if self._limiter is not None:
            wait = self._limiter.reserve(self._clock.now(), cost=len(methods))
            if wait > 0:
                await asyncio.sleep(wait)
        ok = False
        error_kind: str | None = None
        self.counter.requests += 1
        try:
            try:
                async with self._session.post(self.url, json=body, allow_redirects=False,
                                              timeout=self._timeout) as resp:
                    self.counter.statuses[str(resp.status)] += 1
                    raw = await read_body(resp, what=self.name)
                    text = raw.decode("utf-8", errors="replace")
                    status, headers = resp.status, resp.headers
            except TimeoutError:
                raise Timeout(f"no answer in {self._timeout.total} s") from None
            except aiohttp.ClientConnectorError as exc:
                raise ConnectError(f"cannot connect: {exc}") from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
                undecodable = undecodable_encoding(exc, what=self.name)
                if undecodable is not None:  # a body that is not the gzip it says
                    raise undecodable from None
                raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None
            except aiohttp.ClientError as exc:
                undecodable = undecodable_encoding(exc, what=self.name)
                if undecodable is not None:  # br / zstd never asked for: not a network
                    raise undecodable from None  # fault, the provider's configuration
                raise ConnectError(f"{type(exc).__name__}: {exc}") from None
            parsed = classify_http(status, text, headers, rate_limited=self._rate_limited)
            if isinstance(parsed, ServiceError):
                # this frame, which the traceback holds (and a retry loop with it), must not
                # hold the error nor the body: a 64 MB garbage answer stayed alive with it
                raw = text = None  # type: ignore[assignment]
                try:
                    raise parsed
                finally:
                    del parsed
            value = check(parsed)
            ok = True
            if self._quota.answered(methods, self._clock.now()):
                log.warning("[%s] the provider answers again after its quota was exhausted",
                            self.name)
            return value
        except ServiceError as exc:
            error_kind = type(exc).__name__
            if isinstance(exc, QuotaExhausted):
                self._quota_exhausted(exc, methods)
            if isinstance(exc, BadResponse):  # garbage from the node: counted by kind
                self._history.record("bad_input", kind=f"rpc_{exc.kind}", source=self.kind,
                                     reason=exc.message[:200])
            raise
        finally:
            for m in methods:
                self.counter.call(m, ok, error_kind)
                self._history.record("api_call", kind=self.kind, method=m, ok=ok)
