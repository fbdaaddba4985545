"""Synthesis profiles: the knobs of :mod:`simulator.synth`, calibrated on real numbers.

Every number below says where it comes from: REFERENCE.md (public sources) or our own
reading of the real data in ``shared/data`` (never shipped, never read by the tests):

* ``polymarket-dataapi-trades-nobel2025`` - 5,000 Data-API ``/trades`` rows of the Nobel
  Peace Prize 2025 event, 2025-10-10 08:23..12:09 UTC (1,500 transactions, 665 wallets).
  Only 1,500 rows are distinct: the export's pages 3 to 10 are one page eight times (the
  API answers offsets past its cap with the same page), and each transaction has one row
  (the API's default lists a match once, by its taker). Every figure here is read over
  the rows deduplicated by ``transactionHash`` (the export has no log index; deduplicating
  whole rows gives the same 1,500);
* ``polygon-etl-rpc-fixtures`` - real Polygon blocks/receipts (2020-2022) for shapes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "NOBEL_QUIET_PMF",
    "PROFILES",
    "V2_LIVE_TIMESTAMP",
    "Profile",
    "estimate_block_number",
    "get_profile",
]

# --- Derived from the Nobel 2025 CSV (computed once by hand, see module docstring) ------
# The export's 5,000 rows are 1,500 distinct ones: rows 1,001..5,000 are rows 1,001..1,500
# eight times (pages 3..10 of 500 identical). Every distinct row has its own
# transactionHash (the export has no log index; the whole row and the hash both give 1,500),
# so the rows are deduplicated by transactionHash, and every figure below is over those
# 1,500 rows (one a match, its taker's fill: size = the match's total).
#
# Trade transactions per 2-s block over the event window, 08:23:00..12:09:20 UTC =
# (1760098160 - 1760084580) / 2 + 1 = 6,791 blocks: 1,500 / 6,791 = mean 0.221, variance
# 1.05, max 28, 5,932 / 6,791 = 87.35% zero (the same over all 5,000 rows: a repeated row
# repeats its transaction). Histogram of the blocks with 0..8 transactions (6,772 blocks;
# the 19 blocks with 10..28 - 10, 11, 12 x2, 13 x7, 14 x3, 15, 22, 23, 25, 28 - are
# modelled as bursts, see Profile.burst_*):
#   0: 5932, 1: 618, 2: 146, 3: 42, 4: 16, 5: 9, 6: 2, 7: 4, 8: 3
NOBEL_QUIET_PMF: tuple[float, ...] = tuple(
    c / 6772 for c in (5932, 618, 146, 42, 16, 9, 2, 4, 3))
# Taker side: 1,077 of 1,500 BUY = 71.8%.
NOBEL_FILLS_BUY_SHARE = 0.718
# Fill size (shares): log(size) mean 4.529, sd 2.194 (population; 2.195 sample), median
# 78.7 shares.
NOBEL_FILLS_LOG_SIZE_MU = 4.53
NOBEL_FILLS_LOG_SIZE_SIGMA = 2.19
# Wallets: 665 take the 1,500 fills; the top 1% (7 wallets) take 22.9% of them, the top
# 10% (67) 47.1%, 66.5% of the wallets trade once. A Zipf law over news-burst's 2,000
# wallets, 1,500 fills drawn, 40 draws each (wallets, top 1%, top 10%, once):
#   s 0.82: 701, 18.2%, 44.3%, 66.4%   s 0.85: 671, 20.0%, 46.4%, 66.3%
#   s 0.87: 654, 20.9%, 47.9%, 66.6%   s 0.90: 623, 22.3%, 50.1%, 66.7%
#   s 0.95: 577, 26.1%, 53.9%, 67.3%
# (a universe of 1,500 or 3,000 wallets fits worse: at s 0.87, 596 wallets trade / 61.9%
# once, and 727 / 71.6%).
# s = 0.87 is the closest over the four figures.
NOBEL_FILLS_ZIPF_S = 0.87
# Read over all 5,000 rows instead (one page eight times), the same figures were 4,087 BUY
# (82%), log(size) mean 4.14 / sd 1.99 (median 44), top 1% of wallets 41%, top 10% 65%,
# 52% once (a Zipf exponent ~1.05): the profiles and the shipped recordings were made with
# those until the repeat was found; none uses them now.

# --- From REFERENCE.md ---------------------------------------------------------------------
# Polygon 2022: 88% of intervals exactly 2 s, mean 2.24 s, gaps even multiples, longest 25 s.
# A gap happens with probability 0.11 and lasts 2 + G intervals, G geometric with P(G>0)=0.08:
# mean = 2 + 0.11 * 2 * (2 + 0.087 - 1) = 2.24 s, share of plain intervals 0.89.
POLYGON_GAP_PROB = 0.11
POLYGON_GAP_CONTINUE = 0.08
POLYGON_GAP_MAX_MULTIPLE = 12
# V2 exchanges live from 2026-04-28 00:00 UTC (REFERENCE: contract table).
V2_LIVE_TIMESTAMP = 1777334400
# Block-number anchor: block 35,678,770 has timestamp 1,668,602,608 (polygon-etl fixture,
# 2022-11-16); later heights are estimated at the 2022 mean interval of 2.24 s.
_ANCHOR_NUMBER = 35_678_770
_ANCHOR_TIMESTAMP = 1_668_602_608
_ANCHOR_MEAN_INTERVAL = 2.24


def estimate_block_number(timestamp: int) -> int:
    """A plausible Polygon height for ``timestamp`` (anchored on a real block)."""
    return max(1, _ANCHOR_NUMBER + int((timestamp - _ANCHOR_TIMESTAMP) / _ANCHOR_MEAN_INTERVAL))


@dataclass(frozen=True, slots=True)
class Profile:
    """What a synthetic chain looks like. All rates are per block unless said otherwise."""

    name: str
    description: str
    interval_s: float = 2.0
    gap_prob: float = POLYGON_GAP_PROB
    gap_continue: float = POLYGON_GAP_CONTINUE
    gap_max_multiple: int = POLYGON_GAP_MAX_MULTIPLE
    # Trade transactions per block outside bursts: negative binomial (gamma-Poisson) with this
    # mean and shape (small shape = overdispersed), or drawn from ``quiet_pmf`` when set.
    trade_tx_mean: float = 9.2
    trade_tx_shape: float = 4.0
    quiet_pmf: tuple[float, ...] | None = None
    # Bursts: start with ``burst_prob`` per block; first block carries a count drawn uniformly
    # from ``burst_peak``; each next block continues with ``burst_continue`` at a fraction
    # (uniform in ``burst_decay``) of the previous count.
    burst_prob: float = 0.0
    burst_peak: tuple[int, int] = (20, 28)
    burst_continue: float = 0.6
    burst_decay: tuple[float, float] = (0.35, 0.75)
    # Shape of one match: number of maker orders = 1 + geometric(``maker_continue``). Not
    # from the Nobel export, which lists a match once, by its taker (its "up to 8 rows per
    # transaction" is one page repeated eight times, not 8 maker legs).
    maker_continue: float = 0.4
    max_makers: int = 8
    v2_share: float = 0.0
    negrisk_share: float = 0.35
    buy_share: float = NOBEL_FILLS_BUY_SHARE
    log_size_mu: float = NOBEL_FILLS_LOG_SIZE_MU
    log_size_sigma: float = NOBEL_FILLS_LOG_SIZE_SIGMA
    wallets: int = 5000
    zipf_s: float = NOBEL_FILLS_ZIPF_S
    markets: int = 300
    operators: int = 4
    background_tx_mean: float = 40.0
    fee_logs: bool = True
    start_timestamp: int = 1777327200  # 2026-04-27 22:00 UTC
    start_block: int = 0  # 0: estimated from start_timestamp

    def params(self) -> dict[str, Any]:
        """The settings as JSON-ready data (stored in the recording header)."""
        d = asdict(self)
        d.pop("description")
        d["start_block"] = self.first_block()
        return json.loads(json.dumps(d))  # tuples as lists: equal to what a file loads back

    def first_block(self) -> int:
        return self.start_block or estimate_block_number(self.start_timestamp)


_PROFILES = [
    Profile(
        name="steady",
        description="an everyday rate: ~11 OrderFilled/s (REFERENCE all-time mean), "
                    "~9 trade tx per 2-s block, 40 background tx, half V1 half V2",
        # 9.2 trade tx x (1 + 1/(1-0.4)) OrderFilled each = 24.5 OrderFilled per block
        # = 11 per second at the 2.24-s mean interval.
        trade_tx_mean=9.2, trade_tx_shape=4.0, v2_share=0.5, wallets=20000,
        background_tx_mean=40.0,
    ),
    Profile(
        name="busy",
        description="the 2026-03-31 busy window: ~80 trade tx per 2-s block (REFERENCE: ~84), "
                    "V1 exchanges",
        trade_tx_mean=82.0, trade_tx_shape=30.0, v2_share=0.0, wallets=50000, markets=800,
        background_tx_mean=20.0, start_timestamp=1774965600,  # 2026-03-31 14:00 UTC
    ),
    Profile(
        name="news-burst",
        description="a news event (Nobel 2025): ~87% of blocks without a trade, mean 0.22 "
                    "trade tx per block, bursts of 20+ trade tx in one block",
        # bursts tuned on 3 x 20,000 planned blocks to mean 0.21, variance 1.01, 87.5% empty
        # (Nobel: 0.221, 1.05, 87.35%)
        quiet_pmf=NOBEL_QUIET_PMF, burst_prob=0.001, burst_peak=(20, 28), burst_continue=0.5,
        v2_share=0.0, wallets=2000, markets=37, background_tx_mean=40.0,
        start_timestamp=1760084580,  # 2025-10-10 08:23 UTC, the CSV's first trade
    ),
    Profile(
        name="default",
        description="the shipped default: light traffic (~1 trade tx per block, a few "
                    "background tx) with news bursts, V1 and V2 exchanges, few wallets so "
                    "the active ones trade often; small enough to ship",
        trade_tx_mean=0.9, trade_tx_shape=0.5, burst_prob=0.004, burst_peak=(20, 28),
        v2_share=0.5, wallets=400, markets=60, background_tx_mean=3.0,
        start_timestamp=1777329000,  # 2026-04-27 22:30 UTC
    ),
    Profile(
        name="today",
        description="today's chain, the default of the experiments: the shipped default's "
                    "light traffic with news bursts at the same rates per second, 1.75-s "
                    "blocks (PIP-86, May 2026), V2 exchanges only (pUSD), few wallets",
        # The default profile's calibrated rates per second kept: its per-block means
        # (0.9 trade tx, burst start 0.004, 3.0 background tx per 2-s block) x 1.75/2. A
        # burst's peak is a count in one block and stays as it is.
        interval_s=1.75, trade_tx_mean=0.7875, trade_tx_shape=0.5, burst_prob=0.0035,
        burst_peak=(20, 28), v2_share=1.0, wallets=400, markets=60,
        background_tx_mean=2.625,
        start_timestamp=1795528800,  # 2026-11-24 14:00 UTC
    ),
    Profile(
        name="steady-1.75s",
        description="steady traffic after PIP-86 (1.75-s blocks), V2 exchanges only",
        interval_s=1.75, trade_tx_mean=8.0, v2_share=1.0, wallets=20000,
        background_tx_mean=35.0, start_timestamp=1780300800,  # 2026-06-01 UTC
    ),
    Profile(
        name="steady-1.5s",
        description="steady traffic at the planned 1.5-s interval, V2 exchanges only",
        interval_s=1.5, trade_tx_mean=7.0, v2_share=1.0, wallets=20000,
        background_tx_mean=30.0, start_timestamp=1780300800,
    ),
]
PROFILES: dict[str, Profile] = {p.name: p for p in _PROFILES}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ``KeyError`` names the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; known profiles: "
                       f"{', '.join(sorted(PROFILES))}") from None
