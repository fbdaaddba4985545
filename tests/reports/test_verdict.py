"""Verdict: critical gates first, then the score; INCONCLUSIVE when data is missing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from reports.criteria import CriteriaError, load_criteria
from reports.load import RunStoreError, load_run
from reports.verdict import Verdict, evaluate

MakeRun = Callable[..., Path]


def verdict_of(path: Path) -> tuple[Verdict, tuple[str, ...]]:
    res = evaluate(load_run(path), load_criteria())
    return res.verdict, res.reasons


def test_go_when_gates_pass_and_score_high(run_dir: Path) -> None:
    verdict, reasons = verdict_of(run_dir)
    assert verdict is Verdict.GO
    assert any("critical gates passed" in r for r in reasons)


def test_marginal_when_score_between_thresholds(make_run: MakeRun) -> None:
    # weights: 20 in all; ws_healthy p95 3 s (weight 2) and late 7.5 % (1) fail:
    # 17 / 20 = 0.85
    slow = {"latency_p95_s": 3.0, "late": 30}
    verdict, reasons = verdict_of(make_run(overrides={"ws_healthy": slow}))
    assert verdict is Verdict.MARGINAL
    assert "Failed in ws_healthy: latency_p95_s < 1s (measured 3); late_pct < 1 (measured 7.5)." \
        in reasons


def test_no_go_when_score_low(make_run: MakeRun) -> None:
    bad = {"latency_p95_s": 3.0, "late": 10, "coverage": 0.9, "uptime": 0.5,
           "explorer_calls_per_hour": 500.0}
    verdict, _ = verdict_of(make_run(overrides={"ws_healthy": bad, "ws_10w": bad}))
    assert verdict is Verdict.NO_GO


def test_no_go_when_a_critical_gate_fails(make_run: MakeRun) -> None:
    verdict, reasons = verdict_of(make_run(overrides={"ws_drop": {"duplicates": 2}}))
    assert verdict is Verdict.NO_GO
    assert reasons[0] == "Critical gate failed in ws_drop: duplicates == 0 measured 2."


def test_missed_above_one_percent_is_critical(make_run: MakeRun) -> None:
    verdict, _ = verdict_of(make_run(overrides={"ws_drop": {"missed": 4, "missed_pct": 2.0}}))
    assert verdict is Verdict.NO_GO


def test_polling_baseline_failures_do_not_block(make_run: MakeRun) -> None:
    # the baseline misses 8 %: that is the status quo, not a migration failure
    verdict, _ = verdict_of(make_run(overrides={"polling_baseline": {"missed_pct": 8.0}}))
    assert verdict is Verdict.GO


def test_inconclusive_on_harness_error(make_run: MakeRun) -> None:
    run = make_run(overrides={"ws_drop": {"status": "harness_error",
                                          "error": "simulator did not start"}})
    verdict, reasons = verdict_of(run)
    assert verdict is Verdict.INCONCLUSIVE
    assert any("ws_drop" in r and "simulator did not start" in r for r in reasons)


def test_inconclusive_on_missing_summary(make_run: MakeRun) -> None:
    run = make_run(remove=["ws_drop/summary.json"])
    # the run-level summary.json still lists it; remove it there too
    top = json.loads((run / "summary.json").read_text())
    top["scenarios"] = [s for s in top["scenarios"] if s["scenario"] != "ws_drop"]
    (run / "summary.json").write_text(json.dumps(top))
    verdict, reasons = verdict_of(run)
    assert verdict is Verdict.INCONCLUSIVE
    assert any("ws_drop" in r and "summary missing" in r for r in reasons)


def test_a_scenario_whose_folder_is_gone_is_inconclusive_though_the_run_lists_it(
        make_run: MakeRun) -> None:
    """The run's summary.json still carried its numbers: the report took them (GO)."""
    import shutil

    run = make_run()
    shutil.rmtree(run / "ws_drop")
    verdict, reasons = verdict_of(run)
    assert verdict is Verdict.INCONCLUSIVE
    assert any("ws_drop" in r and "summary missing" in r for r in reasons), reasons


@pytest.mark.parametrize("missing", ["ws_drop/outcomes.parquet", "ws_drop/sim_history.jsonl",
                                     "ws_drop/monitor_history.jsonl"])
def test_a_scenario_with_a_data_file_missing_is_inconclusive(make_run: MakeRun,
                                                             missing: str) -> None:
    verdict, reasons = verdict_of(make_run(remove=[missing]))
    assert verdict is Verdict.INCONCLUSIVE
    assert any("ws_drop" in r and "data problem" in r and missing.split("/")[1] in r
               for r in reasons), reasons


