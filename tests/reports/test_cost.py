"""Cost arithmetic: usage lines, monthly volumes, prices and plan limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reports.cost import explorer_limit_per_hour, fit_usage, mode_costs, provider_cost_usd
from reports.criteria import CostSettings, ExplorerPlan, ProviderPlan, load_criteria
from reports.load import load_run


def test_explorer_limit_is_the_tighter_of_second_and_day() -> None:
    assert explorer_limit_per_hour(CostSettings()) == pytest.approx(100_000 / 24)
    loose_day = CostSettings(explorer=ExplorerPlan(rate_per_s=3, calls_per_day=10**9))
    assert explorer_limit_per_hour(loose_day) == 10_800


def test_fit_usage_line_and_limit() -> None:
    fit = fit_usage([(1, 250.0), (10, 2410.0)])  # 10 fixed + 240 per wallet
    assert fit.fixed == pytest.approx(10.0)
    assert fit.per_wallet == pytest.approx(240.0)
    assert fit.wallets_at(10_800) == pytest.approx((10_800 - 10) / 240)
    flat = fit_usage([(1, 6.0), (10, 6.0)])
    assert flat.per_wallet == 0 and flat.wallets_at(10_800) is None
    single = fit_usage([(5, 100.0)])
    assert (single.fixed, single.per_wallet) == (0.0, 20.0)


def test_provider_price_counts_free_units() -> None:
    cs = CostSettings(provider=ProviderPlan(
        compute_units_per_request=20, price_per_million_compute_units_usd=0.5,
        free_compute_units_per_month=1_000_000, price_per_million_requests_usd=1.0))
    # 100k requests = 2M CU: 1M billable at $0.5/M + 0.1M requests at $1/M
    assert provider_cost_usd(100_000, cs) == pytest.approx(0.5 + 0.1)
    assert provider_cost_usd(10_000, cs) == pytest.approx(0.01)


def test_mode_costs_from_the_run(run_dir: Path) -> None:
    costs = {m.mode: m for m in mode_costs(load_run(run_dir), load_criteria().cost)}
    poll, ws = costs["polling"], costs["websocket"]
    # polling: 240 explorer calls/h per wallet, 730 h a month, measured up to 10 wallets
    assert poll.explorer.per_wallet == pytest.approx(240.0)
    assert poll.explorer_per_month == pytest.approx(240 * 10 * 730)
    assert poll.explorer_limit_wallets == pytest.approx((100_000 / 24) / 240)
    assert poll.explorer_usd == 0.0  # 10 wallets: 2,400/h, inside the free 4,167/h
    grid = {w: row for w, *row in poll.by_wallets}
    assert grid[1][2] == 0.0 and grid[50][2] is None  # free plan until ~17 wallets
    # websocket: 1 explorer call per 10 min whatever the wallets, no limit in reach
    assert ws.explorer.per_wallet == 0 and ws.explorer_limit_wallets is None
    assert ws.rpc_per_month == pytest.approx(42 * 730)
    assert ws.provider_usd == 0.0  # 613k CU/month is inside the free units


def test_a_window_too_short_for_a_rate_gives_no_point_to_the_fit(
        make_run: Callable[..., Path]) -> None:
    """A 30-s quick run of the WebSocket path at 335 wallets counted 0 calls (its sweeps
    and probes fell outside the window): the fit took it for a measured 0 calls/h and
    flattened the WebSocket RPC line. Too short a window gives no rate point."""
    run = make_run(overrides={"ws_10w": {
        "wallets": 335, "sim_duration_s": 30.0,
        "api_calls": {"explorer": 0, "rpc_http": 0, "rpc_ws": 0},
        "explorer_calls_per_hour": 0.0}})
    ws = {m.mode: m for m in mode_costs(load_run(run), load_criteria().cost)}["websocket"]
    base = {m.mode: m for m in mode_costs(load_run(make_run()), load_criteria().cost)}
    assert ws.rpc_per_month == pytest.approx(base["websocket"].rpc_per_month)
