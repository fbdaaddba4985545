"""The JSON-RPC over HTTP client, under the monitor's name: :mod:`polyvocab.jsonrpc_http`
(one client for the monitor, the simulator's recorder and the reconciliation) and the
policies it stands on (:mod:`polyvocab.policies`)."""

from __future__ import annotations

from polyvocab.jsonrpc_http import JsonRpcHttpClient, classify_http, should_retry
from polyvocab.policies import TokenBucket, parse_retry_after, retry_delays

__all__ = [
    "JsonRpcHttpClient",
    "TokenBucket",
    "classify_http",
    "parse_retry_after",
    "retry_delays",
    "should_retry",
]