def test_a_history_of_bytes_that_are_not_utf8_is_a_data_problem_not_a_traceback(
        make_run: MakeRun) -> None:
    run = make_run()
    with (run / "ws_drop" / "monitor_history.jsonl").open("ab") as f:
        f.write(b'{"t_ns": 1, "event": "\xff\xfe"}\n')
    verdict, reasons = verdict_of(run)
    assert verdict is Verdict.INCONCLUSIVE
    assert any("monitor_history.jsonl could not be read" in r for r in reasons), reasons


def test_a_scenario_the_manifest_lists_and_the_store_lost_is_inconclusive(
        make_run: MakeRun) -> None:
    """The runner lists scenarios as objects ({"name": ...}); only names were read, so a
    scenario gone from summary.json and from disk went unnoticed."""
    import shutil

    run = make_run()
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["scenarios"] = [{"name": n, "mode": "websocket"} for n in manifest["scenarios"]]
    (run / "manifest.json").write_text(json.dumps(manifest))
    top = json.loads((run / "summary.json").read_text())
    top["scenarios"] = [s for s in top["scenarios"] if s["scenario"] != "ws_drop"]
    (run / "summary.json").write_text(json.dumps(top))
    shutil.rmtree(run / "ws_drop")
    verdict, reasons = verdict_of(run)
    assert verdict is Verdict.INCONCLUSIVE
    assert any("ws_drop" in r for r in reasons), reasons


@pytest.mark.parametrize("override,says", [
    ({"latency_p95_s": -5.0}, "latency_p95_s = -5.0 is negative"),
    ({"detected": 10}, "is not detected + late + missed + duplicates"),
    ({"uptime": 5.0}, "uptime = 5.0 is not a share"),
    ({"coverage": 7}, "coverage = 7 is not a share"),
    ({"mode": "WebSocket"}, "mode 'WebSocket' is not one of websocket, polling"),
    ({"missed": -1, "detected": 201}, "missed = -1 is not a count"),
    ({"trades": 2.5}, "trades = 2.5 is not a count"),
])
def test_an_impossible_summary_is_inconclusive_not_go(make_run: MakeRun,
                                                      override: dict, says: str) -> None:
    verdict, reasons = verdict_of(make_run(overrides={"ws_healthy": override}))
    assert verdict is Verdict.INCONCLUSIVE
    assert any("ws_healthy" in r and says in r for r in reasons), reasons


def test_the_run_summary_and_the_scenario_summary_must_agree(make_run: MakeRun) -> None:
    run = make_run()
    top = json.loads((run / "summary.json").read_text())
    for s in top["scenarios"]:
        if s["scenario"] == "ws_drop":
            s["status"], s["missed"] = "harness_error", 300
    (run / "summary.json").write_text(json.dumps(top))
    verdict, reasons = verdict_of(run)
    assert verdict is Verdict.INCONCLUSIVE
    assert any("ws_drop" in r and "the run's summary.json says status = harness_error" in r
               for r in reasons), reasons


def test_inconclusive_on_missing_metric(make_run: MakeRun) -> None:
    verdict, reasons = verdict_of(make_run(overrides={"ws_healthy": {"coverage": None}}))
    assert verdict is Verdict.INCONCLUSIVE
    assert any("coverage" in r and "not measured" in r for r in reasons)


def test_inconclusive_without_websocket_scenarios(make_run: MakeRun) -> None:
    from report_fixtures import SCENARIOS

    run = make_run(scenarios=[s for s in SCENARIOS if s["mode"] == "polling"])
    verdict, reasons = verdict_of(run)
    assert verdict is Verdict.INCONCLUSIVE
    assert any("No websocket scenario" in r for r in reasons)


def test_empty_run_directory_is_inconclusive(tmp_path: Path) -> None:
    verdict, _ = verdict_of(tmp_path)
    assert verdict is Verdict.INCONCLUSIVE


def test_scenario_thresholds_are_taken_as_the_analysis_wrote_them(make_run: MakeRun) -> None:
    # evaluated once, by the analysis: the report does not evaluate them a second time
    thr = [{"expr": "latency_p99_s < 0.1", "passed": True, "value": 0.05},
           {"expr": "reconnects >= 1", "passed": None, "value": None}]
    # (the summary's own p99 as written beside it: a pass its numbers fail is a problem)
    res = evaluate(load_run(make_run(overrides={"ws_healthy": {"thresholds": thr,
                                                               "latency_p99_s": 0.05}})),
                   load_criteria())
    check = next(c for c in res.checks if c.expr == "latency_p99_s < 0.1")
    assert (check.passed, check.value, check.note) == (True, 0.05, "")
    unknown = next(c for c in res.checks if c.expr == "reconnects >= 1")
    assert unknown.passed is None and unknown.note == "reconnects not measured"
    assert res.verdict is Verdict.INCONCLUSIVE


