"""Provider profiles: the limits and error texts real JSON-RPC providers apply.

One table, :data:`PROFILES`, chosen by ``[node] profile = "alchemy"`` in the simulator
config (``NodeSettings.profile``). Every number and text names its source; a value whose
source is not confirmed is listed in the profile's ``unconfirmed`` (and the config can
override any number: ``[node] logs_max_range = ...``).

``eth_getLogs`` is judged in this order (:meth:`ProviderProfile.check_range`, then the
result cap in :mod:`simulator.jsonrpc`):

* ``range_rule = "hard"``: a range wider than ``logs_max_range`` blocks is refused at once,
  whatever it would return (QuickNode, Infura, public RPCs);
* ``range_rule = "soft"`` (Alchemy): up to ``logs_max_range`` blocks any number of logs;
  a wider range is served when it returns at most ``logs_max_results`` logs ("...or you can
  request any block range with a cap of 10K logs in the response");
* ``logs_max_range = None``: no range limit (geth/bor); ``logs_max_results = None``: no cap.

A range whose ``toBlock`` is above the node's head (a load-balanced HTTP node behind the
one that answered ``eth_blockNumber``): ``beyond_head = "error"`` refuses it, -32602 "block
range extends beyond current head block" (geth today, and the execution-apis spec since
2026); ``"clamp"`` answers with the logs up to the head (older geth, go-ethereum#24078: a
client cannot tell a block it does not have from one without logs).

The monitor keeps its own copy of the few numbers it needs, under the same profile names
(``monitor.providers``): monitor and simulator never import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["PROFILES", "ProviderProfile", "profile"]


def _hex(n: int) -> str:
    return hex(n)


def _short(n: int) -> str:
    return f"{n // 1000}K" if n >= 1000 and n % 1000 == 0 else str(n)


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    """One provider's limits. ``None`` = no limit. Texts are callables of the numbers so
    an overridden limit shows in the message the way the provider would show it."""

    name: str
    logs_max_range: int | None
    logs_max_results: int | None
    range_rule: Literal["hard", "soft"]
    #: (code, message) for a range refused outright: (max_range, asked_range, start, stop)
    range_error: Callable[[int, int, int, int], tuple[int, str]]
    #: (code, message) for a result past the cap: (cap, max_range, start, fitting_stop)
    results_error: Callable[[int, int | None, int, int], tuple[int, str]]
    max_batch: int | None  # requests in one HTTP batch
    max_ws_batch: int | None  # requests in one WebSocket batch
    max_subscriptions: int | None  # per connection
    sources: dict[str, str] = field(default_factory=dict)
    unconfirmed: frozenset[str] = frozenset()
    #: eth_getLogs with toBlock above the head: "error" (-32602) or "clamp" (logs to head)
    beyond_head: Literal["clamp", "error"] = "clamp"
    #: eth_unsubscribe of an id the connection does not have: "false" (the boolean the
    #: providers document) or "error" (geth: -32000 "subscription not found")
    unsubscribe_unknown: Literal["false", "error"] = "false"


def _geth_results(cap: int, _rng: int | None, start: int, stop: int) -> tuple[int, str]:
    return -32005, f"query returned more than {cap} results"


def _alchemy_results(cap: int, rng: int | None, start: int, stop: int) -> tuple[int, str]:
    free = rng or 0
    return -32602, (
        f"Log response size exceeded. You can make eth_getLogs requests with up to a "
        f"{_short(free)} block range and no limit on the response size, or you can request "
        f"any block range with a cap of {_short(cap)} logs in the response. Based on your "
        f"parameters and the response size limit, this block range should work: "
        f"[{_hex(start)}, {_hex(stop)}]")


def _infura_results(cap: int, _rng: int | None, start: int, stop: int) -> tuple[int, str]:
    return -32005, (f"query returned more than {cap} results. Try with this block range "
                    f"[{_hex(start).upper().replace('0X', '0x')}, "
                    f"{_hex(stop).upper().replace('0X', '0x')}].")


def _no_range(mx: int, asked: int, start: int, stop: int) -> tuple[int, str]:
    raise AssertionError("no range limit")  # pragma: no cover - geth has none


PROFILES: dict[str, ProviderProfile] = {p.name: p for p in (
    ProviderProfile(
        name="geth", logs_max_range=None, logs_max_results=10000, range_rule="hard",
        range_error=_no_range, results_error=_geth_results,
        max_batch=1000, max_ws_batch=1000, max_subscriptions=None,
        sources={
            "logs_max_range": "geth/bor have no eth_getLogs range limit by default",
            "logs_max_results": "-32005 'query returned more than 10000 results' is the text "
                                "Infura/Erigon-style nodes return (docs.metamask.io eth_getLogs "
                                "Constraints); a default cap on bor itself is not documented",
            "max_batch": "geth node config BatchRequestLimit = 1000, BatchResponseMaxSize "
                         "= 25 MB",
            "beyond_head": "ethereum/execution-apis#875 (2026-08): geth, Nethermind, Besu, "
                           "Erigon and reth answer -32602 for toBlock past the head, geth's "
                           "text 'block range extends beyond current head block' "
                           "(paradigmxyz/reth#20202 copies it); older geth clamped "
                           "(go-ethereum#24078)",
            "unsubscribe_unknown": "go-ethereum rpc/handler.go unsubscribe: "
                                   "ErrSubscriptionNotFound 'subscription not found' (no "
                                   "error code: -32000)",
        },
        # which geth version bor's eth_getLogs follows is not confirmed
        unconfirmed=frozenset({"logs_max_results", "max_subscriptions", "beyond_head"}),
        beyond_head="error", unsubscribe_unknown="error"),
    ProviderProfile(
        name="alchemy", logs_max_range=2000, logs_max_results=10000, range_rule="soft",
        range_error=_no_range, results_error=_alchemy_results,
        max_batch=1000, max_ws_batch=20, max_subscriptions=None,
        sources={
            "logs_max_range": "error text quoted in ethers-io/ethers.js#4703 (2024): 'up to a "
                              "2K block range and no limit on the response size, or ... any "
                              "block range with a cap of 10K logs', code -32602",
            "logs_max_results": "same text",
            "max_batch": "alchemy.com/docs/reference/batch-requests: 1000 requests per HTTP "
                         "batch (past it 'less reliable'), 20 over WebSocket",
        },
        # the WS batch refusal text and any per-connection subscription cap: not found
        unconfirmed=frozenset({"max_ws_batch_error", "max_subscriptions"})),
    ProviderProfile(
        name="infura", logs_max_range=10000, logs_max_results=10000, range_rule="hard",
        range_error=lambda mx, asked, a, b: (-32602, f"range {asked} exceeds limit of {mx}"),
        results_error=_infura_results,
        max_batch=None, max_ws_batch=None, max_subscriptions=None,
        sources={
            "logs_max_results": "docs.metamask.io (Infura) eth_getLogs Constraints: at most "
                                "10,000 results, -32005; 'Try with this block range [..]' and "
                                "data {from, limit, to}: ethers-io/ethers.js#4703",
            "logs_max_range": "INFURA/infura#237 (2026-08): live API refuses > 10,000 blocks "
                              "with -32602 'range N exceeds limit of 10000' (seen on Ethereum "
                              "mainnet, undocumented)",
        },
        unconfirmed=frozenset({"logs_max_range", "max_batch", "max_ws_batch",
                               "max_subscriptions"})),
    ProviderProfile(
        name="quicknode", logs_max_range=10000, logs_max_results=None, range_rule="hard",
        range_error=lambda mx, asked, a, b: (
            -32614, f"eth_getLogs is limited to a {mx:,} range"),
        results_error=_geth_results,
        max_batch=None, max_ws_batch=None, max_subscriptions=None,
        sources={
            "logs_max_range": "quicknode.com/docs/polygon/eth_getLogs (2026-05): 10,000 blocks "
                              "on paid plans, 5 on the free trial",
            "range_error": "OffchainLabs/arbitrum-sdk#609 (2025-08): -32614 'eth_getLogs is "
                           "limited to a 10,000 range' (HTTP 413)",
        },
        unconfirmed=frozenset({"logs_max_results", "max_batch", "max_ws_batch",
                               "max_subscriptions"})),
    ProviderProfile(
        name="public", logs_max_range=3500, logs_max_results=10000, range_rule="hard",
        range_error=lambda mx, asked, a, b: (
            -32000, f"eth_getLogs block range too large, range: {asked}, max: {mx}"),
        results_error=_geth_results,
        max_batch=100, max_ws_batch=100, max_subscriptions=None,
        sources={
            "logs_max_range": "a Polygon public RPC, AlphaWallet/alpha-wallet-ios#3734 "
                              "(2022): 'eth_getLogs block range too large, range: 99991, "
                              "max: 3500'",
        },
        # the error code, the result cap and the batch size of public endpoints vary
        unconfirmed=frozenset({"range_error_code", "logs_max_results", "max_batch",
                               "max_ws_batch", "max_subscriptions"})),
)}


def profile(name: str) -> ProviderProfile:
    """The profile called ``name``; ``KeyError`` naming the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown provider profile {name!r} (known: "
                       f"{', '.join(sorted(PROFILES))})") from None
