"""A scenario whose data the report cannot trust (a data problem: files damaged, changed
after the analysis, or contradicting its summary) is not 'ok' for any section. The
verdict left it out, but the claims, cost, rollout and figures took it by its status
alone: a damaged polling baseline (no gate of its own, so the verdict stayed GO) was still
the 'before' of the claims."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reports.claims import check_claims
from reports.criteria import ClaimSettings
from reports.load import load_run

MakeRun = Callable[..., Path]
LIMIT_H = 100_000 / 24


def _latency_before(run_dir: Path) -> str:
    got = {c.topic: c for c in check_claims(load_run(run_dir), ClaimSettings(), LIMIT_H)}
    return got["Detection latency"].measured_before


def test_a_polling_scenario_with_a_data_problem_is_no_baseline(make_run: MakeRun) -> None:
    run_dir = make_run()
    assert "mean of 2 scenarios" in _latency_before(run_dir)
    (run_dir / "polling_10w" / "outcomes.parquet").write_bytes(b"PAR1 damaged")
    run = load_run(run_dir)
    sc = run.scenario("polling_10w")
    assert sc.status == "ok" and sc.problems
    assert not sc.ok
    assert "mean of" not in _latency_before(run_dir)  # the baseline alone now
