"""The numbers the monitor takes from a provider profile (``provider_profile`` setting).

The names are the simulator's profile names (``[node] profile``), so one word picks both the
node the experiments run against and the monitor's defaults for it. The monitor never
imports the simulator: this is its own copy of just what it needs (the simulator's table,
with every limit, error text and source, is ``simulator/providers.py``; a test holds the
names equal).

``backfill_chunk_blocks`` stays inside the provider's ``eth_getLogs`` range limit (and, for
Alchemy, inside the range with no result cap) so a backfill never needs a retry to learn
the limit; ``max_wallets_per_filter`` keeps a filter's topic list modest.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROVIDER_DEFAULTS", "ProviderDefaults"]


@dataclass(frozen=True, slots=True)
class ProviderDefaults:
    backfill_chunk_blocks: int
    max_wallets_per_filter: int


PROVIDER_DEFAULTS: dict[str, ProviderDefaults] = {
    # geth/bor: no range limit; a busy range can pass a 10,000-result cap
    "geth": ProviderDefaults(backfill_chunk_blocks=1000, max_wallets_per_filter=500),
    # Alchemy: up to 2,000 blocks with no limit on the response size
    "alchemy": ProviderDefaults(backfill_chunk_blocks=2000, max_wallets_per_filter=500),
    # Infura: 10,000 results (documented), 10,000 blocks (observed); 5,000 parameters
    "infura": ProviderDefaults(backfill_chunk_blocks=2000, max_wallets_per_filter=500),
    # QuickNode: 10,000 blocks on paid plans (5 on the free trial: set the chunk by hand)
    "quicknode": ProviderDefaults(backfill_chunk_blocks=2000, max_wallets_per_filter=500),
    # a public RPC: 3,500 blocks seen on Polygon; filter size limits UNCONFIRMED
    "public": ProviderDefaults(backfill_chunk_blocks=1000, max_wallets_per_filter=100),
}
