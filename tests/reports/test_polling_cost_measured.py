"""The cost section uses the polling cost benchmark's measured points when its results
file exists (and says which file), and the fit across scenarios when it does not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.cost import POLLING_COST_FILE, load_measured_polling, mode_costs
from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import write_report

# shaped as benchmarks/test_polling_cost_bench.py writes it (a few of its keys)
POINTS = [
    {"wallets": 1, "explorer_calls_per_hour": 484.0, "round_s": 15.0, "latency_p50_s": 14.3,
     "latency_p99_s": 23.3, "late_pct": 95.0, "over_30s_pct": 0.0, "missed": 0},
    {"wallets": 10, "explorer_calls_per_hour": 2644.0, "round_s": 15.0, "latency_p50_s": 15.3,
     "latency_p99_s": 23.7, "late_pct": 96.0, "over_30s_pct": 0.0, "missed": 0},
    {"wallets": 40, "explorer_calls_per_hour": 9844.0, "round_s": 15.0, "latency_p50_s": 16.0,
     "latency_p99_s": 30.2, "late_pct": 97.0, "over_30s_pct": 1.0, "missed": 0},
    {"wallets": 120, "explorer_calls_per_hour": 10804.0, "round_s": 40.3,
     "latency_p50_s": 35.0, "latency_p99_s": 72.0, "late_pct": 99.0, "over_30s_pct": 61.1,
     "missed": 0},
]


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    d = tmp_path / "bench"
    d.mkdir()
    (d / POLLING_COST_FILE).write_text(json.dumps({
        "benchmark": "polling_cost", "created": "2026-01-01T00:00:00Z", "clock": "virtual",
        "interval_s": 15.0, "keeps_interval_up_to": 40, "points": POINTS,
        "figures": []}))
    return d


def test_measured_points_interpolate_and_hold_past_the_last(bench_dir: Path) -> None:
    m = load_measured_polling(bench_dir / POLLING_COST_FILE)
    assert m is not None and m.wallets == (1, 10, 40, 120)
    assert m.explorer_at(10) == pytest.approx(2644.0)
    assert m.explorer_at(25) == pytest.approx((2644.0 + 9844.0) / 2)
    assert m.explorer_at(1000) == pytest.approx(10804.0)  # capped by the limiter
    assert m.wallets_at(10_800) == pytest.approx(40 + 80 * (10_800 - 9844) / (10804 - 9844))
    assert m.wallets_at(50_000) is None


def test_absent_or_broken_file_is_none(tmp_path: Path) -> None:
    assert load_measured_polling(tmp_path / POLLING_COST_FILE) is None
    (tmp_path / POLLING_COST_FILE).write_text("{not json")
    assert load_measured_polling(tmp_path / POLLING_COST_FILE) is None


def test_cost_uses_the_measured_points(run_dir: Path, bench_dir: Path) -> None:
    cs = load_criteria().cost
    measured = load_measured_polling(bench_dir / POLLING_COST_FILE)
    costs = {m.mode: m for m in mode_costs(load_run(run_dir), cs, measured)}
    poll = costs["polling"]
    assert poll.measured is measured
    grid = {w: row for w, *row in poll.by_wallets}
    assert grid[10][0] == pytest.approx(2644.0 * cs.hours_per_month)
    assert grid[1000][0] == pytest.approx(10804.0 * cs.hours_per_month)
    # the daily limit (100,000/day = 4,167/h) is crossed between 10 and 40 wallets
    assert 10 < (poll.explorer_limit_wallets or 0) < 40
    assert costs["websocket"].measured is None
    # without the file: the fit, as before
    assert mode_costs(load_run(run_dir), cs)[0].measured is None


def test_report_names_the_file_or_says_to_run_make_bench(run_dir: Path, bench_dir: Path,
                                                         tmp_path: Path) -> None:
    _, out = write_report(load_run(run_dir), load_criteria(), bench_dir=bench_dir)
    html = out.read_text()
    assert "Polling cost, measured" in html
    assert str(bench_dir / POLLING_COST_FILE) in html
    assert "Polling kept its interval up to 40 wallets" in html
    empty = tmp_path / "empty"
    empty.mkdir()
    _, out = write_report(load_run(run_dir), load_criteria(), bench_dir=empty)
    html = out.read_text()
    assert "Polling cost, measured" not in html
    assert "No measured polling cost found" in html
