"""A scenario whose restarts changed the wallet list (``run.json`` ``watch``) shows it in
the report: the restarts with the wallets added and removed, the wallets watched at the
start, at the end and on average (what the API calls per wallet-hour divide by), and the
blocks judged for no wallet, capped at a few rows. Before, neither the report nor the
notebook said that the wallets changed. A damaged ``watch`` is a note, escaped; a run
without one shows nothing new."""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_run

from experiments.checker import mean_watched
from reports import render
from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import build_report, render_report
from reports.watch import MAX_WATCH, TABLE_ROWS, parse_watch, restarts_frame, watch_frame

SCENARIO = "ws_healthy"
WINDOW_S = 600.0
EVIL = '<script>alert("x")</script>'


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The figures are not this test's (drawing them took seconds a report)."""
    monkeypatch.setattr(render, "_figure",
                        lambda title, build, alt: render._not_drawn(title, "not drawn"))


def _w(n: int) -> str:
    return f"0x{n:040x}"


def _interval(wallet: str, from_s: float | None = None, to_s: float | None = None,
              after: int | None = None, until: int | None = None,
              unjudged: list[list[int]] | None = None) -> dict[str, Any]:
    return {"wallet": wallet, "from_s": from_s, "to_s": to_s, "after_block": after,
            "until_block": until, "unjudged_blocks": unjudged or []}


def _watched() -> list[dict[str, Any]]:
    """Four wallets: two throughout, one removed at 200 s, one added at 300 s."""
    return [_interval(_w(1)), _interval(_w(2)),
            _interval(_w(3), to_s=200.0, until=105, unjudged=[[103, 105]]),
            _interval(_w(4), from_s=300.0, after=150, unjudged=[[151, 152]])]


def _restarts() -> list[dict[str, Any]]:
    return [{"at_s": 190.0, "kind": "kill", "down_s": 110.0, "added": [_w(4)],
             "removed": [_w(3)], "stop_block": 102, "removed_block": 105,
             "launch_block": 150, "started_block": 152, "launches_stored": {_w(4): 150}}]


def _run_json(watch: Any, restarts: Any = None) -> dict[str, Any]:
    return {"scenario": SCENARIO, "sim_duration_s": WINDOW_S, "clock": "virtual",
            "restarts": _restarts() if restarts is None else restarts, "watch": watch}


def _report(root: Path, run_json: dict[str, Any] | None,
            overrides: dict[str, dict[str, Any]] | None = None) -> str:
    run = build_run(root, overrides=overrides)
    if run_json is not None:
        (run / SCENARIO / "run.json").write_text(json.dumps(run_json), encoding="utf-8")
    loaded = load_run(run)
    return render_report(build_report(loaded, load_criteria(), bench_dir=root.parent / "nobench"))


def _text(page: str) -> str:
    """The page's text: tags dropped, entities read, white space as one space."""
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_a_changed_wallet_list_is_shown(tmp_path: Path) -> None:
    mean = mean_watched(_watched(), WINDOW_S)
    assert mean == pytest.approx((2 * 600 + 200 + 300) / 600)
    page = _report(tmp_path, _run_json(_watched()), overrides={SCENARIO: {
        "api_calls_per_hour": 600.0, "api_calls_per_hour_per_wallet": 600.0 / mean}})
    text = _text(page)
    assert "Wallets changed at restarts" in text
    assert "Wallets watched: 3 at the start, 3 at the end, 2.83 on average over the 600 s " \
           "measured window; 4 at some time" in text
    assert "divided by the 2.83 wallets watched on average" in text
    # the restart: when, how, one added and one removed, its heads
    assert re.search(r"1 190 kill 110 1 1 102 105 150 152", text)
    assert "Not judged: 2 block ranges (5 wallet-blocks) of 2 wallets" in text
    # the two changed wallets, not the two watched throughout
    assert f"{_w(3)} start 200 - 105 103-105" in text
    assert f"{_w(4)} 300 end 150 - 151-152" in text
    assert _w(1) not in text


def test_calls_per_wallet_not_divided_by_the_mean_is_a_warning(tmp_path: Path) -> None:
    page = _report(tmp_path, _run_json(_watched()), overrides={SCENARIO: {
        "api_calls_per_hour": 600.0, "api_calls_per_hour_per_wallet": 150.0}})
    assert "divided by 4, not by the 2.83 wallets watched on average" in _text(page)


