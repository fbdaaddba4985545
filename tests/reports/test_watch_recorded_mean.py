"""The report shows the wallets watched on average that the summary records
(``wallets_watched_mean``: what ``api_calls_per_hour_per_wallet`` was divided by), not one
recomputed from ``run.json`` ``watch``; a recorded mean that is not the list's is a warning
line, one that is no number is said and the list's is shown; a store from before the
summary recorded it still shows the recomputed one."""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_run

from reports import render
from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import build_report, render_report

SCENARIO = "ws_healthy"


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "_figure",
                        lambda title, build, alt: render._not_drawn(title, "not drawn"))


def _w(n: int) -> str:
    return f"0x{n:040x}"


def _run_json() -> dict[str, Any]:
    """Two wallets throughout, one removed at 200 s of 600: 2.33 on average."""
    watch = [{"wallet": _w(n), "from_s": None, "to_s": to_s, "after_block": None,
              "until_block": None, "unjudged_blocks": []}
             for n, to_s in ((1, None), (2, None), (3, 200.0))]
    return {"scenario": SCENARIO, "sim_duration_s": 600.0, "clock": "virtual",
            "restarts": [], "watch": watch}


def _text(root: Path, summary: dict[str, Any]) -> str:
    run = build_run(root, overrides={SCENARIO: summary})
    (run / SCENARIO / "run.json").write_text(json.dumps(_run_json()), encoding="utf-8")
    page = render_report(build_report(load_run(run), load_criteria(),
                                      bench_dir=root / "nobench"))
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_the_recorded_mean_is_shown(tmp_path: Path) -> None:
    text = _text(tmp_path, {"wallets_watched_mean": 2.5, "api_calls_per_hour": 600.0,
                            "api_calls_per_hour_per_wallet": 240.0})
    assert "2.5 on average over the 600 s measured window (as summary.json records it)" \
        in text
    assert "divided by the 2.5 wallets watched on average" in text
    assert "summary.json records 2.5 wallets watched on average, run.json's watch gives " \
           "2.33333" in text


def test_the_recorded_mean_agreeing_is_no_warning(tmp_path: Path) -> None:
    text = _text(tmp_path, {"wallets_watched_mean": 7 / 3, "api_calls_per_hour": 700.0,
                            "api_calls_per_hour_per_wallet": 300.0})
    assert "2.33 on average over the 600 s measured window (as summary.json records it)" \
        in text
    assert "run.json's watch gives" not in text


def test_an_older_store_recomputes(tmp_path: Path) -> None:
    text = _text(tmp_path, {"api_calls_per_hour": 700.0,
                            "api_calls_per_hour_per_wallet": 300.0})
    assert "2.33 on average over the 600 s measured window; 3 at some time" in text
    assert "records it" not in text


@pytest.mark.parametrize("value", ["many", -1, True, None])
def test_a_recorded_mean_of_no_number_is_not_taken(tmp_path: Path, value: Any) -> None:
    text = _text(tmp_path, {"wallets_watched_mean": value})
    assert "2.33 on average over the 600 s measured window; 3 at some time" in text
    if value is not None:  # null: the analysis found no mean; nothing to say of it
        assert "summary.json: wallets_watched_mean" in text and "is not a number" in text
