"""Claims table: each claim confirmed, refuted or not measured, with the numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reports.claims import ClaimStatus, check_claims
from reports.criteria import ClaimSettings
from reports.load import load_run

MakeRun = Callable[..., Path]
LIMIT_H = 100_000 / 24


def claims(path: Path) -> dict[str, object]:
    return {c.topic: c for c in check_claims(load_run(path), ClaimSettings(), LIMIT_H)}


def test_all_claims_confirmed_on_the_default_run(run_dir: Path) -> None:
    got = claims(run_dir)
    assert [c.status for c in got.values()] == [ClaimStatus.CONFIRMED] * 5  # type: ignore[attr-defined]
    lat = got["Detection latency"]
    assert "p50 20.9 s" in lat.measured_before  # type: ignore[attr-defined]
    assert lat.measured_after.startswith("p95 0.5")  # type: ignore[attr-defined]
    # 1 missed of 1,400 websocket trades (400 + 600 + 400)
    assert got["Missed trades"].measured_after.startswith("0.0714 %")  # type: ignore[attr-defined]
    # polling: 240 explorer calls/h per wallet -> 4,167/h budget -> ~17 wallets
    assert got["Wallets per process"].measured_before == "~17 wallets"  # type: ignore[attr-defined]


def test_refuted_when_websocket_is_slow_and_chatty(make_run: MakeRun) -> None:
    over = {"latency_p95_s": 2.5, "explorer_calls_per_hour": 300.0, "cpu_s_per_hour": 99.0}
    got = claims(make_run(overrides={"ws_healthy": over}))
    assert got["Detection latency"].status is ClaimStatus.REFUTED  # type: ignore[attr-defined]
    assert got["Explorer calls per wallet"].status is ClaimStatus.REFUTED  # type: ignore[attr-defined]
    assert got["Resource use"].status is ClaimStatus.REFUTED  # type: ignore[attr-defined]
    assert got["Missed trades"].status is ClaimStatus.CONFIRMED  # type: ignore[attr-defined]


def test_missed_claim_refuted_above_one_percent(make_run: MakeRun) -> None:
    got = claims(make_run(overrides={"ws_drop": {"missed": 56}}))
    # 56 missed of 1,400 websocket trades = 4 %
    assert got["Missed trades"].status is ClaimStatus.REFUTED  # type: ignore[attr-defined]
    assert got["Missed trades"].measured_after.startswith("4 %")  # type: ignore[attr-defined]


def test_not_measured_without_a_baseline(make_run: MakeRun) -> None:
    from report_fixtures import SCENARIOS

    got = claims(make_run(scenarios=[s for s in SCENARIOS if s["mode"] == "websocket"]))
    assert got["Resource use"].status is ClaimStatus.NOT_MEASURED  # type: ignore[attr-defined]
    assert got["Wallets per process"].status is ClaimStatus.NOT_MEASURED  # type: ignore[attr-defined]
    assert "not measured" in got["Detection latency"].measured_before  # type: ignore[attr-defined]


def test_not_measured_when_websocket_scenarios_failed(make_run: MakeRun) -> None:
    err = {"status": "harness_error", "error": "boom"}
    got = claims(make_run(overrides={"ws_healthy": err, "ws_drop": err, "ws_10w": err}))
    assert all(c.status is ClaimStatus.NOT_MEASURED for c in got.values())  # type: ignore[attr-defined]


def test_speed_above_one_is_noted(make_run: MakeRun) -> None:
    fast = {"speed": 10.0}
    got = claims(make_run(overrides={"ws_healthy": fast, "ws_10w": fast}))
    assert "speed 10" in got["Detection latency"].note  # type: ignore[attr-defined]


def test_latency_claim_prefers_speed_one(make_run: MakeRun) -> None:
    # at speed 10 processing time is inflated 10x: the speed-1 scenario decides
    got = claims(make_run(overrides={"ws_healthy": {"speed": 10.0, "latency_p95_s": 2.5}}))
    lat = got["Detection latency"]
    assert lat.status is ClaimStatus.CONFIRMED  # type: ignore[attr-defined]
    assert lat.measured_after.startswith("p95 0.576 s")  # type: ignore[attr-defined]
    # and says so: "worst fault-free scenario" alone read as if it were every scenario's
    assert lat.measured_after.endswith(  # type: ignore[attr-defined]
        "(websocket, worst fault-free scenario at speed 1)")


def test_explorer_claim_names_the_fault_free_scope_and_the_fallback_cost(
        make_run: MakeRun) -> None:
    # the fault scenario fell back to the explorer: 600 calls/h for its wallets
    got = claims(make_run(overrides={"ws_drop": {"explorer_calls_per_hour": 600.0}}))
    c = got["Explorer calls per wallet"]
    assert c.status is ClaimStatus.CONFIRMED  # type: ignore[attr-defined]
    assert "worst fault-free scenario" in c.measured_after  # type: ignore[attr-defined]
    assert "while a fault forces the explorer fallback" in c.note  # type: ignore[attr-defined]


def test_a_window_too_short_for_a_call_rate_confirms_no_call_claim(make_run: MakeRun) -> None:
    """A --quick run's 30-s windows counted 0 explorer calls and the claim 'about 1 /h'
    read as confirmed, while the cost section refused those same windows as chance."""
    short = {"sim_duration_s": 30.0, "explorer_calls_per_hour": 0.0,
             "explorer_calls_per_hour_per_wallet": 0.0}
    run = make_run()
    names = [s.name for s in load_run(run).scenarios]
    got = claims(make_run(run_id="short", overrides={n: short for n in names}))
    c = got["Explorer calls per wallet"]
    assert c.status is ClaimStatus.NOT_MEASURED  # type: ignore[attr-defined]
    assert got["Wallets per process"].status is ClaimStatus.NOT_MEASURED  # type: ignore[attr-defined]
