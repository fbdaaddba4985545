"""compare: each metric side by side with its change; regressions flagged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from reports.cli import main
from reports.compare import compare_runs, render_compare, text_table
from reports.criteria import load_criteria
from reports.load import load_run

MakeRun = Callable[..., Path]


def test_identical_runs_have_no_regression(make_run: MakeRun) -> None:
    cmp = compare_runs(load_run(make_run()), load_run(make_run()), load_criteria())
    assert cmp.regressions == ()
    assert {r.status for r in cmp.rows} == {"same"}


def test_regressions_are_flagged(make_run: MakeRun) -> None:
    a = make_run()
    b = make_run(overrides={"ws_drop": {"latency_p95_s": 1.2, "missed": 2, "uptime": 1.0},
                            "ws_healthy": {"latency_p50_s": 0.2901}})
    cmp = compare_runs(load_run(a), load_run(b), load_criteria(), tolerance=0.10)
    flagged = {(r.scenario, r.metric) for r in cmp.metric_regressions}
    assert ("ws_drop", "latency_p95_s") in flagged  # 0.578 -> 1.2 s: +108 %
    assert ("ws_drop", "missed") in flagged  # any increase in missed counts
    # +1.7 % is inside the tolerance; uptime 0.9 -> 1.0 is better
    assert ("ws_healthy", "latency_p50_s") not in flagged
    uptime = next(r for r in cmp.rows if r.scenario == "ws_drop" and r.metric == "uptime")
    assert uptime.status == "better"
    assert uptime.change == pytest.approx(0.1)
    table = text_table(cmp)
    assert "REGRESSION" in table and "regression(s)" in table
    html = render_compare(cmp)
    assert 'class="pill regression"' in html


def test_scenarios_only_in_one_run_are_listed(make_run: MakeRun) -> None:
    from report_fixtures import SCENARIOS

    a = make_run(scenarios=SCENARIOS[:3])
    b = make_run(scenarios=SCENARIOS[1:])
    cmp = compare_runs(load_run(a), load_run(b), load_criteria())
    assert cmp.only_a == ("polling_baseline",)
    assert cmp.only_b == ("ws_drop", "ws_10w")


def test_compare_cli_writes_html_and_fails_on_regression(make_run: MakeRun, tmp_path: Path,
                                                          capsys: object) -> None:
    a = make_run()
    b = make_run(overrides={"ws_healthy": {"duplicates": 1}})
    out = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    assert main(["compare", str(a), str(b), "--out", str(out), "--fail-on-regression"]) == 1
    text = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "REGRESSION" in text and f"report: {out}" in text
    assert "NO-GO" in out.read_text()


def test_compare_bad_tolerance_exit_2(make_run: MakeRun, capsys: object) -> None:
    a = make_run()
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(a), str(a), "--tolerance", "lots"])
    assert exc.value.code == 2
    assert "not a number" in capsys.readouterr().err  # type: ignore[attr-defined]
