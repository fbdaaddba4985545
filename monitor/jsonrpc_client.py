"""A small JSON-RPC over HTTP client (aiohttp): retries, rate limits, error classes.

One seam: the caller hands in its :class:`aiohttp.ClientSession`, so tests point the
client at a loopback server and production at Alchemy/QuickNode/Infura unchanged.

* :func:`classify_http` (pure) turns an HTTP answer into a parsed body or one of the
  errors of :mod:`monitor.errors`: 429 -> :class:`RateLimited` (with ``Retry-After``),
  5xx -> :class:`ServerError`, HTML / not JSON / wrong shape -> :class:`BadResponse`, a
  JSON-RPC error object -> :class:`RpcError` (rate-limit codes -> :class:`RateLimited`).
* :func:`retry_delays` (plain generator) is the retry backoff; :func:`should_retry` the
  decision; ``Retry-After`` wins over the backoff when the server gives one.
* :class:`TokenBucket` (pure, time as argument) is the optional client-side rate limit.
* :class:`JsonRpcHttpClient` sends :meth:`~JsonRpcHttpClient.call` and
  :meth:`~JsonRpcHttpClient.batch`; every HTTP request sent is an ``api_call`` history row
  (kind ``rpc_http``, one per method in it) and is counted by method in ``counter``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import aiohttp

from monitor.bounds import nesting_ok
from monitor.clock import Clock, SystemClock
from monitor.errors import (
    RATE_LIMIT_RPC_CODES,
    BadResponse,
    ConnectError,
    ConnectionLost,
    MonitorError,
    RateLimited,
    RpcError,
    ServerError,
    Timeout,
    is_retryable,
)
from monitor.history import History, NullHistory
from monitor.http_read import read_body
from monitor.metrics import CallCounter
from monitor.redact import redact
from polyvocab.policies import TokenBucket, parse_retry_after, retry_delays

__all__ = [
    "JsonRpcHttpClient",
    "TokenBucket",
    "classify_http",
    "parse_retry_after",
    "retry_delays",
    "should_retry",
]

log = logging.getLogger("monitor.rpc")


def should_retry(exc: BaseException, attempt: int, max_retries: int) -> bool:
    """Retry ``exc`` after ``attempt`` (1-based) tries, with ``max_retries`` retries allowed."""
    return attempt <= max_retries and is_retryable(exc)


def _snippet(body: str, n: int = 120) -> str:
    return " ".join(body[:n].split())


def _rpc_error(err: Any) -> MonitorError:
    if not isinstance(err, dict):
        return BadResponse(f"JSON-RPC error is not an object: {_snippet(str(err))}")
    code = err.get("code")
    message = err.get("message", "")
    message = message[:500] if isinstance(message, str) else f"<{type(message).__name__}>"
    if type(code) is not int or abs(code) >= 1 << 31:
        return BadResponse(f"JSON-RPC error without an integer code: {_snippet(message)}")
    if code in RATE_LIMIT_RPC_CODES:
        return RateLimited(f"JSON-RPC {code}: {message}")
    return RpcError(code, message, err.get("data"))


def classify_http(status: int, body: str, headers: Mapping[str, str] | None = None) -> Any:
    """The parsed JSON body of an HTTP answer, or the error it means (returned, not raised).

    Returns a :class:`MonitorError` instance for errors so the caller decides to raise.
    """
    headers = headers or {}
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if status == 429:
        return RateLimited(f"HTTP 429: {_snippet(body)}", retry_after=retry_after)
    if not nesting_ok(body):  # before parsing: deep JSON must never reach the C parser
        return BadResponse(f"HTTP {status}: JSON nested too deep", status=status,
                           kind="too_deep")
    try:
        parsed = json.loads(body)
    except RecursionError:
        return BadResponse(f"HTTP {status}: JSON nested too deep", status=status,
                           kind="too_deep")
    except ValueError:
        parsed = None
        kind = "HTML page" if body.lstrip()[:1] == "<" else "not JSON"
        if status >= 500:
            return ServerError(f"HTTP {status} ({kind}): {_snippet(body)}", status=status)
        return BadResponse(f"HTTP {status} {kind}: {_snippet(body)}", status=status)
    if status >= 500:
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            err = _rpc_error(parsed["error"])
            if isinstance(err, RateLimited):
                return err
        return ServerError(f"HTTP {status}: {_snippet(body)}", status=status)
    if status != 200:
        if isinstance(parsed, dict) and "error" in parsed:
            return _rpc_error(parsed["error"])
        return BadResponse(f"HTTP {status}: {_snippet(body)}", status=status)
    return parsed


def _result_of(item: Any, expected_id: int) -> Any:
    """``result`` of one JSON-RPC response object; raise the error it carries."""
    if not isinstance(item, dict) or item.get("id") != expected_id:
        raise BadResponse(f"not the response to id {expected_id}: {_snippet(str(item))}")
    if item.get("error") is not None:
        raise _rpc_error(item["error"])
    if "result" not in item:
        raise BadResponse(f"response {expected_id} has neither result nor error")
    return item["result"]


class JsonRpcHttpClient:
    """JSON-RPC over HTTP POST with retries.

    ``max_retries`` retries after the first try for retryable errors (transport errors,
    timeouts, 5xx, 429/rate-limit codes, unreadable answers); :class:`RpcError` is
    raised at once. ``timeout`` is per HTTP request (clock seconds). ``rate_limit_per_s``
    spaces requests on the client side. ``retry_policy`` is a zero-argument callable
    returning a fresh iterator of delays (default :func:`retry_delays`); a server's
    ``Retry-After`` (capped at ``max_retry_after``) wins over it.
    """

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        *,
        history: History | None = None,
        clock: Clock | None = None,
        max_retries: int = 3,
        timeout: float = 10.0,
        rate_limit_per_s: float | None = None,
        retry_policy: Callable[[], Iterator[float]] = lambda: retry_delays(jitter=0.2),
        max_retry_after: float = 60.0,
        kind: str = "rpc_http",
        name: str = "rpc",
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        self.url = url
        self._session = session
        self._history = history or NullHistory()
        self._clock = clock or SystemClock()
        self.max_retries = max_retries
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limiter = TokenBucket(rate_limit_per_s) if rate_limit_per_s else None
        self._retry_policy = retry_policy
        self.max_retry_after = max_retry_after
        self.kind = kind
        self.name = name
        self._ids = itertools.count(1)
        self.counter = CallCounter()

    def __repr__(self) -> str:
        return f"JsonRpcHttpClient({redact(self.url)!r})"

    async def call(self, method: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Any:
        """``result`` of ``method(params)``. Raises an error of :mod:`monitor.errors`."""
        params = list(params) if not isinstance(params, Mapping) else dict(params)

        async def once() -> Any:
            rid = next(self._ids)
            body = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}
            return await self._post(body, [method], lambda parsed: _result_of(parsed, rid))

        return await self._with_retries(once, method)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Send ``calls`` as one JSON-RPC batch; results in the order of ``calls``.

        A call the node answered with an error gives an :class:`RpcError` *instance* in its
        place (check with ``isinstance``); the whole batch is retried on transport errors,
        5xx, 429 and unreadable answers (including an answer missing some ids).
        """
        if not calls:
            return []
        methods = [m for m, _ in calls]

        async def once() -> list[Any]:
            ids = [next(self._ids) for _ in calls]
            body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                    for i, (m, p) in zip(ids, calls, strict=True)]
            return await self._post(body, methods, lambda parsed: check(parsed, ids))

        def check(parsed: Any, ids: list[int]) -> list[Any]:
            if isinstance(parsed, dict) and "error" in parsed:  # the batch itself refused
                raise _rpc_error(parsed["error"])
            if not isinstance(parsed, list):
                raise BadResponse(f"batch answer is not a list: {_snippet(str(parsed))}")
            by_id = {item.get("id"): item for item in parsed if isinstance(item, dict)}
            out: list[Any] = []
            for i in ids:
                if i not in by_id:
                    raise BadResponse(f"batch answer lacks id {i}")
                try:
                    out.append(_result_of(by_id[i], i))
                except RpcError as exc:
                    out.append(exc)
            return out

        result: list[Any] = await self._with_retries(once, "batch")
        return result

    async def _with_retries(self, once: Callable[[], Any], what: str) -> Any:
        delays = self._retry_policy()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await once()
            except MonitorError as exc:
                if not should_retry(exc, attempt, self.max_retries):
                    raise
                delay = next(delays)
                if isinstance(exc, RateLimited) and exc.retry_after is not None:
                    delay = min(exc.retry_after, self.max_retry_after)
                self.counter.retries += 1
                log.info("[%s] %s failed (%s: %s); retry %d/%d in %.3g s", self.name, what,
                         type(exc).__name__, exc, attempt, self.max_retries, delay)
                await asyncio.sleep(delay)

    async def _post(self, body: Any, methods: list[str], check: Callable[[Any], Any]) -> Any:
        """POST ``body``; ``check`` turns the parsed answer into the value (or raises)."""
        if self._limiter is not None:
            wait = self._limiter.reserve(self._clock.now())
            if wait > 0:
                await asyncio.sleep(wait)
        ok = False
        error_kind: str | None = None
        try:
            try:
                async with self._session.post(self.url, json=body,
                                              timeout=self._timeout) as resp:
                    raw = await read_body(resp, what=self.name)
                    text = raw.decode("utf-8", errors="replace")
                    status, headers = resp.status, resp.headers
            except TimeoutError:
                raise Timeout(f"no answer in {self._timeout.total} s") from None
            except aiohttp.ClientConnectorError as exc:
                raise ConnectError(f"cannot connect: {exc}") from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
                raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None
            except aiohttp.ClientError as exc:
                raise ConnectError(f"{type(exc).__name__}: {exc}") from None
            parsed = classify_http(status, text, headers)
            if isinstance(parsed, MonitorError):
                raise parsed
            value = check(parsed)
            ok = True
            return value
        except MonitorError as exc:
            error_kind = type(exc).__name__
            if isinstance(exc, BadResponse):  # garbage from the node: counted by kind
                self._history.record("bad_input", kind=f"rpc_{exc.kind}", source=self.kind,
                                     reason=exc.message[:200])
            raise
        finally:
            for m in methods:
                self.counter.call(m, ok, error_kind)
                self._history.record("api_call", kind=self.kind, method=m, ok=ok)
