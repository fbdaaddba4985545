"""The replay schedule, the explorer's index lag and reorgs (pure, time is an argument)."""

from __future__ import annotations

import statistics

import pytest

from simulator.chain import Chain, order_filled
from simulator.filters import LogFilter
from simulator.schedule import IndexLag, ReplaySchedule
from simulator.settings import LagSettings, SimSettings
from tests.simulator.node_fixtures import WALLETS, make_recording

S = 1_000_000_000


def test_block_i_is_due_at_t0_plus_timestamp_delta_over_speed() -> None:
    sched = ReplaySchedule.build(t0_ns=5 * S, timestamps=[100, 102, 104, 110], speed=2.0)
    assert [sched.due_ns(i) for i in range(4)] == [5 * S, 6 * S, 7 * S, 10 * S]


def test_head_never_shows_a_block_before_its_time() -> None:
    sched = ReplaySchedule.build(t0_ns=0, timestamps=[0, 2, 4, 6], speed=1.0)
    assert sched.published_count(-1) == 0
    assert sched.published_count(0) == 1
    assert sched.published_count(2 * S - 1) == 1
    assert sched.published_count(2 * S) == 2
    assert sched.published_count(100 * S) == 4


@pytest.mark.parametrize("speed", [0.5, 1.0, 3.0, 1000.0, 1e9])
def test_any_positive_speed_keeps_every_block_at_or_after_its_due_time(speed: float) -> None:
    ts = [0, 2, 4, 5, 9, 25, 27]
    sched = ReplaySchedule.build(t0_ns=7, timestamps=ts, speed=speed)
    for i in range(len(ts)):
        due = sched.due_ns(i)
        assert sched.published_count(due) >= i + 1
        assert sched.published_count(due - 1) <= i


@pytest.mark.parametrize("speed", [0.0, -1.0, float("inf"), float("nan")])
def test_speed_must_be_positive_and_finite(speed: float) -> None:
    with pytest.raises(ValueError):
        ReplaySchedule.build(0, [0, 2], speed)


def test_index_lag_is_seeded_lognormal_with_median_about_4s_p95_about_10s() -> None:
    lag = IndexLag(LagSettings(seed=3))
    draws = sorted(lag.draw_s(f"0x{i:064x}") for i in range(4000))
    assert 3.5 < statistics.median(draws) < 4.5
    assert 8.5 < draws[int(0.95 * len(draws))] < 11.5
    assert lag.draw_s("0xab") == IndexLag(LagSettings(seed=3)).draw_s("0xab")
    assert lag.lag_ns("0xab", speed=10) == pytest.approx(lag.draw_s("0xab") * S / 10, abs=2)


def test_chain_publishes_only_due_blocks_and_serves_only_those() -> None:
    rec = make_recording(5)
    chain = Chain(rec, speed=2.0, t0_ns=0)
    assert chain.advance(0)[0].number == 1000
    assert chain.head_number == 1000 and chain.block(1001) is None
    assert chain.tx(rec.blocks[1].transactions[0]["hash"]) is None
    assert [b.number for b in chain.advance(2 * S)] == [1001, 1002]
    assert chain.block_by_hash(rec.blocks[2].hash) is not None
    assert chain.block_by_hash(rec.blocks[3].hash) is None
    assert chain.next_publish_ns() == 3 * S


def test_upcoming_is_the_block_the_replay_publishes_next() -> None:
    chain = Chain(make_recording(3), speed=1.0, t0_ns=0)
    first = chain.upcoming()
    assert first is not None and first.number == 1000
    assert chain.advance(0)[0] is first  # the very block, caches and all
    nxt = chain.upcoming()
    assert nxt is not None and nxt.number == 1001
    chain.advance(10 * S)
    assert chain.upcoming() is None  # exhausted


def test_indexed_blocks_follow_the_lag_in_order_and_lag_scales_with_speed() -> None:
    rec = make_recording(6)
    chain = Chain(rec, settings=SimSettings(lag=LagSettings(median_s=4, p95_s=4.0001,
                                                            min_s=4, max_s=4)),
                  speed=2.0, t0_ns=0)
    chain.advance(100 * S)
    # every block visible at 100 s (late loop), indexed 4 simulated s = 2 real s later
    assert len(chain.indexed_blocks(100 * S)) == 0
    got = chain.indexed_blocks(102 * S)
    assert [b.number for b in got] == list(range(1000, 1006))
    assert [b.number for b in got[2:4]] == [1002, 1003] and got[-1].number == 1005
    assert [b.number for b in chain.newly_indexed(102 * S)] == list(range(1000, 1006))
    assert chain.newly_indexed(103 * S) == []


