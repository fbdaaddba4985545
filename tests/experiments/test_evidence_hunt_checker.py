"""Evidence hunt: the checker's outcome of one trade id's deliveries and retractions, and
which trades count as "in a fault".

The classification the checker states (experiments/checker.py, docs/contracts.md): the bot
holds a trade while some delivery of it stands (a retraction takes back one standing
delivery; one that finds none takes nothing). What remains standing at the end decides:
a canonical trade nothing stands of is missed, an orphaned one retracted; a canonical trade
that stands is detected / late / duplicate (delivered again while a delivery stood), an
orphaned one a phantom. The same events give the same verdict on both kinds.
"""

from __future__ import annotations

import pandas as pd
import pytest
from exp_helpers import Sim, monitor, ns, outcome_of, params, retraction, tid, trade
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.checker import FaultWindow, _fault_of, _FaultLookup, run_checker


def _check(sim: Sim, dets: list[dict]) -> tuple[pd.DataFrame, dict]:
    _, _, out, summary = run_checker(sim.sorted(), monitor(), dets, params())
    return out, summary


# -- gap 1: a duplicate delivery partly retracted ----------------------------------------

def test_a_canonical_trade_delivered_twice_and_retracted_once_still_stands_a_duplicate():
    # The monitor delivers trade 1 twice (ws, then backfill) and retracts it once: one
    # delivery still stands in the bot. It was counted "missed" (the bot was told it did
    # not happen) while an orphaned trade with the same events is a "phantom" (one
    # delivery stands): one sequence, two contradicting readings.
    sim = Sim().block(10, 1, [tid(1)])
    dets = [trade(10.2, tid(1)), trade(10.5, tid(1), source="backfill"),
            retraction(12, tid(1))]
    out, summary = _check(sim, dets)
    row = outcome_of(out, tid(1))
    assert row["outcome"] == "duplicate"
    assert row["latency_s"] == pytest.approx(0.2)  # the delivery that still stands
    assert row["source"] == "ws"
    assert summary["missed"] == 0 and summary["duplicates"] == 1

    orphan = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    out, summary = _check(orphan, dets)
    assert outcome_of(out, tid(1))["outcome"] == "phantom"


def test_every_delivery_taken_back_is_missed_or_retracted_whatever_was_duplicated():
    dets = [trade(10.2, tid(1)), trade(10.5, tid(1), source="backfill"),
            retraction(12, tid(1)), retraction(12.5, tid(1))]
    out, _ = _check(Sim().block(10, 1, [tid(1)]), dets)
    assert outcome_of(out, tid(1))["outcome"] == "missed"
    orphan = Sim().block(10, 1, [tid(1)], fork="ee").block(12, 1, [], fork="ff")
    out, _ = _check(orphan, dets)
    assert outcome_of(out, tid(1))["outcome"] == "retracted"


_event = st.tuples(st.sampled_from(["trade", "retraction"]), st.sampled_from(["ws", "backfill"]))


def _bot(events: list[tuple[str, str]]) -> tuple[int, bool]:
    """The bot's model: deliveries it holds at the end, and whether some delivery came
    while one stood (a duplicate)."""
    held, dup = 0, False
    for kind, _ in events:
        if kind == "trade":
            dup = dup or held > 0
            held += 1
        else:
            held = max(0, held - 1)
    return held, dup


@settings(max_examples=150, deadline=None)
@given(events=st.lists(_event, min_size=1, max_size=7))
def test_what_stands_decides_missed_and_phantom_alike(events: list[tuple[str, str]]):
    """Property: for any sequence of deliveries and retractions of one trade id, a
    canonical trade is missed exactly when an orphaned one is retracted (or gets no row:
    never delivered), i.e. when no delivery stands at the end; a standing canonical trade
    is a duplicate exactly when some delivery came while another stood."""
    dets = [trade(10.1 + 0.1 * i, tid(1), source=src) if kind == "trade"
            else retraction(10.1 + 0.1 * i, tid(1)) for i, (kind, src) in enumerate(events)]
    held, dup = _bot(events)
    out, _ = _check(Sim().block(10, 1, [tid(1)]), dets)
    canonical = outcome_of(out, tid(1))["outcome"]
    orphan_out, _ = _check(Sim().block(10, 1, [tid(1)], fork="ee")
                           .block(12, 1, [], fork="ff"), dets)
    orphan = (outcome_of(orphan_out, tid(1))["outcome"]
              if tid(1) in set(orphan_out["trade_id"]) else None)
    if held == 0:
        assert canonical == "missed"
        assert orphan in ("retracted", None)
    else:
        assert canonical == ("duplicate" if dup else "detected")
        assert orphan == "phantom"


# -- gap 2: "in a fault" is the detection window overlapping a fault window ---------------

def test_a_trade_visible_just_before_a_fault_and_delayed_by_it_is_in_the_fault():
    # 30-40 s: ws_stall. Trade 1 became visible at 29.5 s (before the stall) and was
    # delivered by the backfill at 41 s: delayed 11.5 s by the stall, but judged "calm"
    # by when it became visible, so the p95 outside faults read 11.5 s and the p95 in
    # fault had nothing to read.
    sim = (Sim().fault("ws_stall", 30, 40).block(10, 1, [tid(1)]).block(29.5, 2, [tid(2)])
           .block(60, 3, [tid(3)]))
    dets = [trade(10.1, tid(1)), trade(41, tid(2), source="backfill"), trade(60.2, tid(3))]
    out, summary = _check(sim, dets)
    flags = dict(zip(out["trade_id"], out["in_fault"], strict=True))
    assert flags == {tid(1): False, tid(2): True, tid(3): False}
    assert outcome_of(out, tid(2))["fault"] == "ws_stall"
    assert summary["latency_p95_in_fault_s"] == pytest.approx(11.5)
    assert summary["latency_p95_outside_fault_s"] == pytest.approx(0.1 + 0.95 * 0.1)


def test_a_missed_trade_is_in_a_fault_that_began_within_its_actionable_window():
    # visible at 28 s, never delivered; a ws_drop at 30 s (within the 5-s actionable
    # window it had to be delivered in) is in its way; one at 80 s is not
    sim = (Sim().fault("ws_drop", 30, 30, fid="a").fault("ws_drop", 80, 80, fid="b")
           .block(28, 1, [tid(1)]).block(60, 2, [tid(2)]))
    out, _ = _check(sim, [])
    flags = dict(zip(out["trade_id"], out["in_fault"], strict=True))
    assert flags == {tid(1): True, tid(2): False}


_window = st.builds(lambda name, start, length: FaultWindow(name, start, start + length),
                    st.sampled_from(["ws_drop", "ws_stall", "reorg"]),
                    st.integers(0, 10_000), st.integers(0, 3_000))


@settings(max_examples=300, deadline=None)
@given(windows=st.lists(_window, max_size=30), tail=st.integers(0, 2_000),
       spans=st.lists(st.tuples(st.integers(-100, 16_000), st.integers(0, 4_000)),
                      min_size=1, max_size=40))
def test_the_span_lookup_equals_the_scan(windows, tail, spans):
    windows = sorted(windows, key=lambda w: (w.start_ns, w.name))
    lookup = _FaultLookup(windows, tail)
    for lo, length in spans:
        assert lookup(lo, lo + length) == _fault_of(lo, windows, tail, lo + length)
        want = next((w.name for w in windows
                     if w.start_ns <= lo + length and lo <= w.stop_ns + tail), None)
        assert lookup(lo, lo + length) == want
    assert ns(0) > 0  # the helper clock is positive (spans above are relative)
