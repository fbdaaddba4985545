"""The verdict as a tool: --json with every gate and its bound, --exit-code, and fault
windows drawn without overlap and never outside the measured window."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_run

from reports.cli import EXIT_CODES, main
from reports.figures import fault_spans, label_rows


def test_build_json_has_the_verdict_and_every_gate_with_its_bound(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    out = tmp_path / "verdict.json"
    assert main(["build", str(run), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["verdict"] == "GO" and doc["reasons"] and doc["run_id"] == run.name
    missed = [g for g in doc["gates"] if g["expr"] == "missed_pct < 1"
              and g["scenario"] == "ws_drop"]
    assert missed and missed[0]["bound"]["events"] == 1 and missed[0]["bound"]["trials"] == 600
    assert missed[0]["bound"]["upper"] < 0.01 and "1 missed in 600 trades" in missed[0]["note"]


@pytest.mark.parametrize(("override", "verdict"), [
    ({}, "GO"),
    ({"ws_drop": {"duplicates": 3}}, "NO-GO"),
    ({"ws_drop": {"status": "harness_error", "error": "boom"}}, "INCONCLUSIVE"),
    ({"ws_healthy": {"trades": 100, "detected": 100, "late": 0}}, "INCONCLUSIVE"),
])
def test_exit_code_follows_the_verdict_only_when_asked(tmp_path: Path, override: Any,
                                                       verdict: str) -> None:
    run = build_run(tmp_path, overrides=override)
    assert main(["build", str(run), "--exit-code"]) == EXIT_CODES[verdict]
    assert main(["build", str(run)]) == 0


def test_too_few_trades_make_the_miss_gate_undecided_and_say_what_would_decide(
        tmp_path: Path) -> None:
    run = build_run(tmp_path, overrides={"ws_healthy": {"trades": 100, "detected": 100}})
    out = tmp_path / "v.json"
    main(["build", str(run), "--json", str(out)])
    doc = json.loads(out.read_text())
    gate = next(g for g in doc["gates"] if g["scenario"] == "ws_healthy"
                and g["expr"] == "missed_pct < 1")
    assert gate["passed"] is None and "more trades" in gate["note"]
    assert any("ws_healthy" in r and "undecided" in r for r in doc["reasons"])


def test_faults_after_the_measured_window_are_not_drawn_and_counted() -> None:
    spans, outside = fault_spans([
        {"name": "ws_refuse", "start_s": 40, "stop_s": 130},
        {"name": "ws_refuse", "start_s": 490, "stop_s": 580},
        {"name": "ws_refuse", "start_s": 940, "stop_s": 1030}], 900.0)
    assert outside == 1 and [s[:2] for s in spans] == [(40.0, 130.0), (490.0, 580.0)]
    clipped, _ = fault_spans([{"name": "x", "start_s": 850, "stop_s": 1000}], 900.0)
    assert clipped == [(850.0, 900.0, "x")]


def test_fault_labels_never_overlap() -> None:
    spans = [(float(t), float(t) + 2, "ws_drop") for t in range(0, 300, 5)]
    placed = label_rows(spans, 300.0, chars=110, rows=3)
    width = 300.0 / 110
    by_row: dict[int, list[float]] = {}
    for x, row, text in placed:
        if text:
            by_row.setdefault(row, []).append(x)
    for xs in by_row.values():
        xs.sort()
        assert all(b - a >= 8 * width for a, b in itertools.pairwise(xs))
    assert any(text for _, _, text in placed) and any(not text for _, _, text in placed)


def test_rollout_trades_per_phase_come_from_the_bound_the_pilot_needs(tmp_path: Path) -> None:
    from experiments.confidence import upper_bound
    from reports.criteria import load_criteria
    from reports.load import load_run
    from reports.rollout import plan_rollout
    from reports.verdict import Verdict
    plan = plan_rollout(load_run(build_run(tmp_path)), Verdict.GO, load_criteria())
    text = json.dumps([p.__dict__ if hasattr(p, "__dict__") else str(p) for p in plan.phases],
                      default=str)
    assert "300 trades" in text  # max(299 from the bound, min_trades_per_phase 300)
    # the bound (0.9937 %) shown rounded up, never down: "< 0.99 %" claimed more than the
    # 300 trades bound
    assert "miss rate < 1.00% at 95 %" in text and upper_bound(0, 300) < 0.01
