"""The rate-limit core: token buckets keyed by API key, time passed as an argument."""

from __future__ import annotations

import pytest

from simulator.ratelimit import KeyedRateLimiter, Limit

S = 1_000_000_000  # ns per second


def test_three_per_second_pass_and_the_fourth_in_the_same_second_fails() -> None:
    rl = KeyedRateLimiter(3.0)
    assert [rl.check("k", 0).allowed for _ in range(4)] == [True, True, True, False]


def test_a_refused_call_says_when_to_retry() -> None:
    rl = KeyedRateLimiter(3.0)
    for _ in range(3):
        rl.check("k", 0)
    d = rl.check("k", 0)
    assert d.limit is Limit.RATE
    assert d.retry_after_ns == pytest.approx(S / 3, rel=1e-6)
    # 1/3 s later exactly one more call passes
    assert rl.check("k", d.retry_after_ns).allowed
    assert not rl.check("k", d.retry_after_ns).allowed


def test_sustained_rate_is_the_configured_rate() -> None:
    rl = KeyedRateLimiter(3.0)
    passed = sum(rl.check("k", i * S // 30).allowed for i in range(300))  # 30 calls/s for 10 s
    assert 30 <= passed <= 33  # 3 burst + 3/s * 10 s


def test_keys_are_independent() -> None:
    rl = KeyedRateLimiter(3.0)
    for _ in range(3):
        assert rl.check("a", 0).allowed
    assert not rl.check("a", 0).allowed
    assert rl.check("b", 0).allowed


def test_speed_scales_the_limit_in_wall_time() -> None:
    # speed 10: 3 per simulated second = 30 per wall second
    rl = KeyedRateLimiter(3.0, speed=10.0)
    passed = sum(rl.check("k", i * S // 100).allowed for i in range(100))  # 100 calls in 1 s
    assert 30 <= passed <= 33
    rl2 = KeyedRateLimiter(3.0, speed=10.0)
    for _ in range(3):
        rl2.check("k", 0)
    assert not rl2.check("k", 0).allowed
    assert rl2.check("k", S // 30 + 1).allowed  # 1/30 wall second later


def test_a_tighter_rate_can_be_passed_per_call() -> None:
    rl = KeyedRateLimiter(3.0)
    assert rl.check("k", 0, rate_per_s=1.0).allowed
    assert not rl.check("k", 0, rate_per_s=1.0).allowed
    assert rl.check("k", S, rate_per_s=1.0).allowed


def test_daily_quota_refuses_until_the_next_day() -> None:
    rl = KeyedRateLimiter(1000.0, daily_limit=5, speed=1.0)
    assert all(rl.check("k", i * S).allowed for i in range(5))
    d = rl.check("k", 10 * S)
    assert not d.allowed and d.limit is Limit.DAILY
    assert d.retry_after_ns == 86_400 * S - 10 * S
    assert rl.check("k", 86_400 * S).allowed


def test_daily_quota_day_is_compressed_by_speed() -> None:
    rl = KeyedRateLimiter(1000.0, daily_limit=1, speed=1000.0)
    assert rl.check("k", 0).allowed
    assert not rl.check("k", 1).allowed
    assert rl.check("k", 86_400 * S // 1000).allowed


def test_reset_forgets_all_state() -> None:
    rl = KeyedRateLimiter(1.0)
    rl.check("k", 0)
    assert not rl.check("k", 0).allowed
    rl.reset()
    assert rl.check("k", 0).allowed


def test_fractional_rates_hold_one_token() -> None:
    rl = KeyedRateLimiter(0.2)
    assert rl.check("k", 0).allowed
    d = rl.check("k", 0)
    assert not d.allowed and d.retry_after_ns == 5 * S


@pytest.mark.parametrize("rate,speed", [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0)])
def test_bad_settings_are_refused(rate: float, speed: float) -> None:
    with pytest.raises(ValueError):
        KeyedRateLimiter(rate, speed=speed)
