"""The numbers the monitor takes from a provider profile (``provider_profile`` setting).

The names are the simulator's profile names (``[node] profile``), so one word picks both the
node the experiments run against and the monitor's defaults for it. The monitor never
imports the simulator: this is its own copy of just what it needs (the simulator's table,
with every limit, error text and source, is ``simulator/providers.py``; a test holds the
names equal).

``backfill_chunk_blocks`` stays inside the provider's ``eth_getLogs`` range limit (and, for
Alchemy, inside the range with no result cap) so a backfill never needs a retry to learn
the limit; ``max_wallets_per_filter`` keeps a filter's topic list modest.

Subscriptions: :func:`plan_subscriptions` chooses between server-side filters (one
connection per shard of ``max_wallets_per_filter`` wallets, never more than the provider's
``max_topics_per_filter`` maker topics, two subscriptions each: ``logs`` + ``newHeads``)
and the *firehose* (one connection, ``logs`` on every ``OrderFilled`` of the exchanges, the
makers filtered locally). ``firehose_above_wallets`` is this project's choice, not a
provider's limit: past about four filters' worth of wallets the filtered plan costs more
connections and subscribe requests than decoding the whole market costs CPU (the busy
profile, ~230 ``OrderFilled`` per block, is measured in docs/BENCHMARKS.md).
Where a limit is not documented it is ``None`` and marked UNCONFIRMED.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["PROVIDER_DEFAULTS", "ProviderDefaults", "SubscriptionPlan", "plan_subscriptions"]


@dataclass(frozen=True, slots=True)
class ProviderDefaults:
    backfill_chunk_blocks: int
    max_wallets_per_filter: int
    #: OR-ed values one topic position of a filter may hold (None = no documented limit)
    max_topics_per_filter: int | None = None
    #: subscriptions one WebSocket connection may hold (None = no documented limit)
    max_subscriptions_per_connection: int | None = None
    #: ``subscription_mode = auto`` takes the firehose past this many WebSocket wallets
    firehose_above_wallets: int = 2000


PROVIDER_DEFAULTS: dict[str, ProviderDefaults] = {
    # geth/bor: no range limit; a busy range can pass a 10,000-result cap
    # maxSubTopics = 1000 per topic position, maxTopics = 4 ("exceed max topics"):
    # go-ethereum eth/filters/api.go; no per-connection subscription cap in geth's rpc
    # package (bor inherits both; UNCONFIRMED for bor's own config)
    "geth": ProviderDefaults(backfill_chunk_blocks=1000, max_wallets_per_filter=500,
                             max_topics_per_filter=1000),
    # Alchemy: up to 2,000 blocks with no limit on the response size
    # topics per filter and subscriptions per connection: not documented (UNCONFIRMED)
    "alchemy": ProviderDefaults(backfill_chunk_blocks=2000, max_wallets_per_filter=500),
    # Infura: 10,000 results (documented), 10,000 blocks (observed); 5,000 parameters
    "infura": ProviderDefaults(backfill_chunk_blocks=2000, max_wallets_per_filter=500),
    # QuickNode: 10,000 blocks on paid plans (5 on the free trial: set the chunk by hand)
    "quicknode": ProviderDefaults(backfill_chunk_blocks=2000, max_wallets_per_filter=500),
    # a public RPC: 3,500 blocks seen on Polygon; filter size limits UNCONFIRMED, so small
    # filters and an early firehose (few connections per client IP)
    "public": ProviderDefaults(backfill_chunk_blocks=1000, max_wallets_per_filter=100,
                               firehose_above_wallets=400),
}


@dataclass(frozen=True, slots=True)
class SubscriptionPlan:
    """How the WebSocket wallets are watched: ``filtered`` (``connections`` shards of at
    most ``wallets_per_filter`` maker topics) or ``firehose`` (one connection, no maker
    topics). ``subscriptions`` counts ``logs`` + ``newHeads`` over all connections."""

    mode: Literal["filtered", "firehose"]
    reason: str
    wallets: int
    wallets_per_filter: int
    connections: int

    @property
    def subscriptions(self) -> int:
        return 2 * self.connections

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "reason": self.reason, "wallets": self.wallets,
                "wallets_per_filter": self.wallets_per_filter,
                "connections": self.connections, "subscriptions": self.subscriptions}


def plan_subscriptions(setting: Literal["auto", "filtered", "firehose"], wallets: int, *,
                       max_wallets_per_filter: int, firehose_above_wallets: int,
                       profile: str | None = None) -> SubscriptionPlan:
    """Filters or firehose for ``wallets`` WebSocket wallets (no I/O).

    A filter never holds more maker topics than the profile's ``max_topics_per_filter``;
    ``auto`` takes the firehose when ``wallets > firehose_above_wallets``."""
    limits = PROVIDER_DEFAULTS.get(profile) if profile else None
    per = max_wallets_per_filter
    if limits is not None and limits.max_topics_per_filter is not None:
        per = min(per, limits.max_topics_per_filter)
    shards = math.ceil(wallets / per) if wallets else 0
    if setting == "firehose" or (setting == "auto" and wallets > firehose_above_wallets):
        why = ("subscription_mode = firehose" if setting == "firehose" else
               f"{wallets} wallets > firehose_above_wallets {firehose_above_wallets} "
               f"(filters would need {shards} connections of <= {per})")
        return SubscriptionPlan("firehose", why, wallets, 0, 1 if wallets else 0)
    why = ("subscription_mode = filtered" if setting == "filtered" else
           f"{wallets} wallets <= firehose_above_wallets {firehose_above_wallets}")
    return SubscriptionPlan("filtered", f"{why}: {shards} filter(s) of <= {per} wallets",
                            wallets, per, shards)
