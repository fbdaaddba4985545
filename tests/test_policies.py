"""The shared client policies (polyvocab.policies): one token bucket, one backoff with
jitter, one Retry-After parser, one list of "range too large" texts."""

from __future__ import annotations

import itertools

from polyvocab.policies import (
    TokenBucket,
    is_beyond_head,
    is_range_too_large,
    is_rate_limited,
    parse_retry_after,
    retry_delays,
)


def test_backoff_doubles_caps_and_jitter_only_shortens_reproducibly() -> None:
    assert list(itertools.islice(retry_delays(0.25, 2.0), 6)) == [0.25, 0.5, 1, 2, 2, 2]
    a = list(itertools.islice(retry_delays(1, 8, jitter=0.2, seed="x"), 8))
    b = list(itertools.islice(retry_delays(1, 8, jitter=0.2, seed="x"), 8))
    plain = list(itertools.islice(retry_delays(1, 8), 8))
    assert a == b and a != plain
    assert all(0.8 * p <= j <= p for j, p in zip(a, plain, strict=True))


def test_token_bucket_paces_bursts_and_penalties() -> None:
    tb = TokenBucket(rate=2.0)
    assert [tb.reserve(0.0) for _ in range(3)] == [0.0, 0.5, 1.0]
    burst = TokenBucket(rate=2.0, burst=3)
    assert [burst.reserve(0.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    tb.penalise(10.0, 5.0)
    assert tb.reserve(10.0) == 5.0
    # a batch of n calls costs n tokens: 4 calls at 2/s from a full bucket of 1 wait 1.5 s
    batch = TokenBucket(rate=2.0)
    assert batch.reserve(0.0, cost=4) == 1.5 and batch.reserve(0.0) == 2.0


def test_provider_texts_are_classified_once_for_everyone() -> None:
    for text in ("query returned more than 10000 results", "Log response size exceeded.",
                 "eth_getLogs block range too large, range: 5000, max: 3500",
                 "eth_getLogs is limited to a 10,000 range"):
        assert is_range_too_large(text), text
    for text in ("daily request count exceeded", "Too Many Requests",
                 "project ID request rate exceeded",
                 "15/second request limit reached - reduce calls per second or upgrade your "
                 "account at quicknode.com"):
        assert is_rate_limited(text) and not is_range_too_large(text), text
    for text in ("block range extends beyond current head block",  # geth, reth
                 "block 50162452 is beyond the latest block 50162448 of this node, retry "
                 "later", "requested range exceeds current head"):
        assert is_beyond_head(text) and not is_range_too_large(text), text
    assert not is_beyond_head("query returned more than 10000 results")
    assert parse_retry_after("3") == 3.0 and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now_wall=1445412480.0) == 10.0


def test_token_bucket_server_side_refuses_without_spending() -> None:
    tb = TokenBucket(rate=2.0, burst=2)
    # 0 s: two pass, the third is refused and told to come back in 0.5 s (nothing spent)
    assert [tb.try_take(0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert tb.try_take(0.25) == 0.25
    assert tb.try_take(0.5) == 0.0 and tb.try_take(0.5) == 0.5
    tb.penalise(1.0, 3.0)
    assert tb.try_take(2.0) == 2.0


def test_one_slow_down_rule_for_json_rpc_errors() -> None:
    """-32005 is Infura's code for both "limit exceeded" (retry later) and "query returned
    more than 10000 results" (split the range): one rule tells them apart, for the
    monitor, the recorder and reconcile alike, and a range refusal is never retried."""
    from polyvocab.errors import RpcError, is_retryable
    from polyvocab.jsonrpc_http import is_rate_limit_reply

    assert is_rate_limit_reply(429, "anything")
    assert is_rate_limit_reply(-32005, "daily request count exceeded, request rate limited")
    assert is_rate_limit_reply(-32005, "project ID request rate exceeded")
    assert is_rate_limit_reply(-32000, "Too Many Requests")
    assert not is_rate_limit_reply(-32005, "query returned more than 10000 results")
    assert not is_rate_limit_reply(-32602, "invalid params")
    assert not is_retryable(RpcError(-32005, "query returned more than 10000 results"))
    assert is_retryable(RpcError(-32005, "daily request count exceeded"))


def test_the_websocket_reconnect_backoff_is_the_one_backoff() -> None:
    """monitor.connection.reconnect_delays is retry_delays with the manager's defaults
    (1 s doubling to 60 s, 20% jitter): one generator for HTTP retries and reconnects."""
    import random

    from monitor.connection import reconnect_delays

    a = list(itertools.islice(reconnect_delays(rng=random.Random(5)), 9))
    b = list(itertools.islice(retry_delays(1.0, 60.0, jitter=0.2, rng=random.Random(5)), 9))
    assert a == b and max(a) <= 60.0 and a[0] <= 1.0
