"""The honesty of the numbers: per-trade outcomes, fault windows and confidence bounds on
small hand-built histories with exact expected numbers."""

from __future__ import annotations

import pandas as pd
from exp_helpers import Sim, monitor, params, retraction, tid, trade

from experiments.checker import run_checker


def check(sim: Sim, detections: list[dict], **kw):
    return run_checker(sim.sorted(), monitor(), detections, params(**kw),
                       thresholds=["missed_pct < 1", "duplicates == 0", "phantoms == 0"])


def outcome_of(outcomes: pd.DataFrame, trade_id: str) -> pd.Series:
    rows = outcomes[outcomes["trade_id"] == trade_id]
    assert len(rows) == 1, f"{trade_id} has {len(rows)} outcome rows"
    return rows.iloc[0]


def test_an_orphaned_trade_delivered_twice_and_retracted_once_is_a_phantom():
    # 10 s: block 1 (fork ee) holds trade 1; 12 s: a reorg replaces it by a block without.
    # The monitor delivered trade 1 twice (no retraction between) and retracted it once:
    # the sink's second delivery was never retracted - the bot holds a trade that is not
    # on the chain. It was counted "retracted" (correct behaviour), and no critical gate saw
    # it.
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    dets = [trade(10.1, tid(1)), trade(10.5, tid(1), source="backfill"),
            retraction(12.3, tid(1))]
    _, _, out, summary = check(sim, dets)
    row = outcome_of(out, tid(1))
    assert row["outcome"] == "phantom" and row["deliveries"] == 2
    assert summary["phantoms"] == 1 and summary["retracted"] == 0 and summary["trades"] == 0
    assert summary["thresholds"][2]["passed"] is False


def test_an_orphaned_trade_retracted_as_often_as_delivered_stays_retracted():
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    dets = [trade(10.1, tid(1)), retraction(12.3, tid(1)), trade(12.4, tid(1)),
            retraction(12.5, tid(1))]
    _, _, out, summary = check(sim, dets)
    assert outcome_of(out, tid(1))["outcome"] == "retracted"
    assert summary["phantoms"] == 0 and summary["retracted"] == 1