def test_a_damaged_watch_is_a_note_and_escaped(tmp_path: Path) -> None:
    watch: list[Any] = [*_watched(), _interval(EVIL, to_s=100.0), "x", {"wallet": _w(9)},
                        _interval(_w(8), from_s="soon"), _interval(_w(7), unjudged=[[5]]),
                        _interval(["a list"])]
    restarts = [{"at_s": 50.0, "kind": EVIL, "added": 3, "removed": [EVIL]}, "y"]
    page = _report(tmp_path, _run_json(watch, restarts))
    text = _text(page)
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert "5 entries of watch could not be read and are left out" in text
    assert "entry 6: 'x' is not an object" in text
    assert "entry 7: lacks from_s, to_s, after_block, until_block, unjudged_blocks" in text
    assert "'soon' is not a number of seconds" in text
    assert "restart 1 could not be read: added '3' is not a list of wallets" in text
    assert "restart 2 could not be read" in text
    # the list is damaged: no mean is claimed for it
    assert "on average not known" in text
    assert EVIL in text  # the wallet read is shown, as text


@pytest.mark.parametrize("watch", ["all of them", {"wallet": _w(1)}, 7, None])
def test_a_watch_that_is_no_list_is_a_note(tmp_path: Path, watch: Any) -> None:
    text = _text(_report(tmp_path, _run_json(watch, restarts=[])))
    assert "run.json: watch is not a list of wallets" in text


def test_a_huge_watch_is_capped(tmp_path: Path) -> None:
    far = 10**9  # no wallet of the fixture's trades
    watch = [_interval(_w(far + i), from_s=10.0) for i in range(MAX_WATCH + 5)]
    page = _report(tmp_path, _run_json(watch, restarts=[]))
    text = _text(page)
    assert f"watch lists {MAX_WATCH + 5:,} wallets, more than a run watches" in text
    assert f"{MAX_WATCH - TABLE_ROWS:,} more wallets added or removed not listed " \
           f"({MAX_WATCH:,} in all)" in text
    assert sum(page.count(_w(far + i)) for i in range(MAX_WATCH + 5)) == TABLE_ROWS


def test_a_run_without_watch_shows_nothing_new(tmp_path: Path) -> None:
    plain = _report(tmp_path / "a", None)
    unchanged = _report(tmp_path / "b", {"scenario": SCENARIO, "clock": "virtual",
                                         "sim_duration_s": WINDOW_S, "restarts": []})
    assert "Wallets changed" not in plain
    assert unchanged == plain


def test_the_frames_for_the_notebook() -> None:
    watch = parse_watch(_run_json(_watched()))
    assert watch is not None and not watch.problems
    frame = watch_frame(watch)
    assert list(frame["wallet"]) == [_w(i) for i in range(1, 5)]
    assert frame["unjudged_n"].sum() == 5
    restarts = restarts_frame(watch)
    assert restarts.loc[0, ["added", "removed", "launch_block"]].tolist() == [1, 1, 150]
    assert parse_watch({"restarts": []}) is None


def test_a_pooled_scenario_shows_each_seeds_list(tmp_path: Path) -> None:
    """Each seed of a pool draws its own changes: its own run.json, said by seed."""
    run = build_run(tmp_path, overrides={SCENARIO: {"seeds": [1, 2]}})
    for seed, removed_at in ((1, 200.0), (2, 400.0)):
        folder = run / SCENARIO / "seeds" / str(seed)
        folder.mkdir(parents=True)
        watch = [_interval(_w(1)), _interval(_w(3), to_s=removed_at, until=105)]
        (folder / "run.json").write_text(json.dumps(_run_json(watch)), encoding="utf-8")
    page = render_report(build_report(load_run(run), load_criteria(),
                                      bench_dir=tmp_path / "nobench"))
    text = _text(page)
    assert "From seeds/1/run.json (seed 1: each seed draws its own changes)" in text
    assert "From seeds/2/run.json (seed 2" in text
    assert "1.33 on average" in text and "1.67 on average" in text
