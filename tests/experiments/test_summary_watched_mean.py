"""The run summary records the wallets watched on average (``wallets_watched_mean``), the
number ``api_calls_per_hour_per_wallet`` was divided by, when ``run.json`` has a
``watch``: before, only the report recomputed it. A run without a ``watch`` writes the
summary it wrote before, byte for byte; a pool of seeds has no mean of its own (each
seed's summary has its own), and the report shows each seed's."""

from __future__ import annotations

import html as htmllib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from exp_helpers import OTHER, WALLET, make_scenario_dir

from experiments.analysis import analyze_scenario_dir
from experiments.scenario import load_scenario
from experiments.seeds import pool
from reports import render
from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import build_report, render_report

SEEDS = (1, 2)


def _interval(wallet: str, from_s: float | None, to_s: float | None = None) -> dict[str, Any]:
    return {"wallet": wallet, "from_s": from_s, "to_s": to_s, "after_block": None,
            "until_block": None, "unjudged_blocks": []}


def _with_watch(sdir: Path, added_at: float) -> None:
    """``OTHER`` added at ``added_at`` s of the 100 s window, ``WALLET`` throughout."""
    path = sdir / "run.json"
    run = json.loads(path.read_text(encoding="utf-8"))
    run["wallets"] = [WALLET, OTHER]
    run["watch"] = [_interval(WALLET, None), _interval(OTHER, added_at)]
    path.write_text(json.dumps(run), encoding="utf-8")


def test_the_summary_records_the_mean_it_divided_by(tmp_path: Path) -> None:
    sdir = make_scenario_dir(tmp_path)
    _with_watch(sdir, 50.0)
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "ok", summary["error"]
    assert summary["wallets_watched_mean"] == pytest.approx(1.5)
    assert summary["api_calls_per_hour_per_wallet"] == pytest.approx(
        summary["api_calls_per_hour"] / 1.5)
    on_disk = json.loads((sdir / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["wallets_watched_mean"] == pytest.approx(1.5)


def test_a_watch_of_no_numbers_records_null(tmp_path: Path) -> None:
    """The analysis then divided by every wallet: said, as null."""
    sdir = make_scenario_dir(tmp_path)
    _with_watch(sdir, 50.0)
    run = json.loads((sdir / "run.json").read_text(encoding="utf-8"))
    run["watch"][1]["from_s"] = "soon"
    (sdir / "run.json").write_text(json.dumps(run), encoding="utf-8")
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "ok", summary["error"]
    assert "wallets_watched_mean" in summary and summary["wallets_watched_mean"] is None


def test_a_run_without_watch_writes_no_key(tmp_path: Path) -> None:
    sdir = make_scenario_dir(tmp_path)
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "ok", summary["error"]
    assert "wallets_watched_mean" not in summary
    assert "wallets_watched_mean" not in (sdir / "summary.json").read_text(encoding="utf-8")


def test_a_pool_records_none_and_the_report_says_each_seeds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "_figure",
                        lambda title, build, alt: render._not_drawn(title, "not drawn"))
    run = tmp_path / "run"
    summaries = []
    for seed, added_at in zip(SEEDS, (50.0, 75.0), strict=True):
        staged = make_scenario_dir(tmp_path / f"stage{seed}")
        _with_watch(staged, added_at)
        target = run / "hand_made" / "seeds" / str(seed)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged, target)
        summary = analyze_scenario_dir(target)
        assert summary["status"] == "ok", summary["error"]
        summaries.append(summary)
    assert [s["wallets_watched_mean"] for s in summaries] == pytest.approx([1.5, 1.25])
    sdir = run / "hand_made"
    out = pool(load_scenario(sdir / "seeds" / "1" / "scenario.toml"), sdir, list(SEEDS),
               summaries)
    assert out["status"] == "ok", out["error"]
    # not the first seed's mean standing for the pool, nor an average of the seeds'
    assert "wallets_watched_mean" not in out
    assert "wallets_watched_mean" not in (sdir / "summary.json").read_text(encoding="utf-8")
    page = render_report(build_report(load_run(run), load_criteria(),
                                      bench_dir=tmp_path / "nobench"))
    text = re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", page)))
    assert "1.5 on average over the 100 s measured window (as seeds/1/summary.json " \
           "records it)" in text
    assert "1.25 on average over the 100 s measured window (as seeds/2/summary.json " \
           "records it)" in text
    assert "1.38 on average" not in text  # no pooled average
