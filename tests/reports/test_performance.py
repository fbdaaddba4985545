"""The report's performance section: the latest benchmark results with the file each came
from, or "no benchmark results found; run make bench"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports.criteria import load_criteria
from reports.load import load_run
from reports.performance import NO_RESULTS, load_performance
from reports.render import write_report

OWN = {"benchmark": "wallets", "title": "Wallets on busy", "command": "make bench",
       "created": "2026-01-01T00:00:00Z", "git_sha": "abc1234",
       "machine": {"python": "3.11.7", "processor": "AMD EPYC", "cpus": 2},
       "figures": [
           {"name": "100,000 wallets: p99", "value": 42.5, "unit": "ms", "target": "< 50 ms",
            "met": True},
           {"name": "100,000 wallets: peak RSS", "value": 412.0, "unit": "MB",
            "target": "< 300 MB", "met": False},
           {"name": "1 wallets: p50", "value": 3.1, "unit": "ms", "target": "", "met": None}]}

PYTEST_BENCHMARK = {"machine_info": {"cpu": {"brand_raw": "Intel(R) Xeon(R)", "count": 4}},
                    "commit_info": {"id": "deadbeef" * 5},
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


def test_each_result_names_the_machine_it_was_measured_on(tmp_path: Path) -> None:
    """Figures from two machines are not comparable: the section names each file's CPU,
    and says so when a file names none."""
    d = _bench(tmp_path)
    bare = {k: v for k, v in OWN.items() if k != "machine"} | {"title": "No machine"}
    (d / "bare.json").write_text(json.dumps(bare))
    by_title = {r.title: r for r in load_performance([d]).results}
    assert by_title["Wallets on busy"].machine == "AMD EPYC, 2 CPUs"
    assert by_title["pytest-benchmark (time per call)"].machine == "Intel(R) Xeon(R), 4 CPUs"
    assert by_title["No machine"].machine == ""


def test_report_shows_the_section_with_its_source(run_dir: Path, tmp_path: Path) -> None:
    d = _bench(tmp_path)
    _, out = write_report(load_run(run_dir), load_criteria(), bench_dir=d)
    html = out.read_text()
    assert 'id="performance"' in html
    assert str(d / "wallets.json") in html and "100,000 wallets: p99" in html
    assert "not met" in html and "Unreadable results files" in html
    assert "on AMD EPYC, 2 CPUs" in html


def test_report_says_run_make_bench_without_results(run_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    assert load_performance([empty]).results == ()
    _, out = write_report(load_run(run_dir), load_criteria(), bench_dir=empty)
    assert NO_RESULTS in out.read_text()


BUDGET = {"trades": 321, "e2e_p50_ms": 1.5, "e2e_p99_ms": 25.0,
          "stages": [{"stage": s, "p50_ms": 0.1, "p99_ms": 3.0, "share_p50": 0.125,
                      "share_p99": 0.125}
                     for s in ("serialise", "socket", "parse", "queue", "decode", "dedup",
                               "persist", "deliver")],
          "overhead": [{"name": "simulator history write (per block, inside socket)",
                        "p50_ms": 0.2, "p99_ms": 0.9, "note": "90 blocks"}]}


def _budget_file(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    doc = {**OWN, "benchmark": "latency_budget", "title": "Latency budget", "budget": BUDGET,
           "floor": {"rtt_p50_ms": 0.08, "rtt_p99_ms": 0.2, "one_way_p50_ms": 0.04}}
    (d / "latency_budget.json").write_text(json.dumps(doc))
    return d / "latency_budget.json"


def test_the_budget_table_comes_from_the_benchmark_file_when_the_run_has_none(
        run_dir: Path, tmp_path: Path) -> None:
    path = _budget_file(tmp_path / "bench")
    _, out = write_report(load_run(run_dir), load_criteria(), bench_dir=path.parent)
    html = out.read_text()
    table = html.split('id="latency-budget"', 1)[1].split("</table>", 1)[0]
    assert f"From <span class=\"mono\">{path}</span>" in html
    assert "persist" in table and "0.100 ms" in table and "12%" in table
    assert "1.500 ms" in table and "25.000 ms" in table and "not met" in table  # p99 > 20
    assert "simulator history write" in table
    assert "round trip p50 0.080 ms" in html


def test_the_budget_table_comes_from_the_run_when_a_scenario_carries_stages(
        make_run: Any, tmp_path: Path) -> None:
    run = make_run(overrides={"ws_healthy": {"latency_stages": {**BUDGET, "trades": 77}}})
    path = _budget_file(tmp_path / "bench")
    _, out = write_report(load_run(run), load_criteria(), bench_dir=path.parent)
    html = out.read_text()
    assert "scenario ws_healthy" in html and "77 live trades" in html
    assert f"from <span class=\"mono\">{path}</span>" in html  # the floor still named


def test_no_budget_anywhere_no_table(run_dir: Path, tmp_path: Path) -> None:
    d = _bench(tmp_path)
    _, out = write_report(load_run(run_dir), load_criteria(), bench_dir=d)
    assert 'id="latency-budget"' not in out.read_text()
