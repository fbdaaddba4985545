"""The report read as a trader reads it before a real-money migration: every figure the page
shows says what it was measured under (the replay speed), an INCONCLUSIVE run says what to
do about it (too few trades is not a broken harness), and two sections never give two
numbers for the same thing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import SCENARIOS

from reports import figures
from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import SCENARIO_COLUMNS, _scenario_rows, build_report
from reports.verdict import Verdict

MakeRun = Callable[..., Path]


def _cells(run_dir: Path) -> dict[str, dict[str, str]]:
    headers = [c[0] for c in SCENARIO_COLUMNS]
    return {row["name"]: dict(zip(headers, row["cells"], strict=True))
            for row in _scenario_rows(load_run(run_dir))}


def _set_manifest(run: Path, **fields: Any) -> Path:
    path = run / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(fields)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return run


# --- the replay speed is on the page ----------------------------------------------------------


def test_the_scenario_table_shows_the_speed_each_latency_was_measured_at(
        make_run: MakeRun) -> None:
    """A scenario replayed at speed 40 multiplies the monitor's own processing time by 40 in
    its (simulated-second) latencies: the table must say so, or 0.55 s at speed 40 reads
    as the speed-1 figure."""
    cells = _cells(make_run(overrides={"ws_10w": {"speed": 40.0}}))
    assert cells["ws_10w"]["speed"] == "40"
    assert cells["ws_healthy"]["speed"] == "1"


def test_the_virtual_clock_shows_virtual_not_a_speed(make_run: MakeRun) -> None:
    cells = _cells(_set_manifest(make_run(), clock="virtual"))
    assert {c["speed"] for c in cells.values()} == {"virtual"}


# --- an INCONCLUSIVE run says what to do --------------------------------------------------------


def _few_trades() -> list[dict[str, Any]]:
    """The default scenarios with 40 trades per websocket scenario and no miss: every
    miss-rate gate is undecided (0 in 40 bounds the rate only below ~7 %)."""
    out = []
    for spec in SCENARIOS:
        spec = dict(spec)
        if spec["mode"] == "websocket":
            spec["n"], spec["special"] = 40, {}
        out.append(spec)
    return out


def test_an_inconclusive_run_with_too_few_trades_is_told_to_run_longer_not_to_repair(
        make_run: MakeRun, tmp_path: Path) -> None:
    report = build_report(load_run(make_run(scenarios=_few_trades())), load_criteria(),
                          bench_dir=tmp_path / "no-bench")
    assert report.verdict.verdict is Verdict.INCONCLUSIVE
    rec = report.rollout.recommendation
    assert "repair the harness" not in rec
    assert "lack of trades" in rec and "Run longer" in rec


def test_an_inconclusive_run_with_a_broken_scenario_is_still_told_to_repair(
        make_run: MakeRun, tmp_path: Path) -> None:
    run = make_run(scenarios=_few_trades(),
                   overrides={"ws_10w": {"status": "harness_error", "error": "boom"}})
    report = build_report(load_run(run), load_criteria(), bench_dir=tmp_path / "no-bench")
    assert report.verdict.verdict is Verdict.INCONCLUSIVE
    assert "repair the harness" in report.rollout.recommendation


# --- one number for "wallets before the explorer's limit" ---------------------------------------


def _polling_at_two_intervals() -> list[dict[str, Any]]:
    """Polling as the quick matrix measures it: 10 wallets every 15 s (240 calls/h per
    wallet), 10 wallets every 30 s (120) and 100 wallets every 15 s past the explorer's
    limiter (the round stretched: 9,560 calls/h, 95.6 per wallet)."""
    ws = [s for s in SCENARIOS if s["mode"] == "websocket"]
    return [
        {"name": "polling_15s", "mode": "polling", "wallets": 10, "n": 60, "faults": [],
         "special": {}},
        {"name": "polling_30s", "mode": "polling", "wallets": 10, "n": 60, "faults": [],
         "special": {}},
        {"name": "many_wallets_polling", "mode": "polling", "wallets": 100, "n": 60,
         "faults": [], "special": {}},
        *ws,
    ]


def test_polling_cost_and_the_wallets_claim_give_one_explorer_limit(
        make_run: MakeRun, tmp_path: Path) -> None:
    """The claims said polling reaches the explorer's limit at ~17 wallets, the cost table
    ~43 (a line fitted through two intervals and a capped point, with a fixed part polling
    does not have: ~1,100 calls/h for a single wallet polled every 15 s, 240 in truth)."""
    run = make_run(scenarios=_polling_at_two_intervals(),
                   overrides={"polling_30s": {"explorer_calls_per_hour": 1200.0},
                              "many_wallets_polling": {"explorer_calls_per_hour": 9560.0}})
    report = build_report(load_run(run), load_criteria(), bench_dir=tmp_path / "no-bench")
    poll = next(m for m in report.costs if m.mode == "polling")
    limit_h = 100_000 / 24
    assert poll.explorer_limit_wallets == pytest.approx(limit_h / 240)
    claim = next(c for c in report.claims if c.topic == "Wallets per process")
    assert claim.measured_before == f"~{limit_h / 240:,.0f} wallets"
    grid = {w: row for w, *row in poll.by_wallets}
    assert grid[1][0] == pytest.approx(240 * 730)  # one wallet, a month
    assert grid[10][0] == pytest.approx(2400 * 730)  # as measured at 15 s


def test_the_wallets_claim_says_its_websocket_figure_is_under_faults(
        make_run: MakeRun) -> None:
    """Websocket's capacity comes from its highest explorer rate, ws_drop's fallback
    polling (24 calls/h for 1 wallet): '~174 wallets' beside 'largest run: 10 wallets'
    and the cost table's 'not in reach' read as a contradiction unless the note says so."""
    report_claims = build_report(load_run(make_run()), load_criteria()).claims
    claim = next(c for c in report_claims if c.topic == "Wallets per process")
    assert claim.measured_after.startswith(f"~{(100_000 / 24) / 24:,.0f} wallets")
    assert "ws_drop's, while a fault forces the explorer fallback" in claim.note
    assert "(without faults: ~694 wallets)" in claim.note


