"""The monitor's error tree. Every error the monitor raises on purpose is one of these.

```
MonitorError                      base; str() is always redacted (no keys, no tokens)
├── ConfigError                   a setting is invalid: fix the configuration, do not retry
├── StoreError                    the state database refused a write (locked, disk full):
│                                 nothing was changed; retry later, memory is untouched
├── TransportError                the bytes did not get through: retry with backoff
│   ├── ConnectError              refused, DNS failure, handshake rejected (e.g. HTTP 5xx)
│   ├── Timeout                   no answer in time (also a builtin ``TimeoutError``)
│   └── ConnectionLost            an open connection closed or broke under us
├── ServerError(status)           HTTP 5xx with a body we understood: retry with backoff
├── RateLimited(retry_after)      HTTP 429 / provider rate-limit text: wait, then retry
├── BadResponse(status, kind)     not JSON, HTML error page, JSON without id/result,
│                                 past a bound (``kind``: too_large, too_deep, not_json,
│                                 bad_shape, ...): retry a few times, then report the
│                                 provider (a 4xx page other than 408 is not retried)
├── RpcError(code, message)       the node answered with a JSON-RPC error: do not retry
│                                 (the request itself is wrong), except rate-limit codes
├── NotConnected                  a WebSocket request while the socket is not up: wait for
│                                 CONNECTED (``wait_state``) or use HTTP
├── ConnectionFailed              the WebSocket manager gave up (FAILED, max attempts):
│                                 fall back to polling, alert a human
└── IllegalTransition             a bug: the connection state machine was asked for a
                                  transition its table does not have
```

The network half of the tree (``MonitorError`` itself, ``TransportError`` and below,
``ServerError``, ``RateLimited``, ``BadResponse``, ``RpcError``, :func:`is_retryable`)
lives in :mod:`polyvocab.errors`, shared with the simulator's recorder and the
experiments' reconciliation: ``MonitorError`` is :class:`polyvocab.errors.ServiceError`.
The monitor-only leaves are defined here. :func:`is_retryable` is the retry decision the
clients share.
"""

from __future__ import annotations

from polyvocab.errors import (
    RATE_LIMIT_RPC_CODES,
    BadResponse,
    ConnectError,
    ConnectionLost,
    RateLimited,
    RpcError,
    ServerError,
    Timeout,
    TransportError,
    is_retryable,
)
from polyvocab.errors import ServiceError as MonitorError

__all__ = [
    "RATE_LIMIT_RPC_CODES",
    "BadResponse",
    "ConfigError",
    "ConnectError",
    "ConnectionFailed",
    "ConnectionLost",
    "IllegalTransition",
    "MonitorError",
    "NotConnected",
    "RateLimited",
    "RpcError",
    "ServerError",
    "StoreError",
    "Timeout",
    "TransportError",
    "is_retryable",
]


class ConfigError(MonitorError):
    """An invalid setting. The message names the setting. Fix the configuration."""


class StoreError(MonitorError):
    """SQLite refused a read or a write. The transaction was rolled back; nothing in
    memory changed. Retry later (locked, disk full) or fix ``state_db`` (not a database)."""


class NotConnected(MonitorError):
    """A WebSocket request was made while the connection is not CONNECTED."""


class ConnectionFailed(MonitorError):
    """The WebSocket manager reached FAILED (max attempts). Fall back; alert a human."""


class IllegalTransition(MonitorError):
    """The state machine has no transition for (event, state). Always a bug."""
