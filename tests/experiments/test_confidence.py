"""Exact binomial bounds: known values, agreement with a brute-force tail, monotonicity."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.confidence import lower_bound, rate_bound, trials_needed, upper_bound


def brute_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def test_known_values() -> None:
    assert upper_bound(0, 428) == pytest.approx(0.006975, rel=1e-3)
    assert upper_bound(3, 100) == pytest.approx(0.0757, rel=1e-3)  # beta.ppf(.95, 4, 97)
    assert lower_bound(3, 100) == pytest.approx(0.00823, rel=1e-2)
    assert upper_bound(0, 0) == 1.0 and lower_bound(0, 10) == 0.0
    assert rate_bound(0, 48_200).text() == "0 missed in 48,200 trades: rate < 0.0063% at 95%"
    assert trials_needed(0.01) == 299  # the rule of three


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.integers(1, 120), st.data())
def test_upper_bound_solves_the_exact_tail(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, n - 1))
    u = upper_bound(k, n)
    assert brute_cdf(k, n, u) == pytest.approx(0.05, abs=1e-6)
    assert k / n <= u <= 1
    assert lower_bound(k, n) <= k / n


def test_trials_needed_is_the_smallest_that_decides() -> None:
    for limit, k in [(0.01, 0), (0.01, 1), (0.05, 3)]:
        n = trials_needed(limit, events=k)
        assert upper_bound(k, n) < limit <= upper_bound(k, n - 1)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        upper_bound(5, 3)
    with pytest.raises(ValueError):
        trials_needed(1.5)
