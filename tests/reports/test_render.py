"""report.html: self-contained, escaped, and it renders whatever is missing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_run

from reports.cli import main
from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import write_report

MakeRun = Callable[..., Path]
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def build(path: Path) -> str:
    _, out = write_report(load_run(path), load_criteria())
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def default_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    """The default run, its report (built once for this module) and its summary before."""
    run = build_run(tmp_path_factory.mktemp("store"))
    before = json.loads((run / "summary.json").read_text())
    return run, build(run), before


def test_report_is_self_contained(default_report: tuple[Path, str, dict[str, Any]]) -> None:
    html = default_report[1]
    assert 'class="banner v-GO"' in html
    # every image is embedded, nothing is fetched
    srcs = re.findall(r'<img[^>]*src="([^"]*)"', html)
    assert len(srcs) == 4 + 5  # four run figures + one timeline per scenario
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@import" not in html and "stylesheet" not in html
    assert re.findall(r"<link[^>]*>", html) == ['<link rel="icon" href="data:,">']
    assert 'name="viewport"' in html


def test_report_sections(default_report: tuple[Path, str, dict[str, Any]]) -> None:
    html = default_report[1]
    for needle in ("Detection latency", "Missed trades", "Rollout plan", "Phase 1", "10%",
                   "50%", "100%", "Thresholds", "The worst trades", "Cost",
                   "python -m experiments run --quick --out results", "0123456789abcdef0123",
                   'href="#sc-5"', "ws_drop"):
        assert needle in html, needle


def test_chain_and_config_text_is_escaped(make_run: MakeRun) -> None:
    run = make_run(description=EVIL,
                   overrides={"ws_drop": {"faults": [{"name": "<b>drop</b>", "start_s": 200.0,
                                                      "stop_s": 260.0}]}})
    html = build(run)
    assert EVIL not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;b&gt;drop&lt;/b&gt;" in html
    # the page's own one inline script is the only script element
    assert html.count("<script>") == 1


def test_token_name_from_the_chain_is_escaped(make_run: MakeRun) -> None:
    import pandas as pd

    run = make_run()
    path = run / "ws_drop" / "outcomes.parquet"
    df = pd.read_parquet(path)
    df.loc[df["outcome"] == "missed", "wallet"] = "<script>steal()</script>"
    df.to_parquet(path, index=False)
    html = build(run)
    assert "<script>steal()" not in html
    assert "&lt;script&gt;st" in html


def test_harness_error_renders_inconclusive(make_run: MakeRun) -> None:
    run = make_run(overrides={"ws_drop": {"status": "harness_error",
                                          "error": "monitor exited with code 1 <oops>"}})
    html = build(run)
    assert 'class="banner v-INCONCLUSIVE"' in html
    assert "monitor exited with code 1 &lt;oops&gt;" in html


def test_missing_files_render_inconclusive(make_run: MakeRun) -> None:
    run = make_run(remove=["manifest.json", "summary.json", "ws_drop/summary.json",
                           "ws_healthy/outcomes.parquet", "ws_10w/monitor_history.jsonl"])
    (run / "ws_10w" / "sim_history.jsonl").write_text("{not json\n")
    html = build(run)
    assert 'class="banner v-INCONCLUSIVE"' in html
    assert "manifest.json is missing" in html
    assert "outcomes.parquet is missing" in html


def test_a_damaged_history_is_a_problem_naming_its_line(make_run: MakeRun) -> None:
    run = make_run()
    hist = run / "ws_drop" / "monitor_history.jsonl"
    lines = hist.read_text(encoding="utf-8").splitlines()
    hist.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n", encoding="utf-8")
    sc = load_run(run).scenario("ws_drop")
    assert sc.monitor_history is None
    assert "monitor_history.jsonl is damaged at line 2: not JSON" in " ".join(sc.problems)


def test_cli_prints_verdict_and_path(run_dir: Path, capsys: object) -> None:
    assert main(["build", str(run_dir)]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.splitlines()[0].startswith("VERDICT GO (score 1.000)")
    assert f"report: {run_dir.resolve() / 'report.html'}" in out


def test_cli_bad_arguments_exit_2(tmp_path: Path, capsys: object) -> None:
    assert main(["build", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.count("\n") == 1 and "not a run directory" in err
    bad = tmp_path / "c.toml"
    bad.write_text("[verdict\n")
    assert main(["build", str(tmp_path), "--criteria", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err  # type: ignore[attr-defined]


def test_cli_usage_error_exit_2(capsys: object) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["explode"])
    assert exc.value.code == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert len(err.strip().splitlines()) == 1 and "invalid choice" in err


def test_summary_json_in_the_store_is_not_modified(
        default_report: tuple[Path, str, dict[str, Any]]) -> None:
    run, _, before = default_report
    assert json.loads((run / "summary.json").read_text()) == before


def test_a_timeline_without_a_positive_latency_draws_without_a_warning(
        tmp_path: Path) -> None:
    # virtual time: every latency 0, nothing to draw on the log axis, and matplotlib's
    # "No artists with labels found" went to the terminal of every `reports build`
    import warnings

    from reports.figures import latency_timeline

    run = load_run(build_run(tmp_path))
    sc = next(s for s in run.scenarios if s.outcomes is not None and not s.outcomes.empty)
    sc.outcomes["latency_s"] = 0.0
    sc.outcomes["outcome"] = "detected"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = latency_timeline(sc)
    assert fig.axes
