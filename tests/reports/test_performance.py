"""The report's performance section: the latest benchmark results with the file each came
from, or "no benchmark results found; run make bench"."""

from __future__ import annotations

import json
from pathlib import Path

from reports.criteria import load_criteria
from reports.load import load_run
from reports.performance import NO_RESULTS, load_performance
from reports.render import write_report

OWN = {"benchmark": "wallets", "title": "Wallets on busy", "command": "make bench",
       "created": "2026-01-01T00:00:00Z", "git_sha": "abc1234",
       "figures": [
           {"name": "100,000 wallets: p99", "value": 42.5, "unit": "ms", "target": "< 50 ms",
            "met": True},
           {"name": "100,000 wallets: peak RSS", "value": 412.0, "unit": "MB",
            "target": "< 300 MB", "met": False},
           {"name": "1 wallets: p50", "value": 3.1, "unit": "ms", "target": "", "met": None}]}

PYTEST_BENCHMARK = {"machine_info": {}, "commit_info": {"id": "deadbeef" * 5},
                    "datetime": "2026-01-02T00:00:00", "benchmarks": [
                        {"name": "test_decode", "fullname": "benchmarks/x.py::test_decode",
                         "stats": {"min": 0.001, "median": 0.002, "max": 0.004,
                                   "rounds": 9}}]}


def _bench(tmp_path: Path) -> Path:
    d = tmp_path / "bench"
    (d / "sub").mkdir(parents=True)
    (d / "wallets.json").write_text(json.dumps(OWN))
    (d / "sub" / "0001_run.json").write_text(json.dumps(PYTEST_BENCHMARK))
    (d / "broken.json").write_text("{")
    return d


def test_reads_own_and_pytest_benchmark_files(tmp_path: Path) -> None:
    d = _bench(tmp_path)
    perf = load_performance([d])
    by_title = {r.title: r for r in perf.results}
    own = by_title["Wallets on busy"]
    assert own.source == str(d / "wallets.json")
    assert [(f.value, f.met) for f in own.figures] == [
        ("42.5 ms", True), ("412 MB", False), ("3.1 ms", None)]
    pb = by_title["pytest-benchmark (time per call)"]
    assert pb.source == str(d / "sub" / "0001_run.json")
    assert "median 0.002 s" in pb.figures[0].value and "9 rounds" in pb.figures[0].value
    assert perf.unreadable == (str(d / "broken.json"),)


def test_report_shows_the_section_with_its_source(run_dir: Path, tmp_path: Path) -> None:
    d = _bench(tmp_path)
    _, out = write_report(load_run(run_dir), load_criteria(), bench_dir=d)
    html = out.read_text()
    assert 'id="performance"' in html
    assert str(d / "wallets.json") in html and "100,000 wallets: p99" in html
    assert "not met" in html and "Unreadable results files" in html


def test_report_says_run_make_bench_without_results(run_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    assert load_performance([empty]).results == ()
    _, out = write_report(load_run(run_dir), load_criteria(), bench_dir=empty)
    assert NO_RESULTS in out.read_text()
