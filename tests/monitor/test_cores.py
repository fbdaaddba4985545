"""The sans-I/O cores: dedup, blocks/gaps/reorgs, fallback, rate limit, rollout."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.cores import (
    BlockTracker,
    ChainChanges,
    Deduplicator,
    FallbackAction,
    FallbackDecider,
    FallbackState,
    HeadKind,
    RateLimiter,
    assign_source,
    backfill_ranges,
    rollout_bucket,
)

A, B = "0x" + "aa" * 32, "0x" + "bb" * 32


def h(n: int, fork: str = "") -> str:
    return "0x" + (fork + f"{n:x}").rjust(64, "0")


# -- chain changes -------------------------------------------------------------------

def _log(block_hash: str) -> dict[str, object]:
    return {"blockHash": block_hash, "blockNumber": "0x1"}


def test_a_reorg_makes_every_fetch_stale_a_removal_only_the_logs_of_its_block() -> None:
    ch = ChainChanges()
    before = ch.mark()
    ch.on_removed(A.upper().replace("0X", "0x"))  # hex case does not matter
    assert ch.stale(before, [_log(B), _log(A)])
    assert not ch.stale(before, [_log(B)])
    assert not ch.stale(before, [])
    assert not ch.stale(ch.mark(), [_log(A)])  # removed before the fetch began
    assert not ch.reorged_since(before)
    ch.on_reorg()
    assert ch.reorged_since(before) and ch.stale(before, [])


def test_a_removal_forgotten_since_a_mark_makes_it_stale_whatever_the_logs() -> None:
    ch = ChainChanges(keep=2)
    before = ch.mark()
    for i in range(3):
        ch.on_removed(h(i))
    assert ch.stale(before, [_log(h(99))])  # h(0) was forgotten: it may have been any
    after = ch.mark()
    ch.on_removed(h(7))
    ch.on_removed(h(8))  # h(7), h(8) kept; h(1), h(2) forgotten, both before ``after``
    assert not ch.stale(after, [_log(h(1))]) and ch.stale(after, [_log(h(7))])
    with pytest.raises(ValueError):
        ChainChanges(keep=0)


# -- dedup ---------------------------------------------------------------------------

def test_first_sighting_is_delivered_once_across_sources() -> None:
    d = Deduplicator()
    assert d.offer("t1", A).emit
    again = d.offer("t1", A)
    assert not again.emit and again.kind == "duplicate"


def test_moved_without_retraction_is_not_duplicated_and_stale_removed_is_ignored() -> None:
    d = Deduplicator()
    d.offer("t1", A)
    moved = d.offer("t1", B)  # re-seen in the new block before the removed:true arrived
    assert not moved.emit and moved.kind == "moved"
    assert not d.retract("t1", A).emit  # removed for the block it already left
    assert d.get("t1").block_hash == B.lower()


def test_retracted_then_reseen_is_delivered_again_with_next_generation() -> None:
    d = Deduplicator()
    d.offer("t1", A)
    r = d.retract("t1", A)
    assert r.emit and r.kind == "retraction" and r.generation == 1
    assert not d.retract("t1", A).emit  # second removed: nothing
    again = d.offer("t1", B)
    assert again.emit and again.generation == 2
    assert not d.offer("t1", B).emit


def test_retracting_an_unknown_trade_does_nothing() -> None:
    assert not Deduplicator().retract("nope", A).emit


def test_dedup_state_can_be_preloaded() -> None:
    d1 = Deduplicator()
    d1.offer("t1", A)
    d2 = Deduplicator()
    d2.load([("t1", d1.get("t1"))])
    assert not d2.offer("t1", A).emit


# -- blocks ---------------------------------------------------------------------------

def test_heads_next_repeat_gap() -> None:
    t = BlockTracker(keep=8)
    assert t.on_head(10, h(10), h(9)).kind is HeadKind.FIRST
    assert t.on_head(11, h(11), h(10)).kind is HeadKind.NEXT
    assert t.on_head(11, h(11), h(10)).kind is HeadKind.REPEAT
    gap = t.on_head(15, h(15), h(14))
    assert (gap.kind, gap.start, gap.end) == (HeadKind.GAP, 12, 14)


def test_changed_parent_is_a_reorg_and_fork_point_is_found() -> None:
    t = BlockTracker(keep=16)
    for n in range(1, 8):
        t.on_head(n, h(n), h(n - 1))
    # a fork replaced 6 and 7; the new 8 names a new 7 as parent
    ev = t.on_head(8, h(8, "f"), h(7, "f"))
    assert ev.kind is HeadKind.REORG and ev.start == 7
    # shell walks down from 7: 7 changed, 6 changed, 5 matches
    fork = t.fork_point({7: h(7, "f"), 6: h(6, "f"), 5: h(5)})
    assert fork == 6
    assert t.hash_at(6) == h(6, "f") and t.hash_at(5) == h(5)


def test_repeated_height_with_new_hash_is_a_reorg() -> None:
    t = BlockTracker()
    for n in range(1, 5):
        t.on_head(n, h(n), h(n - 1))
    ev = t.on_head(4, h(4, "f"), h(3))
    assert ev.kind is HeadKind.REORG and ev.start == 4
    assert t.fork_point({4: h(4, "f"), 3: h(3)}) == 4


def test_tracker_keeps_only_the_window() -> None:
    t = BlockTracker(keep=4)
    for n in range(1, 11):
        t.on_head(n, h(n), h(n - 1))
    assert t.oldest == 7 and t.hash_at(3) is None
    assert t.on_head(2, h(2, "f"), h(1)).kind is HeadKind.OLD


class _TrackerModel:
    """What the tracker holds, written plainly: every height above a new head dropped (a
    pass over all of them), the new head set, the lowest ones trimmed past ``keep``."""

    def __init__(self, keep: int) -> None:
        self.keep, self.hashes = keep, dict[int, str]()

    def set(self, number: int, block_hash: str) -> None:
        self.hashes = {n: x for n, x in self.hashes.items() if n < number}
        self.hashes[number] = block_hash
        for n in sorted(self.hashes)[:max(0, len(self.hashes) - self.keep)]:
            del self.hashes[n]


@settings(max_examples=300, deadline=None)
@given(keep=st.integers(2, 12),
       heads=st.lists(st.tuples(st.integers(0, 40), st.sampled_from("abc"),
                                st.sampled_from("abc")), max_size=60))
def test_tracker_window_matches_a_plain_model(keep: int,
                                              heads: list[tuple[int, str, str]]) -> None:
    """Heights stay ascending and the window is what the plain model holds, whatever mix of
    next heads, gaps, repeats, old heads and reorgs comes (the drop of a replaced branch
    looks at the last heights only)."""
    t, model = BlockTracker(keep=keep), _TrackerModel(keep)
    for number, fork, parent_fork in heads:
        ev = t.on_head(number, h(number, fork), h(number - 1, parent_fork))
        if ev.kind in (HeadKind.FIRST, HeadKind.NEXT, HeadKind.GAP, HeadKind.REORG):
            model.set(number, h(number, fork))
            if ev.kind is HeadKind.REORG and model.hashes.get(number - 1) not in (
                    None, h(number - 1, parent_fork)):
                model.hashes.pop(number - 1)
        known = t.known()
        assert list(known) == sorted(known)
        assert known == model.hashes


def test_backfill_ranges_cover_any_gap_in_chunks() -> None:
    assert list(backfill_ranges(100, 100, 10)) == []
    assert list(backfill_ranges(100, 101, 10)) == [(101, 101)]
    r = list(backfill_ranges(0, 25_000, 1000))
    assert (r[0] == (1, 1000) and r[-1] == (25_000, 25_000)) or r[-1][1] == 25_000
    assert sum(b - a + 1 for a, b in r) == 25_000
    assert all(r[i][1] + 1 == r[i + 1][0] for i in range(len(r) - 1))
    with pytest.raises(ValueError):
        backfill_ranges(0, 10, 0)


# -- fallback ---------------------------------------------------------------------------

def test_fallback_after_threshold_and_handback_after_backfill() -> None:
    f = FallbackDecider(fallback_after=30)
    assert f.update(True, 0) is FallbackAction.NONE
    # 10 s: feed goes down
    assert f.update(False, 10) is FallbackAction.NONE and f.state is FallbackState.UNHEALTHY
    assert f.deadline() == 40
    assert f.update(False, 39.9) is FallbackAction.NONE
    # 40 s: down for fallback_after -> poll
    assert f.update(False, 40) is FallbackAction.START_POLLING and f.polling
    # 55 s: feed back -> backfill first, keep polling meanwhile
    assert f.update(True, 55) is FallbackAction.BACKFILL and f.polling
    assert f.update(True, 56) is FallbackAction.NONE
    assert f.handed_back(57) is FallbackAction.STOP_POLLING and not f.polling
    assert f.state is FallbackState.LIVE


def test_short_blip_does_not_fall_back() -> None:
    f = FallbackDecider(fallback_after=30)
    f.update(False, 0)
    assert f.update(True, 29) is FallbackAction.NONE and f.state is FallbackState.LIVE
    # a new outage starts its own clock
    f.update(False, 35)
    assert f.update(False, 60) is FallbackAction.NONE
    assert f.update(False, 65) is FallbackAction.START_POLLING


def test_feed_failing_again_during_handback_keeps_polling() -> None:
    f = FallbackDecider(fallback_after=5)
    f.update(False, 0)
    f.update(False, 5)
    f.update(True, 6)
    assert f.update(False, 7) is FallbackAction.NONE and f.state is FallbackState.POLLING
    assert f.handed_back(8) is FallbackAction.NONE


# -- rate limiter ------------------------------------------------------------------------

def test_rate_limiter_spaces_calls() -> None:
    r = RateLimiter(rate=3.0, burst=1)
    assert r.reserve(0.0) == 0.0
    assert r.reserve(0.0) == pytest.approx(1 / 3)
    assert r.reserve(0.0) == pytest.approx(2 / 3)
    assert r.reserve(10.0) == 0.0


def test_rate_limiter_penalty_blocks_until_given_time() -> None:
    r = RateLimiter(rate=100.0, burst=5)
    r.penalise(0.0, 2.0)
    assert r.reserve(0.5) == pytest.approx(1.5)


# -- rollout --------------------------------------------------------------------------

def test_rollout_is_stable_and_proportional() -> None:
    addrs = [f"0x{i:040x}" for i in range(2000)]
    assert [rollout_bucket(a) for a in addrs[:20]] == [rollout_bucket(a.upper().replace("0X", "0x"))
                                                      for a in addrs[:20]]
    assert all(assign_source(a, 0) == "polling" for a in addrs)
    assert all(assign_source(a, 100) == "websocket" for a in addrs)
    ten = sum(assign_source(a, 10) == "websocket" for a in addrs) / len(addrs)
    assert 0.07 < ten < 0.13
    # raising the share only moves wallets towards websocket
    on10 = {a for a in addrs if assign_source(a, 10) == "websocket"}
    on50 = {a for a in addrs if assign_source(a, 50) == "websocket"}
    assert on10 <= on50


def test_dedup_with_a_capacity_keeps_memory_flat_and_asks_the_store_for_old_ids() -> None:
    from monitor.cores import DedupEntry, Deduplicator
    disk: dict[str, DedupEntry] = {}
    d = Deduplicator(capacity=100, lookup=disk.get)
    for i in range(1000):
        staged: dict[str, DedupEntry] = {}
        assert d.offer(f"t{i}", "0xaa", staged).emit
        disk.update(staged)  # the durable commit
        d.apply(staged)
    assert len(d) == 100
    # an id evicted long ago comes back: still a duplicate, found in the store
    assert d.offer("t3", "0xaa").kind == "duplicate"
    assert d.retract("t5", "0xaa").emit and d.offer("t5", "0xaa").generation == 2
