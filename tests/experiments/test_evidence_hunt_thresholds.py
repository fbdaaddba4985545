"""Evidence hunt: a threshold on a share (uptime, coverage: 0..1) written as a percentage
without its '%' ("uptime >= 99") was accepted and failed every run (measured 1 is not
>= 99): a NO-GO from a typo. It is refused with the two ways to write it."""

from __future__ import annotations

import pytest

from experiments.thresholds import ThresholdError, evaluate, parse_threshold


@pytest.mark.parametrize("expr", ["uptime >= 99", "coverage > 95.5"])
def test_a_share_written_as_a_percentage_without_its_sign_is_refused(expr):
    with pytest.raises(ThresholdError, match=r"share from 0 to 1: write '.*%' or '.*0\.9"):
        parse_threshold(expr)


@pytest.mark.parametrize(("expr", "value"), [("uptime >= 99%", 0.99), ("uptime >= 0.99", 0.99),
                                             ("coverage >= 1", 1.0)])
def test_a_share_as_a_fraction_or_with_its_percent_sign_is_read(expr, value):
    assert parse_threshold(expr).value == pytest.approx(value)
    assert evaluate(expr, {"uptime": 1.0, "coverage": 1.0})["passed"] is True
