"""A restart that adds and removes wallets makes ``run.json`` ``wallets`` every wallet
watched at some time: the API calls a wallet divide by the wallets watched on average
over the measured window (``run.json`` ``watch``), not by all of them."""

from __future__ import annotations

from typing import Any

import pytest

from experiments.checker import CheckParams, mean_watched, monitor_metrics

NS = 1_000_000_000


def _watch(*spans: tuple[float | None, float | None]) -> list[dict[str, Any]]:
    return [{"wallet": f"0x{i:040x}", "from_s": a, "to_s": b}
            for i, (a, b) in enumerate(spans)]


def test_the_mean_counts_each_wallet_for_its_time() -> None:
    # two throughout, one removed half-way, one added at three quarters
    watch = _watch((None, None), (None, None), (None, 50.0), (75.0, None))
    assert mean_watched(watch, 100.0) == pytest.approx(2 + 0.5 + 0.25)


def test_intervals_are_clipped_to_the_window() -> None:
    assert mean_watched(_watch((-10.0, 200.0)), 100.0) == pytest.approx(1.0)


@pytest.mark.parametrize("watch", [None, [], "x", [1], _watch(("a", None)),
                                   _watch((float("nan"), None)), _watch((True, None)),
                                   _watch((60.0, 40.0))])
def test_no_usable_list_gives_none(watch: Any) -> None:
    assert mean_watched(watch, 100.0) is None


def test_the_per_wallet_figure_divides_by_the_mean() -> None:
    rows = [{"t_ns": 0, "event": "start"}]
    rows += [{"t_ns": i * NS, "event": "api_call", "kind": "rpc_http"} for i in range(1, 31)]
    rows.append({"t_ns": 3600 * NS, "event": "stop"})
    wallets = tuple(f"0x{i:040x}" for i in range(4))
    base = {"speed": 1.0, "window_start_ns": 0, "window_end_ns": 3600 * NS,
            "wallets": wallets}
    every = monitor_metrics(rows, CheckParams(**base))
    assert every["api_calls_per_hour_per_wallet"] == pytest.approx(30 / 4)
    mean = mean_watched(_watch((None, None), (None, 1800.0), (1800.0, None), (None, None)),
                        3600.0)
    assert mean == pytest.approx(3.0)
    changed = monitor_metrics(rows, CheckParams(**base, watched_mean=mean))
    assert changed["api_calls_per_hour_per_wallet"] == pytest.approx(30 / 3)