def test_criteria_rules_use_the_experiments_grammar_and_derived_metrics(
        make_run: MakeRun) -> None:
    res = evaluate(load_run(make_run()), load_criteria())
    late = next(c for c in res.checks if c.scenario == "ws_healthy" and c.expr == "late_pct < 1")
    assert late.passed is True and late.value == 0.0


def test_a_criteria_rule_for_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    """``modes = ["websockets"]`` applied the rule to no scenario, silently (GO)."""
    bad = tmp_path / "c.toml"
    bad.write_text('[[rule]]\nexpr = "missed_pct < 1"\ncritical = true\n'
                   'modes = ["websockets"]\n')
    with pytest.raises(CriteriaError, match=r"rule\[0\]\.modes: unknown mode 'websockets'"):
        load_criteria(bad)


def test_a_stored_threshold_that_does_not_parse_is_unknown_whatever_it_says(
        make_run: MakeRun) -> None:
    thr = [{"expr": "latency is fine", "passed": True, "value": 1.0}]
    res = evaluate(load_run(make_run(overrides={"ws_healthy": {"thresholds": thr}})),
                   load_criteria())
    check = next(c for c in res.checks if c.expr == "latency is fine")
    assert check.passed is None and check.note == "expression not understood"
    assert res.verdict is Verdict.INCONCLUSIVE


def test_bad_criteria_file_names_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text('[[rule]]\nexpr = "latency is low"\n')
    with pytest.raises(CriteriaError, match=r"rule\[0\]\.expr"):
        load_criteria(bad)


def test_a_folder_of_other_things_is_refused_and_nothing_written_into_it(
        tmp_path: Path) -> None:
    """``reports build /etc`` (a typo): not a run directory, exit code 2, no report.html
    left in someone else's folder."""
    import subprocess
    import sys

    (tmp_path / "notes.txt").write_text("not a run\n")
    (tmp_path / "photos").mkdir()
    with pytest.raises(RunStoreError, match="not a run directory"):
        load_run(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "reports", "build", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a run directory" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "photos"]


@pytest.mark.parametrize(("body", "says"), [
    ('[[rule]]\nname = "x"\nexpr = "missed_pct < 1"\nweight = nan\n',
     r"rule\[0\]\.weight must be a finite number >= 0, got nan"),  # NaN made the score NaN
    ("cost = 5\n", r"cost must be a table"),  # these three were AttributeError tracebacks
    ("claims = 5\n", r"claims must be a table"),
    ('verdict = "x"\n', r"verdict must be a table"),
    ('[rule]\nname = "x"\n', r"rule must be an array of tables"),
    ("[cost.explorer]\nrate_per_s = 0\n", r"cost\.explorer\.rate_per_s must be a finite "
                                          r"number > 0"),
    ("[cost]\nhours_per_month = inf\n", r"cost\.hours_per_month must be a finite"),
    ("[cost.provider]\ncompute_units_per_request = -20\n",
     r"cost\.provider\.compute_units_per_request must be a finite number >= 0"),
    ("[claims]\nlatency_before_s = [30, 15]\n", r"0 <= low <= high"),
    ('[rollout]\nphases = [["a", 500]]\n', r"each percent must be 0\.\.100"),
])
def test_criteria_numbers_and_tables_are_checked(body: str, says: str, tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(body)
    with pytest.raises(CriteriaError, match=says):
        load_criteria(f)


_RULE = '[[rule]]\nexpr = "missed_pct < 1"\n'


@pytest.mark.parametrize(("body", "says"), [
    # a typo turned a critical gate into a scored check: MARGINAL where NO-GO was due
    (_RULE + "critcal = true\n", r"rule\[0\]\.critcal: unknown key \(known: name, expr, "
                                  r"critical"),
    ("", r"no \[\[rule\]\]"), ('[[rules]]\nexpr = "missed_pct < 1"\n', r"rules: unknown key"),
    (_RULE + "[gates]\nbogus = 1\n", r"gates: unknown key"),
    (_RULE + "[verdict]\ngo_scor = 0.8\n", r"verdict\.go_scor: unknown key"),
    (_RULE + "[claims]\nlatency_after = 1\n", r"claims\.latency_after: unknown key"),
    (_RULE + "[cost.explorer]\nrate = 1\n", r"cost\.explorer\.rate: unknown key"),
    (_RULE + "[cost.provider]\nprice = 1\n", r"cost\.provider\.price: unknown key"),
    (_RULE + "[cost]\nhours = 1\n", r"cost\.hours: unknown key"),
    (_RULE + "[rollout]\nmin_trades = 1\n", r"rollout\.min_trades: unknown key"),
    ('[[rule]]\nexpr = "nosuch_metric < 1"\n', r"unknown metric 'nosuch_metric'"),
])
def test_a_key_or_metric_the_criteria_do_not_know_is_refused(
        body: str, says: str, tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(body)
    with pytest.raises(CriteriaError, match=says):
        load_criteria(f)