def test_explorer_lag_spike_delays_blocks_published_during_it() -> None:
    rec = make_recording(3)
    chain = Chain(rec, settings=SimSettings(lag=LagSettings(median_s=1, p95_s=1.0001,
                                                            min_s=1, max_s=1)), t0_ns=0)
    chain.advance(0)
    chain.lag_extra_s = 30.0
    chain.advance(2 * S)
    assert [b.number for b in chain.indexed_blocks(5 * S)] == [1000]
    assert [b.number for b in chain.indexed_blocks(33 * S)] == [1000, 1001]


def test_logs_filters_by_range_and_wallet() -> None:
    chain = Chain(make_recording(4), t0_ns=0)
    chain.advance(10 * S)
    from polyvocab import address_topic
    flt = LogFilter.parse({"topics": [None, None, [address_topic(WALLETS[0])]]})
    logs = chain.logs(flt, 1000, 1003)
    assert logs and all(log["topics"][2] == address_topic(WALLETS[0]) for log in logs)
    assert chain.logs(LogFilter(), 1000, 1003, limit=3) is None


def test_reorg_is_deterministic_relinks_and_moves_or_drops_trades() -> None:
    def run() -> tuple[list[str], list[list[list[str]]]]:
        chain = Chain(make_recording(8, trades_per_block=6), t0_ns=0)
        chain.advance(10 * S)  # blocks 1000..1005
        result = chain.reorg(3, 11 * S, seed=5, move_share=0.4, vanish_share=0.3)
        assert result is not None
        assert [b.number for b in result.new] == [1003, 1004, 1005]
        assert result.new[0].rb.parent_hash == chain.block(1002).hash  # type: ignore[union-attr]
        for a, b in zip(result.new, result.new[1:], strict=False):
            assert b.rb.parent_hash == a.hash
        assert chain.blocks[6].rb.parent_hash == result.new[-1].hash  # next block relinked
        assert chain.head_number == 1005 and chain.head is result.new[-1]
        assert all(chain.block_by_hash(b.hash) is None for b in result.old)
        return [b.hash for b in result.new], [b.order_filled() for b in result.new]

    hashes, fills = run()
    assert run() == (hashes, fills)
    old_count = 3 * 6
    assert sum(len(f) for f in fills) < old_count  # some trades vanished or moved on


def test_reorg_keeps_log_indexes_and_block_fields_consistent() -> None:
    chain = Chain(make_recording(5, trades_per_block=4), t0_ns=0)
    chain.advance(8 * S)
    result = chain.reorg(2, 9 * S, seed=1)
    assert result is not None
    for block in result.new:
        assert [int(log["logIndex"], 16) for log in block.logs] == list(range(len(block.logs)))
        assert all(log["blockHash"] == block.hash for log in block.logs)
        assert block.rb.block["transactions"] == [t["hash"] for t in block.rb.transactions]
        txs = {t["hash"] for t in block.rb.transactions}
        assert {log["transactionHash"] for log in block.logs} <= txs


def test_order_filled_lists_trade_id_and_maker() -> None:
    rec = make_recording(1, trades_per_block=1)
    fills = order_filled(rec.blocks[0].logs)
    tx = rec.blocks[0].logs[0]["transactionHash"]
    assert fills == [[f"{tx}:0", WALLETS[1000 % 3]]]


def test_after_a_reorg_the_explorer_indexes_the_fork_after_a_fresh_lag() -> None:
    lag = LagSettings(median_s=1, p95_s=1.0001, min_s=1, max_s=1)
    chain = Chain(make_recording(6), settings=SimSettings(lag=lag), t0_ns=0)
    chain.advance(6 * S)  # 1000..1003, indexed by 7 s
    assert len(chain.indexed_blocks(7 * S)) == 4
    assert len(chain.newly_indexed(7 * S)) == 4
    result = chain.reorg(2, 20 * S, seed=2)
    assert result is not None
    assert [b.number for b in chain.indexed_blocks(20 * S)] == [1000, 1001]
    fork = chain.indexed_blocks(21 * S)
    assert [b.hash for b in fork[2:]] == [b.hash for b in result.new]
    assert [b.hash for b in chain.newly_indexed(21 * S)] == [b.hash for b in result.new]
