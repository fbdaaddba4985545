"""A damaged or hostile ``run.json`` near the 64 MB read cap: a 60 MB ``watch`` list took
``reports build`` from 212 MB to 479 MB of RSS (parsed, a list is ~4.5 times its bytes),
read twice (its wallet list, and its clock when the manifest names none). A ``run.json``
past 16 MiB (a run of 10,000 wallets writes a few MB) is now not parsed: the wallet
section says so with the cap, and the clock is found by a line scan of the file."""

from __future__ import annotations

import html as htmllib
import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import build_run

from reports import load, render
from reports.criteria import load_criteria
from reports.load import CLOCK_JSON_BYTES, load_run
from reports.render import build_report, render_report
from reports.watch import WATCH_JSON_BYTES, scenario_watches

SCENARIO = "ws_healthy"


@pytest.fixture(autouse=True)
def _no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "_figure",
                        lambda title, build, alt: render._not_drawn(title, "not drawn"))


def _entry(n: int) -> dict[str, Any]:
    return {"wallet": f"0x{n:040x}", "from_s": 10.0, "to_s": None, "after_block": 5,
            "until_block": None, "unjudged_blocks": [[6, 7]]}


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", page)))


def _padded(path: Path, doc: dict[str, Any], size: int) -> None:
    """``doc`` as JSON followed by white space up to ``size`` bytes (valid JSON)."""
    text = json.dumps(doc)
    path.write_text(text + " " * (size - len(text)), encoding="utf-8")


def test_a_run_json_past_the_cap_is_said_with_it(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    doc = {"scenario": SCENARIO, "sim_duration_s": 600.0, "clock": "virtual",
           "restarts": [], "watch": [_entry(1), {**_entry(2), "to_s": 300.0}]}
    _padded(run / SCENARIO / "run.json", doc, WATCH_JSON_BYTES + 1)
    text = _text(render_report(build_report(load_run(run), load_criteria(),
                                            bench_dir=tmp_path / "nobench")))
    assert "Wallets changed at restarts" in text
    assert "run.json could not be read (it is 16.0 MiB, more than the 16 MiB read for a " \
           "wallet list): whether its wallets changed at its restarts is not known" in text
    assert "Wallets watched:" not in text


def test_a_run_json_at_the_cap_is_read(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    doc = {"scenario": SCENARIO, "sim_duration_s": 600.0, "clock": "virtual",
           "restarts": [], "watch": [_entry(1), {**_entry(2), "to_s": 300.0}]}
    _padded(run / SCENARIO / "run.json", doc, WATCH_JSON_BYTES)
    text = _text(render_report(build_report(load_run(run), load_criteria(),
                                            bench_dir=tmp_path / "nobench")))
    assert "1.47 on average over the 600 s measured window" in text


def test_a_huge_watch_is_not_parsed(tmp_path: Path) -> None:
    """A 17 MiB list (the wallet section and the clock read it) costs a few MiB of
    memory at most; it cost several times its size (and the clock's read allocated the
    64 MiB cap besides)."""
    run = build_run(tmp_path)
    one = json.dumps(_entry(0), indent=2).replace("\n", "\n    ")
    n = (17 << 20) // len(one) + 1
    head = '{\n  "scenario": "ws_healthy",\n  "sim_duration_s": 600.0,\n  "watch": [\n    '
    for name in ("ws_healthy", "ws_drop", "ws_10w", "polling_baseline", "polling_10w"):
        path = run / name / "run.json"
        if name == SCENARIO:
            path.write_text(head + ",\n    ".join([one] * n)
                            + '\n  ],\n  "clock": "virtual"\n}\n', encoding="utf-8")
        else:
            path.write_text(json.dumps({"clock": "virtual"}, indent=2), encoding="utf-8")
    assert (run / SCENARIO / "run.json").stat().st_size > 17 << 20
    loaded = load_run(run)  # the manifest names no clock: each run.json's is read
    assert loaded.scenario_clock == "virtual"  # found by its line, not by parsing it
    sc = next(s for s in loaded.scenarios if s.name == SCENARIO)
    peaks = []
    for read in (lambda: scenario_watches(sc), lambda: load._scenarios_clock((sc,))):
        tracemalloc.start()
        try:
            result = read()
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert result  # the note, the clock
    assert max(peaks) < 4 << 20, [f"{p / (1 << 20):.0f} MiB" for p in peaks]
    watches, _ = scenario_watches(sc)
    assert [w.readable for w in watches] == [False]


def test_a_big_compact_run_json_names_no_clock(tmp_path: Path) -> None:
    """Past the cap, a file not written as the runner writes it (``indent=2``) names no
    clock: the report falls back as for a run.json that names none."""
    run = build_run(tmp_path)
    for name in ("ws_healthy", "ws_drop", "ws_10w", "polling_baseline", "polling_10w"):
        path = run / name / "run.json"
        path.write_text(json.dumps({"clock": "virtual"}, indent=2), encoding="utf-8")
    _padded(run / SCENARIO / "run.json", {"clock": "virtual"}, CLOCK_JSON_BYTES + 1)
    assert load_run(run).scenario_clock is None
