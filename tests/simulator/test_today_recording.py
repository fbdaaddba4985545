"""The shipped recording of today's chain: 1.75-s blocks, V2 exchanges only, after May 2026.

``simulator/data/today.jsonl.gz`` is ``python -m simulator synth --profile today --blocks 1020
--seed 1`` (``simulator.synth.SHIPPED_RECORDINGS``); the older ``default.jsonl.gz`` stands
for 2026-04-27, the eve of the V2 switch (2-s blocks, V1 + V2).
"""

from __future__ import annotations

import gzip
import itertools
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from polyvocab import (
    ORDER_FILLED_TOPICS,
    ORDER_FILLED_V2,
    ORDERS_MATCHED_V1,
    ORDERS_MATCHED_V2,
    V2_EXCHANGES,
)
from simulator.cli import main
from simulator.profiles import get_profile
from simulator.recording import Recording, load_recording
from simulator.synth import (
    SHIPPED_RECORDINGS,
    default_recording_path,
    recording_stats,
    shipped_recording_path,
    trades_by_wallet,
)

MAY_2026 = int(datetime(2026, 5, 1, tzinfo=UTC).timestamp())


@pytest.fixture(scope="module")
def today() -> Recording:
    return load_recording(shipped_recording_path("today"))


def _on_grid(offset: int, interval: float) -> bool:
    """``offset`` whole seconds is ``floor(k * interval)`` for some whole k (the synthesiser
    adds intervals in floats and writes whole-second timestamps)."""
    k = math.ceil(offset / interval - 1e-9)
    return int(k * interval + 1e-9) == offset


def test_shipped_recordings_are_named_and_default_is_unchanged() -> None:
    assert set(SHIPPED_RECORDINGS) >= {"default", "today"}
    assert shipped_recording_path("default") == default_recording_path()
    with pytest.raises(KeyError, match="known: default, today"):
        shipped_recording_path("yesterday")


def test_today_profile_keeps_the_default_rates_per_second() -> None:
    old, new = get_profile("default"), get_profile("today")
    assert new.interval_s == 1.75 and old.interval_s == 2.0
    assert new.v2_share == 1.0
    for key in ("trade_tx_mean", "burst_prob", "background_tx_mean"):
        assert getattr(new, key) / new.interval_s == pytest.approx(
            getattr(old, key) / old.interval_s), key
    assert (new.burst_peak, new.wallets, new.markets) == (old.burst_peak, old.wallets,
                                                           old.markets)
    assert new.start_timestamp >= MAY_2026


def test_today_recording_is_small_long_and_dated_after_pip86(today: Recording) -> None:
    assert shipped_recording_path("today").stat().st_size < 3_000_000  # like default's 2 MB
    s = recording_stats(today)
    assert s["blocks"] == SHIPPED_RECORDINGS["today"][1]
    assert s["time_span_s"] >= 30 * 60  # the longest scenario (900 s + grace) fits
    assert today.blocks[0].timestamp >= MAY_2026
    assert today.source["profile"] == "today"
    assert today.source["profile_params"]["interval_s"] == 1.75
    assert s["blocks_with_20plus_trade_tx"] >= 1  # news bursts as in default
    assert today.extra["wallets"][0][1] >= 50  # the most active wallet trades often
    assert dict(map(tuple, today.extra["wallets"])) == trades_by_wallet(today)


def test_today_recording_has_1_75_s_spacing(today: Recording) -> None:
    ts = [b.timestamp for b in today.blocks]
    intervals = [b - a for a, b in itertools.pairwise(ts)]
    # every block sits on the 1.75-s grid (whole-second timestamps: floor(k * 1.75))
    assert all(_on_grid(t - ts[0], 1.75) for t in ts)
    # plain intervals read 1 or 2 s (mean 1.75), a few gaps of whole multiples
    plain = [i for i in intervals if i <= 2]
    assert set(plain) == {1, 2}
    assert len(plain) / len(intervals) >= 0.85
    assert 1.75 <= (ts[-1] - ts[0]) / len(intervals) <= 1.75 * 1.2
    # and not on the old chain's 2-s grid
    assert not all((t - ts[0]) % 2 == 0 for t in ts)
    old = [b.timestamp for b in load_recording(default_recording_path()).blocks]
    assert all((t - old[0]) % 2 == 0 for t in old)


def test_today_recording_has_only_v2_order_filled(today: Recording) -> None:
    filled = [log for b in today.blocks for log in b.logs
              if log["topics"] and log["topics"][0] in ORDER_FILLED_TOPICS]
    assert len(filled) > 1000
    assert {log["topics"][0] for log in filled} == {ORDER_FILLED_V2}
    assert {log["address"] for log in filled} == set(V2_EXCHANGES)  # both V2 exchanges
    matched = {log["topics"][0] for b in today.blocks for log in b.logs
               if log["topics"] and log["topics"][0] in (ORDERS_MATCHED_V1, ORDERS_MATCHED_V2)}
    assert matched == {ORDERS_MATCHED_V2}
    s = recording_stats(today)
    assert s["order_filled_v1"] == 0 and s["order_filled_v2"] == len(filled)


def test_shipped_today_is_what_the_synth_command_produces(tmp_path: Path) -> None:
    profile, blocks, seed = SHIPPED_RECORDINGS["today"]
    out = tmp_path / "today.jsonl.gz"
    assert main(["synth", "--profile", profile, "--blocks", str(blocks), "--seed", str(seed),
                 "--out", str(out)]) == 0
    shipped = shipped_recording_path("today")
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(shipped.read_bytes())


def test_serve_takes_a_shipped_recording_by_name() -> None:
    import argparse

    from simulator.cli import _load_source

    rec = _load_source(argparse.Namespace(profile=None, recording="today"))
    # streamed (simulator.source.FileSource): the header is read, the blocks on demand
    assert rec.header()["source"]["profile"] == "today"
    assert rec.count == SHIPPED_RECORDINGS["today"][1]
