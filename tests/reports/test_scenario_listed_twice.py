"""One scenario's results judged twice: the run's summary.json listing a scenario twice,
or a scenario's folder copied under another name (its summary.json still names the
first). Before, both were judged as more scenarios (13 websocket scenarios, 39 critical
gates, a higher score) and a GO stood on the copy; now the verdict is INCONCLUSIVE naming
it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from reports.criteria import load_criteria
from reports.load import load_run
from reports.verdict import Verdict, evaluate

MakeRun = Callable[..., Path]


def test_a_run_summary_listing_a_scenario_twice_is_inconclusive(make_run: MakeRun) -> None:
    run_dir = make_run()
    assert evaluate(load_run(run_dir), load_criteria()).verdict is Verdict.GO
    path = run_dir / "summary.json"
    doc = json.loads(path.read_text())
    first = doc["scenarios"][0]["scenario"]
    doc["scenarios"].append(doc["scenarios"][0])
    path.write_text(json.dumps(doc))
    run = load_run(run_dir)
    assert [sc.name for sc in run.scenarios].count(first) == 1
    result = evaluate(run, load_criteria())
    assert result.verdict is Verdict.INCONCLUSIVE
    assert any(f"summary.json lists scenario {first} more than once" in r
               for r in result.reasons), result.reasons


def test_a_scenario_folder_copied_under_another_name_is_a_data_problem(
        make_run: MakeRun) -> None:
    run_dir = make_run()
    first = next(s["scenario"] for s in json.loads((run_dir / "summary.json").read_text())
                 ["scenarios"] if s["mode"] == "websocket")
    shutil.copytree(run_dir / first, run_dir / f"{first}_copy")
    run = load_run(run_dir)
    assert run.scenario(first).problems == ()
    problems = run.scenario(f"{first}_copy").problems
    assert any(f"summary.json is of scenario '{first}', in the folder {first}_copy/" in p
               for p in problems), problems
    assert evaluate(run, load_criteria()).verdict is Verdict.INCONCLUSIVE
