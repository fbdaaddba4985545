"""Evidence hunt: a scenario whose truth holds no trade of the watched wallets judged
nothing. The verdict says INCONCLUSIVE; the outcomes figure labelled its (empty) bar
"clean", as if every trade had been delivered."""

from __future__ import annotations

import json
from pathlib import Path

from exp_helpers import OTHER, Sim, make_scenario_dir, tid, write_jsonl

from experiments.analysis import analyze_scenario_dir
from reports import figures
from reports.criteria import load_criteria
from reports.load import load_run
from reports.verdict import Verdict, evaluate


def _empty_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    sdir = make_scenario_dir(run)
    # blocks, but no trade of a watched wallet: nothing to deliver, nothing judged
    write_jsonl(sdir / "sim_history.jsonl",
                Sim().block(10, 1, [tid(1)], maker=OTHER).block(20, 2, []).sorted())
    write_jsonl(sdir / "detections.jsonl", [])
    (run / "manifest.json").write_text(json.dumps({"scenarios": [sdir.name]}),
                                       encoding="utf-8")
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "ok" and summary["trades"] == 0
    return run


def test_a_scenario_without_trades_is_not_clean_and_the_verdict_is_inconclusive(tmp_path):
    run = load_run(_empty_run(tmp_path))
    res = evaluate(run, load_criteria())
    assert res.verdict is Verdict.INCONCLUSIVE
    assert any("no trades" in r for r in res.reasons), res.reasons
    fig = figures.outcomes(run)
    labels = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "clean" not in labels, labels
    assert any(t.startswith("no trades") for t in labels), labels
