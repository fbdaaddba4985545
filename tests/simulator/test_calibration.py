"""The synthesis profiles take the Nobel 2025 export's distinct fills, not its repeated rows.

The export (``shared/data``, never read here) has 5,000 rows of which 1,500 are distinct:
pages 3..10 are one page eight times. Read over all rows it gave 82 % BUY, log(size) mean
4.14 / sd 1.99 and a Zipf exponent ~1.05 (top 1 % of wallets 40 % of the fills); the
distinct rows give 71.8 % BUY, 4.53 / 2.19 and top 1 % 23 % (Zipf ~0.87). The default and
today profiles, and the shipped recordings made with them, used the repeated figures. What
the constants must satisfy without the data is checked here; the figures themselves are
derived in ``simulator/profiles.py``.
"""

from __future__ import annotations

import collections
import itertools
import math
import random
import statistics

import pytest

from simulator import profiles
from simulator.profiles import (
    NOBEL_FILLS_BUY_SHARE,
    NOBEL_FILLS_LOG_SIZE_MU,
    NOBEL_FILLS_LOG_SIZE_SIGMA,
    NOBEL_FILLS_ZIPF_S,
    NOBEL_QUIET_PMF,
    PROFILES,
    get_profile,
)
from simulator.recording import iter_recording
from simulator.synth import SHIPPED_RECORDINGS, build_universe, plan_blocks, shipped_recording_path

DISTINCT = {"buy_share": NOBEL_FILLS_BUY_SHARE, "log_size_mu": NOBEL_FILLS_LOG_SIZE_MU,
            "log_size_sigma": NOBEL_FILLS_LOG_SIZE_SIGMA, "zipf_s": NOBEL_FILLS_ZIPF_S}


def test_the_distinct_fill_figures_are_what_the_docstring_counts() -> None:
    assert abs(NOBEL_FILLS_BUY_SHARE - 1077 / 1500) < 5e-4
    assert (NOBEL_FILLS_LOG_SIZE_MU, NOBEL_FILLS_LOG_SIZE_SIGMA) == (4.53, 2.19)
    # the repeated-page figures are gone, so no profile can pick them up again
    assert not [n for n in dir(profiles) if n.startswith("NOBEL_") and "FILLS" not in n
                and n != "NOBEL_QUIET_PMF"]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_takes_the_distinct_fill_figures(name: str) -> None:
    """news-burst stands for the event, default and today make the shipped recordings; the
    rest take the same defaults. Before: default and today 82 % BUY, mean 4.14, Zipf 1.05."""
    profile = get_profile(name)
    assert {k: getattr(profile, k) for k in DISTINCT} == DISTINCT


def test_the_quiet_pmf_and_the_burst_blocks_add_up_to_the_1500_transactions() -> None:
    """6,791 two-second blocks 08:23:00..12:09:20: 6,772 quiet (0..8 transactions, the
    PMF) and 19 of 10..28 (the bursts), 1,500 transactions in all, 87.35 % empty."""
    counts = [round(p * 6772) for p in NOBEL_QUIET_PMF]
    assert sum(counts) == 6772
    assert [c / 6772 for c in counts] == pytest.approx(list(NOBEL_QUIET_PMF), abs=1e-12)
    bursts = [10, 11, 12, 12, *[13] * 7, 14, 14, 14, 15, 22, 23, 25, 28]
    blocks = (1760098160 - 1760084580) // 2 + 1
    assert blocks == 6772 + len(bursts) == 6791
    assert sum(k * c for k, c in enumerate(counts)) + sum(bursts) == 1500
    assert counts[0] / blocks == pytest.approx(0.8735, abs=5e-5)
    assert 1500 / blocks == pytest.approx(0.221, abs=5e-4)


def test_the_zipf_exponent_reproduces_the_distinct_wallet_skew() -> None:
    """1,500 fills over news-burst's 2,000 wallets: ~665 wallets, top 1 % ~23 %, top 10 %
    ~47 %, ~66 % trading once (the exponent 1.05 gave top 10 % ~60 %, once ~57 %)."""
    wallets = get_profile("news-burst").wallets
    cum = list(itertools.accumulate(1 / (i + 1) ** NOBEL_FILLS_ZIPF_S for i in range(wallets)))
    rows = []
    for seed in range(10):
        picks = random.Random(seed).choices(range(wallets), cum_weights=cum, k=1500)
        ranked = sorted(collections.Counter(picks).values(), reverse=True)
        n = len(ranked)
        rows.append((n, sum(ranked[:round(n / 100)]) / 1500, sum(ranked[:round(n / 10)]) / 1500,
                     sum(c == 1 for c in ranked) / n))
    n, top1, top10, once = (statistics.fmean(col) for col in zip(*rows, strict=True))
    assert 600 <= n <= 730
    assert 0.18 <= top1 <= 0.28
    assert 0.43 <= top10 <= 0.52
    assert 0.62 <= once <= 0.71


@pytest.mark.parametrize("name", sorted(SHIPPED_RECORDINGS))
def test_shipped_recordings_are_made_with_the_distinct_fill_figures(name: str) -> None:
    """The header of each shipped recording names the profile it was made with; its takers
    buy and size like the distinct fills (the plans of the same profile, seed and blocks)."""
    header = next(iter_recording(shipped_recording_path(name)))
    assert isinstance(header, dict)
    params = header["source"]["profile_params"]
    profile_name, blocks, seed = SHIPPED_RECORDINGS[name]
    assert params == get_profile(profile_name).params()
    assert {k: params[k] for k in DISTINCT} == DISTINCT
    profile = get_profile(profile_name)
    trades = [t for plan in plan_blocks(profile, seed, blocks, build_universe(profile, seed))
              for t in plan.trades]
    assert len(trades) > 800
    buy = sum(t.taker_side == "BUY" for t in trades) / len(trades)
    log_size = statistics.fmean(math.log(sum(m.shares for m in t.makers) / 1e6) for t in trades)
    assert 0.68 <= buy <= 0.77, buy  # 82 % before
    assert 4.35 <= log_size <= 4.75, log_size  # 4.15 before
