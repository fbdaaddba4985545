"""The monitor's error tree. Every error the monitor raises on purpose is one of these.

```
MonitorError                      = polyvocab.errors.ServiceError; str() always redacted
├── TransportError, ServerError,  the network errors, shared with the recorder and the
│   RateLimited, BadResponse,     reconciliation: their tree, and what to do on each, is
│   RpcError                      written in polyvocab/errors.py (re-exported here)
├── ConfigError                   a setting is invalid: fix the configuration, do not retry
├── StoreError                    the state database refused a write (locked, disk full):
│                                 nothing was changed; retry later, memory is untouched
├── NotConnected                  a WebSocket request while the socket is not up: wait for
│                                 CONNECTED (``wait_state``) or use HTTP
├── ConnectionFailed              the WebSocket manager gave up (FAILED, max attempts):
│                                 fall back to polling, alert a human
└── IllegalTransition             a bug: the connection state machine was asked for a
                                  transition its table does not have
```

:func:`is_retryable` (from :mod:`polyvocab.errors`) is the retry decision the clients
share.
"""

from __future__ import annotations

from polyvocab.errors import (
    RATE_LIMIT_RPC_CODES,
    BadResponse,
    ConnectError,
    ConnectionLost,
    QuotaExhausted,
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
    "QuotaExhausted",
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