# --- the figures say what they show -------------------------------------------------------------


def _texts(fig: Any) -> str:
    out = []
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return "\n".join(out)


def test_the_api_calls_figure_labels_the_limits_it_draws(run_dir: Path) -> None:
    """The lines come from the criteria's explorer plan; the labels said '3/s' and '100k/day'
    whatever plan was drawn."""
    fig = figures.api_calls(load_run(run_dir), rate_limit_per_hour=5 * 3600.0,
                            daily_limit_per_hour=50_000 / 24)
    text = _texts(fig)
    assert "5/s rate limit = 18,000/h" in text and "50,000/day = 2,083/h" in text
    assert "3/s" not in text and "100k" not in text


def test_the_latency_ecdf_says_it_pools_the_fault_scenarios(run_dir: Path) -> None:
    """Its websocket p95 pools every scenario, faults included: next to the claims'
    fault-free p95 it read as a second, contradicting figure for the same thing."""
    text = _texts(figures.latency_ecdf(load_run(run_dir)))
    assert "websocket, every scenario, faults included (n=" in text


def test_the_timeline_names_its_actionable_line(run_dir: Path) -> None:
    sc = load_run(run_dir).scenario("ws_drop")
    assert "actionable 5 s" in _texts(figures.latency_timeline(sc))


# --- the claims say how they were measured ------------------------------------------------------


