"""The report and compare say no more than the data supports: a regression is anything that
makes B worse or unmeasured, counts are compared like with like, the virtual clock's
latencies are protocol latencies and its CPU and memory are not measured, a claim the
confidence bound cannot settle is not decided, and what is written is strict JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import SCENARIOS

from reports.claims import Claim, ClaimStatus, check_claims
from reports.cli import finite, main
from reports.compare import compare_runs, text_table
from reports.criteria import ClaimSettings, load_criteria
from reports.load import load_run
from reports.performance import load_budget
from reports.render import SCENARIO_COLUMNS, _scenario_rows, write_report

MakeRun = Callable[..., Path]
LIMIT_H = 100_000 / 24


def with_manifest(run: Path, **fields: Any) -> Path:
    """``run`` with ``fields`` set in its manifest.json (written as Python's json writes
    them: NaN and Infinity included)."""
    path = run / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.update(fields)
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return run


def claims(run: Path) -> dict[str, Claim]:
    return {c.topic: c for c in check_claims(load_run(run), ClaimSettings(), LIMIT_H)}


def rows_of(cmp: Any, scenario: str) -> dict[str, Any]:
    return {r.metric: r for r in cmp.rows if r.scenario == scenario}


# --- compare: what makes B worse or unmeasured is a regression --------------------------


def test_a_scenario_ok_in_a_and_a_harness_error_in_b_is_a_regression(
        make_run: MakeRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_run()
    b = make_run(overrides={"ws_drop": {"status": "harness_error", "error": "monitor died"}})
    cmp = compare_runs(load_run(a), load_run(b), load_criteria())
    assert "ws_drop: ok in A, harness_error in B (monitor died)" in cmp.regressions
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "c.html"),
                 "--fail-on-regression"]) == 1
    assert "ws_drop: ok in A, harness_error in B" in capsys.readouterr().out


def test_a_scenario_only_in_a_is_a_regression(make_run: MakeRun, tmp_path: Path) -> None:
    a = make_run()
    b = make_run(scenarios=[s for s in SCENARIOS if s["name"] != "ws_drop"])
    cmp = compare_runs(load_run(a), load_run(b), load_criteria())
    assert "ws_drop: only in A (missing from B)" in cmp.regressions
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "c.html"),
                 "--fail-on-regression"]) == 1


def test_a_verdict_drop_alone_is_a_regression(make_run: MakeRun, tmp_path: Path) -> None:
    # uptime no longer measured in B: no metric got worse, but GO became INCONCLUSIVE
    a, b = make_run(), make_run(overrides={"ws_healthy": {"uptime": None}})
    cmp = compare_runs(load_run(a), load_run(b), load_criteria())
    assert cmp.regressions == ("verdict dropped from GO to INCONCLUSIVE",)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "c.html"),
                 "--fail-on-regression"]) == 1
    assert "verdict dropped from GO to INCONCLUSIVE" in (tmp_path / "c.html").read_text()


def test_counts_pooled_over_more_seeds_are_compared_per_simulated_hour(
        make_run: MakeRun, tmp_path: Path) -> None:
    # B pooled two seeds of ws_drop, each as A's one: every count doubled, per hour the same
    a = make_run()
    pooled = {"seeds": [1, 2], "sim_duration_s": 1200.0, "trades": 1200, "detected": 1196,
              "missed": 2, "late": 2, "reconnects": 2, "fallback_s": 94.0}
    b = make_run(overrides={"ws_drop": pooled})
    cmp = compare_runs(load_run(a), load_run(b), load_criteria())
    assert cmp.regressions == ()
    drop = rows_of(cmp, "ws_drop")
    assert drop["reconnects"].label == "reconnects/h"
    assert drop["reconnects"].a == drop["reconnects"].b == pytest.approx(6.0)  # 1 in 600 s
    assert drop["missed"].status == "same" and drop["missed"].label == "missed/h"
    assert "ws_drop: seeds differ (A: 7; B: 1, 2); counts compared per simulated hour" in \
        cmp.warnings
    assert "warning: ws_drop: seeds differ" in text_table(cmp)
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "c.html"),
                 "--fail-on-regression"]) == 0
    # the same runs as raw counts: the unpooled scenarios keep their labels
    assert rows_of(cmp, "ws_healthy")["missed"].label == "missed"


def test_cpu_and_memory_are_not_compared_on_the_virtual_clock(make_run: MakeRun) -> None:
    a = with_manifest(make_run(), clock="virtual")
    b = with_manifest(make_run(overrides={"ws_healthy": {"cpu_s_per_hour": 99.0,
                                                         "rss_peak_bytes": 900_000_000}}),
                      clock="virtual")
    cmp = compare_runs(load_run(a), load_run(b), load_criteria())
    assert not [r for r in cmp.regressions if "CPU" in r or "RSS" in r]
    for metric in ("cpu_s_per_hour", "rss_peak_mb"):
        row = rows_of(cmp, "ws_healthy")[metric]
        assert (row.status, row.note) == ("not comparable", "not comparable (virtual clock)")
        assert row.a is None and row.b is None  # not measured: no number shown
    assert "not comparable (virtual clock)" in text_table(cmp)
    assert cmp.warnings == ()  # same clock, same seeds


def test_runs_on_different_clocks_warn_and_do_not_compare_latency(make_run: MakeRun) -> None:
    a = make_run()
    b = with_manifest(make_run(overrides={"ws_healthy": {"latency_p95_s": 9.0}}),
                      clock="virtual")
    cmp = compare_runs(load_run(a), load_run(b), load_criteria())
    assert cmp.warnings[0] == ("A ran on the real clock, B on the virtual clock: latency, "
                               "CPU and memory are not comparable")
    row = rows_of(cmp, "ws_healthy")["latency_p95_s"]
    assert row.status == "not comparable"
    assert row.note == "not comparable (A real clock, B virtual clock)"
    assert rows_of(cmp, "ws_healthy")["cpu_s_per_hour"].a is not None  # A measured it


# --- claims -------------------------------------------------------------------------------

SMALL_WS = [{"name": "ws_small", "mode": "websocket", "wallets": 1, "n": 82, "faults": [],
             "special": {}}]


def test_missed_claim_is_not_decided_when_the_bound_cannot_decide(make_run: MakeRun) -> None:
    # 0 missed in 82 trades: the rate is below 3.6 % at 95 %, not below 1 %
    c = claims(make_run(scenarios=SMALL_WS))["Missed trades"]
    assert c.status is ClaimStatus.NOT_DECIDED
    assert c.note.startswith("not decided: 217 more trades needed")
    assert "0 missed in 82 trades: rate < 3.6% at 95%" in c.measured_after


def test_missed_claim_is_confirmed_by_the_bound_not_the_point_estimate(
        make_run: MakeRun) -> None:
    # 1 missed of 1,400: the rate is bounded below 0.34 %
    c = claims(make_run())["Missed trades"]
    assert c.status is ClaimStatus.CONFIRMED
    assert "1 missed in 1,400 trades: rate < 0.34% at 95%" in c.measured_after


def test_a_virtual_run_never_claims_speed_1_latency(make_run: MakeRun) -> None:
    got = claims(with_manifest(make_run(), clock="virtual"))
    lat = got["Detection latency"]
    assert "speed 1" not in lat.measured_after
    assert lat.measured_after.endswith("(websocket, worst fault-free scenario in virtual time)")
    assert "protocol latency in virtual time" in lat.note
    assert "not a speed-1 measurement" in lat.note
    # a lower bound of the real latency: it cannot confirm the claim
    assert lat.status is ClaimStatus.NOT_DECIDED


def test_a_virtual_run_can_still_refute_the_latency_claim(make_run: MakeRun) -> None:
    run = with_manifest(make_run(overrides={"ws_healthy": {"latency_p95_s": 3.0}}),
                        clock="virtual")
    assert claims(run)["Detection latency"].status is ClaimStatus.REFUTED


def test_the_resource_claim_is_not_measured_on_the_virtual_clock(make_run: MakeRun) -> None:
    c = claims(with_manifest(make_run(), clock="virtual"))["Resource use"]
    assert c.status is ClaimStatus.NOT_MEASURED
    assert c.measured_before == c.measured_after == "not measured (virtual clock)"


# --- the page -------------------------------------------------------------------------------


def test_the_virtual_clock_shows_no_cpu_or_memory_figures(make_run: MakeRun,
                                                         tmp_path: Path) -> None:
    run = load_run(with_manifest(make_run(), clock="virtual"))
    headers = [c[0] for c in SCENARIO_COLUMNS]
    for row in _scenario_rows(run):
        cells = dict(zip(headers, row["cells"], strict=True))
        assert cells["CPU s/h"] == cells["RSS MB"] == "-"
        assert cells["trades"] != "-"
    _, out = write_report(run, load_criteria(), bench_dir=tmp_path / "no-bench")
    html = out.read_text(encoding="utf-8")
    assert "CPU s/h and RSS MB: not measured (virtual clock)" in html
    assert "CPU and memory not measured (virtual clock)." in html  # the figure, not drawn
    assert html.count("<img") == 3 + 5  # latency, outcomes, API calls; a timeline each
    claims_html = html.split('id="claims"')[1].split('id="rollout"')[0]
    assert "scenario at speed 1)" not in claims_html and "in virtual time)" in claims_html
    assert 'class="pill not-decided"' in claims_html


def test_a_virtual_run_is_not_the_speed_1_latency_budget(make_run: MakeRun,
                                                         tmp_path: Path) -> None:
    stages = {"trades": 77, "e2e_p50_ms": 0.0, "e2e_p99_ms": 0.0,
              "stages": [{"stage": "socket", "p50_ms": 0.0, "p99_ms": 0.0, "share_p50": 1.0,
                          "share_p99": 1.0}], "overhead": []}
    run = make_run(overrides={"ws_healthy": {"latency_stages": stages}})
    assert load_budget(load_run(run), [tmp_path]) is not None  # real clock: the run's own
    assert load_budget(load_run(with_manifest(run, clock="virtual")), [tmp_path]) is None


def test_a_pilot_of_another_shape_renders_with_dashes(make_run: MakeRun, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    run = with_manifest(make_run(), pilot={"x": 1, "uptime": {"websocket": "high"},
                                           "blocks": [5]})
    assert main(["build", str(run), "--out", str(tmp_path / "r.html")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    pilot = (tmp_path / "r.html").read_text(encoding="utf-8").split('id="pilot"')[1]
    pilot = pilot.split('id="details"')[0]
    assert '<td class="mono">-</td>' in pilot  # endpoints, truth, wallets
    assert "5 to - (finality depth -" in pilot
    assert "uptime, websocket path</th><td>unknown" in pilot


def test_a_pilot_in_the_reconcile_shape_renders_its_values(make_run: MakeRun,
                                                           tmp_path: Path) -> None:
    pilot = {"endpoints": {"websocket": "wss://ws.example", "rpc": "rpc.example",
                           "explorer": "api.example"}, "truth_rpc": "truth.example",
             "started": "2026-01-01", "last_beat": "2026-01-02", "sessions": 2,
             "wallets": ["0xaa", "0xbb"], "blocks": [10, 20], "finality_depth": 64,
             "grace_s": 120.0, "timestamp_offset_s": 0, "uptime": {"websocket": 0.99},
             "limitations": ["no faults injected"]}
    run = with_manifest(make_run(), pilot=pilot)
    _, out = write_report(load_run(run), load_criteria(), bench_dir=tmp_path / "no-bench")
    html = out.read_text(encoding="utf-8")
    for needle in ("wss://ws.example", "truth.example", "2026-01-01 to 2026-01-02 (2 session",
                   "10 to 20 (finality depth 64, last 120 s", "0xaa, 0xbb", "99 %",
                   "no faults injected"):
        assert needle in html, needle


# --- strict JSON ----------------------------------------------------------------------------


def _refuse(constant: str) -> Any:
    raise ValueError(f"not strict JSON: {constant}")


def test_build_json_is_strict_json(make_run: MakeRun, tmp_path: Path) -> None:
    nan = float("nan")
    bound = {"events": 0, "trials": 600, "confidence": 0.95, "rate": nan,
             "lower": float("-inf"), "upper": float("inf")}
    thresholds = [{"expr": "latency_p99_s < 10", "passed": True, "value": nan, "note": "",
                   "bound": bound}]
    run = with_manifest(make_run(overrides={"ws_drop": {"thresholds": thresholds}}),
                        seeds={"ws_drop": [nan, 1]}, clock=float("inf"))
    out = tmp_path / "v.json"
    assert main(["build", str(run), "--out", str(tmp_path / "r.html"), "--json", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"), parse_constant=_refuse)
    assert doc["seeds"] == {"ws_drop": [None, 1]} and doc["clock"] is None
    gate = next(g for g in doc["gates"] if g["scenario"] == "ws_drop"
                and g["expr"] == "latency_p99_s < 10")
    assert gate["bound"]["upper"] is None and gate["bound"]["lower"] is None
    assert gate["bound"]["trials"] == 600


def test_finite_turns_every_non_finite_number_into_null() -> None:
    import numpy as np

    doc = {"a": [1.5, float("nan"), (np.float64("inf"), np.int64(3))], 2: {"b": True}}
    assert finite(doc) == {"a": [1.5, None, [None, 3]], "2": {"b": True}}


def test_the_rollout_gates_take_no_basis_from_a_virtual_fault_free_latency(
        make_run: MakeRun) -> None:
    """In virtual time a fault-free latency is 0 by construction: the plan's basis read
    "websocket latency p95 (fault-free) 0 s" as if it were measured."""
    from reports.load import load_run
    from reports.rollout import plan_rollout
    from reports.verdict import Verdict

    real = plan_rollout(load_run(make_run()), Verdict.GO, load_criteria())
    assert any(b.startswith("websocket latency p95 (fault-free) ") and "not measured" not in b
               for b in real.basis)
    virtual = plan_rollout(load_run(with_manifest(make_run(), clock="virtual")), Verdict.GO,
                           load_criteria())
    assert "websocket latency p95 (fault-free): not measured in virtual time" in virtual.basis
    assert any("(virtual time: protocol latency only)" in b for b in virtual.basis)
