"""A pooled scenario whose restarts changed its wallet lists: a seed whose ``run.json`` is
missing, cut, not JSON or not an object showed nothing in "Wallets changed at restarts",
as if its list had not changed. The section now says which seed's ``run.json`` could not
be read and why, in one escaped line, and the other seeds' lists stand."""

from __future__ import annotations

import html as htmllib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_run

from reports import render
from reports.criteria import load_criteria
from reports.load import load_run
from reports.render import build_report, render_report

SCENARIO = "ws_healthy"
EVIL = '<script>alert("x")</script>'


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "_figure",
                        lambda title, build, alt: render._not_drawn(title, "not drawn"))


def _w(n: int) -> str:
    return f"0x{n:040x}"


def _run_json(removed_at: float) -> dict[str, Any]:
    watch = [{"wallet": _w(1), "from_s": None, "to_s": None, "after_block": None,
              "until_block": None, "unjudged_blocks": []},
             {"wallet": _w(3), "from_s": None, "to_s": removed_at, "after_block": None,
              "until_block": 105, "unjudged_blocks": []}]
    return {"scenario": SCENARIO, "sim_duration_s": 600.0, "clock": "virtual",
            "restarts": [], "watch": watch}


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", page)))


def _page(root: Path, damage: Callable[[Path], None], *, with_watch: bool = True) -> str:
    run = build_run(root, overrides={SCENARIO: {"seeds": [1, 2, 3]}})
    for seed, removed_at in ((1, 200.0), (2, 400.0), (3, 300.0)):
        folder = run / SCENARIO / "seeds" / str(seed)
        folder.mkdir(parents=True)
        doc = _run_json(removed_at)
        if not with_watch:
            del doc["watch"]
        (folder / "run.json").write_text(json.dumps(doc), encoding="utf-8")
    damage(run / SCENARIO / "seeds" / "2" / "run.json")
    return render_report(build_report(load_run(run), load_criteria(),
                                      bench_dir=root / "nobench"))


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda p: p.unlink(), "it is missing"),
    "cut": (lambda p: p.write_text(p.read_text()[:40]), "JSONDecodeError"),
    "not_utf8": (lambda p: p.write_bytes(b"\xff\xfe{}"), "SmallFileError"),
    "not_an_object": (lambda p: p.write_text("[1, 2]"), "it is not a JSON object"),
    "a_folder": (lambda p: (p.unlink(), p.mkdir()), "IsADirectoryError"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_an_unread_seed_is_said_and_the_others_stand(tmp_path: Path, case: str) -> None:
    damage, why = DAMAGE[case]
    text = _text(_page(tmp_path, damage))
    assert "Wallets changed at restarts" in text
    assert f"seeds/2/run.json could not be read ({why}): whether seed 2's wallets " \
           "changed at its restarts is not known" in text
    # the other seeds' lists stand
    assert "From seeds/1/run.json (seed 1" in text and "From seeds/3/run.json (seed 3" in text
    assert "1.33 on average" in text and "1.5 on average" in text
    assert "1.67 on average" not in text  # seed 2's list: not read, not invented
    assert text.count("Wallets watched:") == 2


def test_the_line_is_escaped(tmp_path: Path) -> None:
    """The reason is the file's own kind of damage, never its text; the page stays
    escaped (a file named as the seed is)."""
    page = _page(tmp_path, lambda p: p.write_text(EVIL))
    assert "<script>alert" not in page
    assert "seeds/2/run.json could not be read (JSONDecodeError)" in _text(page)


def test_no_watch_anywhere_still_shows_nothing(tmp_path: Path) -> None:
    """A pool whose restarts changed no list: a seed's run.json gone is said among the
    seeds' problems, not as a list of wallets that changed."""
    page = _page(tmp_path, lambda p: p.unlink(), with_watch=False)
    assert "Wallets changed at restarts" not in page


def test_no_run_json_read_at_all_is_said(tmp_path: Path) -> None:
    """Every seed's run.json (and the scenario's own copy) unread: nothing says whether
    the lists changed, so each seed says so."""
    run = build_run(tmp_path, overrides={SCENARIO: {"seeds": [1, 2]}})
    for seed in (1, 2):
        (run / SCENARIO / "seeds" / str(seed)).mkdir(parents=True)
        (run / SCENARIO / "seeds" / str(seed) / "run.json").write_text("{")
    text = _text(render_report(build_report(load_run(run), load_criteria(),
                                            bench_dir=tmp_path / "nobench")))
    assert "seeds/1/run.json could not be read (JSONDecodeError)" in text
    assert "seeds/2/run.json could not be read (JSONDecodeError)" in text
    assert "Wallets watched:" not in text


def test_a_scenario_of_one_seed_whose_summary_records_a_mean(tmp_path: Path) -> None:
    """Its summary records the wallets watched on average (its run.json had a list when
    analysed): its run.json gone since is said too; one whose summary records none
    still shows nothing."""
    pages = []
    for name, summary in (("a", {"wallets_watched_mean": 1.5}), ("b", {})):
        run = build_run(tmp_path / name, overrides={SCENARIO: summary})
        (run / SCENARIO / "run.json").write_text("{", encoding="utf-8")
        pages.append(_text(render_report(build_report(load_run(run), load_criteria(),
                                                      bench_dir=tmp_path / "nobench"))))
    assert "run.json could not be read (JSONDecodeError): whether its wallets changed at " \
           "its restarts is not known" in pages[0]
    assert "Wallets changed at restarts" not in pages[1]
