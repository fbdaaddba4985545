"""Checker hunt: trade histories whose outcome the checker got wrong, with the exact
outcome DESIGN.md's definitions give."""

from __future__ import annotations

from exp_helpers import Sim, monitor, outcome_of, params, retraction, tid, trade

from experiments.checker import run_checker


def check(sim: Sim, detections: list[dict], mon: list[dict] | None = None, **kw):
    return run_checker(sim.sorted(), mon if mon is not None else monitor(), detections,
                       params(**kw), thresholds=["phantoms == 0"])


def test_a_retraction_before_any_delivery_covers_no_later_delivery():
    # block 1 (fork ee) holds trade 1 at 10 s; a reorg at 12 s replaces it by a block
    # without. A restarting monitor sends a retraction of a trade the sink never got (the
    # bot ignores it, docs/contracts.md), then delivers trade 1 twice (WebSocket and
    # backfill) and retracts it once: one delivery still stands in the bot. The stray
    # retraction was counted against the deliveries: 2 deliveries, 2 retractions, so
    # "retracted" (a reorg handled) and the 'phantoms == 0' gate passed.
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    dets = [retraction(10.05, tid(1)), trade(10.1, tid(1)),
            trade(10.5, tid(1), source="backfill"), retraction(12.3, tid(1))]
    _, _, out, summary = check(sim, dets)
    row = outcome_of(out, tid(1))
    assert row["outcome"] == "phantom" and row["deliveries"] == 2
    assert summary["phantoms"] == 1 and summary["retracted"] == 0
    assert summary["thresholds"][0]["passed"] is False


def test_retractions_that_take_back_every_delivery_leave_it_retracted():
    sim = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    dets = [retraction(10.05, tid(1)), trade(10.1, tid(1)), retraction(12.2, tid(1)),
            retraction(12.3, tid(1))]
    _, _, out, summary = check(sim, dets)
    assert outcome_of(out, tid(1))["outcome"] == "retracted"
    assert summary["phantoms"] == 0 and summary["retracted"] == 1