def test_the_polling_baseline_shows_the_spread_behind_its_mean(make_run: MakeRun) -> None:
    """'171 /h (polling)' averaged a 15-s run (240 /h per wallet), a 30-s run (120) and a
    capped many-wallets run (95.6): one number that is none of today's polling."""
    run = make_run(scenarios=_polling_at_two_intervals(),
                   overrides={"polling_30s": {"explorer_calls_per_hour": 1200.0,
                                              "latency_p50_s": 30.0},
                              "many_wallets_polling": {"explorer_calls_per_hour": 9560.0}})
    report = build_report(load_run(run), load_criteria())
    claim = next(c for c in report.claims if c.topic == "Explorer calls per wallet")
    assert claim.measured_before == "152 /h (polling, mean of 3 scenarios: 95.6-240 /h)"
    lat = next(c for c in report.claims if c.topic == "Detection latency")
    assert lat.measured_before.startswith("p50 ")
    assert lat.measured_before.endswith("(polling, mean of 3 scenarios: 21.4-30 s)")


def test_a_pooled_missed_confirmation_names_the_scenarios_the_verdict_cannot_decide(
        make_run: MakeRun, tmp_path: Path) -> None:
    """1,200 websocket trades without a miss confirm '< 1 %' pooled, while each scenario's
    own gate (40 trades in one of them) is undecided and the banner says INCONCLUSIVE:
    the claim must say why the two differ."""
    specs = [dict(s, n=40, special={}) if s["name"] == "ws_10w" else
             dict(s, special={}) if s["mode"] == "websocket" else s for s in SCENARIOS]
    report = build_report(load_run(make_run(scenarios=specs)), load_criteria(),
                          bench_dir=tmp_path / "no-bench")
    assert report.verdict.verdict is Verdict.INCONCLUSIVE
    claim = next(c for c in report.claims if c.topic == "Missed trades")
    assert claim.status.value == "confirmed"
    assert "the verdict gates each on its own, and 1 of them hold too few trades" in claim.note
    assert "(ws_10w)" in claim.note


def test_the_resource_figure_draws_no_cpu_on_the_virtual_clock(make_run: MakeRun) -> None:
    """The notebook draws figures.resources as it is: on the virtual clock it drew the one
    process's CPU (simulator and monitor together) as each scenario's, where the report
    says 'not measured'."""
    run = load_run(_set_manifest(make_run(), clock="virtual"))
    fig = figures.resources(run)
    assert not any(ax.patches for ax in fig.axes)  # no bars
    assert "CPU and memory not measured (virtual clock)." in _texts(fig)
    assert any(ax.patches for ax in figures.resources(load_run(make_run())).axes)


# --- the rollout plan ---------------------------------------------------------------------------


def test_the_rollout_rounds_the_hours_a_phase_needs_up(make_run: MakeRun) -> None:
    """300 trades at 120 trades/h for one wallet take 2.5 h: the plan said '~2 h'."""
    from reports.rollout import plan_rollout

    # 400 trades each: in 12,000 s for one wallet, in 1,200 s for ten: 120 /h per wallet
    run = load_run(make_run(overrides={"ws_healthy": {"sim_duration_s": 12_000.0},
                                       "ws_10w": {"sim_duration_s": 1_200.0}}))
    plan = plan_rollout(run, Verdict.GO, load_criteria())
    assert "(~3 h for one wallet at the measured rate)" in plan.phases[0].duration


def test_the_rollout_says_when_the_run_would_fail_its_own_fault_gate(
        make_run: MakeRun) -> None:
    """Measured 17.3 s p95 during faults, gate '<= 5 s while the provider misbehaves':
    the basis must say the gate is held at the actionable window and the run fails it."""
    from reports.rollout import plan_rollout

    run = load_run(make_run(overrides={"ws_drop": {"latency_p95_in_fault_s": 17.3}}))
    plan = plan_rollout(run, Verdict.GO, load_criteria())
    basis = "; ".join(plan.basis)
    assert "latency p95 during faults 17.3 s (above the 5-s actionable window" in basis
    assert "held at 5 s, which this run would not pass" in basis
    assert "1,320 trades/h per wallet" in basis  # was 1.32e+03
