"""The errors of a call to an external service (a JSON-RPC node, a provider, an explorer).

```
ServiceError                      base; str() is always redacted (no keys, no tokens)
├── TransportError                the bytes did not get through: retry with backoff
│   ├── ConnectError              refused, DNS failure, handshake rejected (e.g. HTTP 5xx)
│   ├── Timeout                   no answer in time (also a builtin ``TimeoutError``);
│   │                             the provider's own: HTTP 408, dRPC "Request timeout"
│   └── ConnectionLost            an open connection closed or broke under us
├── ServerError(status, retry_after) HTTP 5xx: retry with backoff (a Retry-After wins)
├── RateLimited(retry_after)      HTTP 429 / provider rate-limit text: wait, then retry
│   └── QuotaExhausted            a quota spent for hours or days (Alchemy "Monthly
│                                 capacity limit exceeded", Infura "daily request count
│                                 exceeded"): not retried at a rate-limit's pace; alert
├── BadResponse(status, kind)     not JSON, HTML error page, JSON without id/result,
│                                 past a bound (``kind``: too_large, too_deep, not_json,
│                                 bad_shape, ...): retry a few times, then report the
│                                 provider (a 4xx page other than 408 is not retried)
└── RpcError(code, message)       the node answered with a JSON-RPC error: do not retry
                                  (the request itself is wrong), except rate-limit codes
```

The monitor's own tree (:mod:`monitor.errors`) stands on this one: ``MonitorError`` is
:class:`ServiceError`. :func:`is_retryable` is the retry decision the clients share;
:func:`key_refused_status` says which errors are the provider refusing its key.
"""

from __future__ import annotations

from polyvocab.policies import is_key_refused_status, is_range_too_large
from polyvocab.redact import redact

__all__ = [
    "RATE_LIMIT_RPC_CODES",
    "BadResponse",
    "ConnectError",
    "ConnectionLost",
    "QuotaExhausted",
    "RateLimited",
    "RpcError",
    "ServerError",
    "ServiceError",
    "Timeout",
    "TransportError",
    "is_retryable",
    "key_refused_status",
]


class ServiceError(Exception):
    """Base of every error a service client raises. The message is redacted when made."""

    def __init__(self, message: str = "", *, redacted: bool = False) -> None:
        """``redacted``: the caller redacted each part of ``message`` that may hold a
        secret itself, and the rest is names and fixed words. A pass over the whole text
        would mask a name with the word after it (``explorer_api_key: Input should be``
        reads as ``api_key: <value>``)."""
        self.message = message if redacted else redact(message)
        super().__init__(self.message)


class TransportError(ServiceError):
    """The request or the connection did not get through. Retry with backoff."""


class ConnectError(TransportError):
    """Could not open a connection: refused, unresolvable, handshake rejected."""


class Timeout(TransportError, TimeoutError):
    """No answer within the timeout."""


class ConnectionLost(TransportError):
    """An open connection closed or broke. ``code`` is the WebSocket close code if any."""

    def __init__(self, message: str = "", *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ServerError(ServiceError):
    """HTTP 5xx. Retry with backoff; not before ``retry_after`` seconds when the server
    said (a 503's ``Retry-After``), None otherwise."""

    def __init__(self, message: str = "", *, status: int = 500,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RateLimited(ServiceError):
    """The provider asked us to slow down. Wait ``retry_after`` seconds (None: use backoff)."""

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExhausted(RateLimited):
    """The provider's quota (a month's or a day's) is spent. Tell a human (a plan to
    raise, a key to change); retry after ``retry_after`` when the provider named a wait
    (it still serves a trickle), else not at a rate limit's pace: minutes, not seconds."""


class BadResponse(ServiceError):
    """An answer we cannot read: not JSON, an HTML page, JSON of the wrong shape."""

    def __init__(self, message: str = "", *, status: int | None = None,
                 kind: str = "bad_response") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class RpcError(ServiceError):
    """A JSON-RPC error object from the node. The request is wrong: do not retry it."""

    def __init__(self, code: int, message: str, data: object = None) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.rpc_message = redact(message)
        self.data = data


# JSON-RPC error codes providers use for "too many requests" (Infura/Alchemy/QuickNode).
RATE_LIMIT_RPC_CODES = frozenset({-32005, 429})


def is_retryable(exc: BaseException) -> bool:
    """Whether a request that failed with ``exc`` may be sent again."""
    if isinstance(exc, RpcError):  # a "slow down" code, unless the text refuses the range
        return exc.code in RATE_LIMIT_RPC_CODES and not is_range_too_large(exc.rpc_message)
    if isinstance(exc, BadResponse) and exc.status is not None and 400 <= exc.status < 500:
        return exc.status == 408  # 401/403/404...: the request or the key is wrong
    return isinstance(exc, TransportError | ServerError | RateLimited | BadResponse)


def key_refused_status(exc: BaseException) -> int | None:
    """The HTTP status (401, 403) when ``exc`` is the provider refusing its key - a
    :class:`BadResponse` of such a status, as :func:`polyvocab.jsonrpc_http.classify_http`
    makes them -, else None. A setting to fix: not retried, not waited out."""
    if isinstance(exc, BadResponse) and is_key_refused_status(exc.status):
        return exc.status
    return None
