"""The run store layout, re-analysis of stored data, and INCONCLUSIVE on broken data."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from exp_helpers import (
    SPEED,
    make_scenario_dir,
    ns,
    tid,
    write_jsonl,
)

from experiments.analysis import SUMMARY_KEYS, analyze_scenario_dir
from experiments.checker import OUTCOME_COLUMNS
from experiments.cli import main
from experiments.store import (
    JsonlError,
    create_run,
    package_versions,
    point_latest,
    read_jsonl,
    resolve_run,
    write_manifest,
    write_run_summary,
)


def test_analysis_writes_the_contract_files(tmp_path: Path) -> None:
    sdir = make_scenario_dir(tmp_path)
    summary = analyze_scenario_dir(sdir)
    for name in ("truth.parquet", "detections.parquet", "outcomes.parquet", "summary.json"):
        assert (sdir / name).exists(), name
    assert list(summary) == SUMMARY_KEYS
    assert summary["status"] == "ok" and summary["error"] is None
    outcomes = pd.read_parquet(sdir / "outcomes.parquet")
    assert list(outcomes.columns) == OUTCOME_COLUMNS
    assert dict(zip(outcomes["trade_id"], outcomes["outcome"], strict=True)) == {
        tid(1): "detected", tid(2): "detected", tid(3): "retracted", tid(4): "missed"}
    assert outcomes.set_index("trade_id").loc[tid(2), "fault"] == "ws_drop"
    assert summary["trades"] == 3 and summary["missed"] == 1
    assert summary["latency_p95_in_fault_s"] == pytest.approx(2.0)
    assert summary["bytes_received"] == 1234
    # latency_p95_s < 1 on two trades (0.2 s, 2.0 s): no bound decides a p95 (6e542e8)
    assert [t["passed"] for t in summary["thresholds"]] == [False, True, None]
    assert json.loads((sdir / "summary.json").read_text()) == json.loads(
        json.dumps(summary))


def test_harness_error_is_kept_and_never_measured(tmp_path: Path) -> None:
    sdir = make_scenario_dir(tmp_path, status="harness_error")
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "harness_error"
    assert "before READY" in summary["error"]
    assert summary["trades"] is None
    assert all(t["passed"] is None for t in summary["thresholds"])
    assert pd.read_parquet(sdir / "outcomes.parquet").empty


@pytest.mark.parametrize("cut", ["sim_stop", "monitor_stop", "sim_early", "monitor_early"])
def test_a_run_cut_short_is_inconclusive_not_a_result(tmp_path: Path, cut: str) -> None:
    """Histories cut at 60 % of the window (no stop rows) were analysed as ok, GO, with
    per-hour rates divided by the whole window; a monitor history cut at 30 % with the
    detections whole gave uptime 1.00."""
    sdir = make_scenario_dir(tmp_path)
    name = "sim_history.jsonl" if cut.startswith("sim") else "monitor_history.jsonl"
    rows = [json.loads(x) for x in (sdir / name).read_text().splitlines()]
    if cut.endswith("_stop"):
        rows = [r for r in rows if r["event"] != "stop"]
    else:
        for r in rows:
            if r["event"] == "stop":
                r["t_ns"] = ns(60)
        rows.sort(key=lambda r: r["t_ns"])
    write_jsonl(sdir / name, rows)
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "inconclusive" and summary["trades"] is None
    side = "simulator" if cut.startswith("sim") else "monitor"
    if cut.endswith("_stop"):
        assert f"the {side}'s history has no stop row after its last start" in summary["error"]
    else:
        assert f"the {side} stopped {40 / SPEED:.1f} s (wall clock) before the measured " \
            "window's end" in summary["error"]


def test_deliveries_before_their_block_was_published_are_inconclusive(tmp_path: Path) -> None:
    """The checker counts a negative latency as 0: a detections file shifted 5 s early
    (another run's, another clock's) was analysed ok, every trade on time."""
    sdir = make_scenario_dir(tmp_path)
    rows = [json.loads(x) for x in (sdir / "detections.jsonl").read_text().splitlines()]
    for r in rows:
        r["t_ns"] -= 5 * 10**9
    write_jsonl(sdir / "detections.jsonl", rows)
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "inconclusive"
    assert "trades were delivered before their block was published" in summary["error"]


def test_a_monitor_killed_and_restarted_on_purpose_is_whole_when_its_last_run_stopped(
        tmp_path: Path) -> None:
    sdir = make_scenario_dir(tmp_path)
    rows = [json.loads(x) for x in (sdir / "monitor_history.jsonl").read_text().splitlines()]
    rows.append({"t_ns": ns(40), "event": "start", "mode": "websocket", "wallets": 1,
                 "speed": 1.0, "settings": {}})  # killed at ~40 s (no stop), started again
    rows.sort(key=lambda r: r["t_ns"])
    write_jsonl(sdir / "monitor_history.jsonl", rows)
    assert analyze_scenario_dir(sdir)["status"] == "ok"


@pytest.mark.parametrize("breakage", ["no_start_row", "corrupt_line", "no_monitor_history",
                                      "no_run_record", "no_window"])
def test_broken_data_is_inconclusive_never_a_pass(tmp_path: Path, breakage: str) -> None:
    sdir = make_scenario_dir(tmp_path)
    if breakage == "no_start_row":
        lines = (sdir / "sim_history.jsonl").read_text().splitlines()[1:]
        (sdir / "sim_history.jsonl").write_text("\n".join(lines) + "\n")
    elif breakage == "corrupt_line":
        text = (sdir / "sim_history.jsonl").read_text()
        (sdir / "sim_history.jsonl").write_text("{not json\n" + text)
    elif breakage == "no_monitor_history":
        (sdir / "monitor_history.jsonl").unlink()
    elif breakage == "no_run_record":
        (sdir / "run.json").unlink()
    else:
        run = json.loads((sdir / "run.json").read_text())
        del run["window_start_ns"]
        (sdir / "run.json").write_text(json.dumps(run))
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "inconclusive"
    assert summary["error"]
    assert summary["trades"] is None
    assert summary["thresholds"] == [] or all(t["passed"] is None
                                              for t in summary["thresholds"])


@pytest.mark.parametrize(("record", "says"), [
    ([1, 2], "not a JSON object"), (None, "not a JSON object"), ("x", "not a JSON object"),
    ({"wallets": 5}, "wallets is not a list of strings"),
    ({"wallets": 5, "status": "harness_error"}, "wallets is not a list of strings"),
    ({"thresholds": 5}, "thresholds is not a list of strings"),
    ({"thresholds": [5]}, "thresholds is not a list of strings"),
    ({"thresholds": ["bogus <<< x"]}, "thresholds: "),
])
def test_a_run_record_of_the_wrong_shape_is_inconclusive_naming_the_field(
        tmp_path: Path, record: Any, says: str) -> None:
    # valid JSON of the wrong shape raised AttributeError / TypeError out of the analysis
    sdir = make_scenario_dir(tmp_path)
    if isinstance(record, dict):
        run = json.loads((sdir / "run.json").read_text())
        record = {**run, **record}
    (sdir / "run.json").write_text(json.dumps(record))
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "inconclusive" and says in summary["error"], summary["error"]
    assert "run.json" in summary["error"] and summary["trades"] is None


def test_a_history_row_without_its_time_is_named_by_file_and_line(tmp_path: Path) -> None:
    # was "analysis failed: KeyError: 't_ns'", naming nothing
    sdir = make_scenario_dir(tmp_path)
    lines = (sdir / "sim_history.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    del row["t_ns"]
    lines[2] = json.dumps(row)
    (sdir / "sim_history.jsonl").write_text("\n".join(lines) + "\n")
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "inconclusive"
    assert "sim_history.jsonl:3: a " in summary["error"] and "t_ns" in summary["error"]


def test_checker_crash_is_inconclusive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sdir = make_scenario_dir(tmp_path)

    def boom(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("checker bug")

    monkeypatch.setattr("experiments.analysis.run_checker", boom)
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "inconclusive"
    assert "checker bug" in summary["error"]
    assert all(t["passed"] is None for t in summary["thresholds"])


def test_run_layout_manifest_and_latest(tmp_path: Path) -> None:
    out = tmp_path / "results"
    first = create_run(out, "run-a")
    second = create_run(out, "run-a")
    assert second.name == "run-a-2"
    make_scenario_dir(second)
    summaries = [analyze_scenario_dir(second / "hand_made")]
    write_manifest(second, scenarios=[{"name": "hand_made", "seed": 0, "speed": SPEED}],
                   command=["python", "-m", "experiments", "run"], started="2026-01-01T00:00:00",
                   quick=False, jobs=1)
    write_run_summary(second, summaries)
    point_latest(first)
    point_latest(second)
    assert (out / "latest").is_symlink() and (out / "latest").resolve() == second.resolve()
    manifest = json.loads((second / "manifest.json").read_text())
    assert {"run_id", "command", "scenarios", "seeds", "speed", "git_sha", "versions", "host",
            "started", "finished"} <= set(manifest)
    assert manifest["seeds"] == {"hand_made": 0}
    assert manifest["versions"]["pandas"] == package_versions()["pandas"]
    run_summary = json.loads((second / "summary.json").read_text())
    assert run_summary["run_id"] == "run-a-2"
    assert [s["scenario"] for s in run_summary["scenarios"]] == ["hand_made"]
    assert resolve_run(out / "latest") == second.resolve()


def _analysed_run(tmp_path: Path, prepare: Any = None
                  ) -> tuple[Path, list[dict[str, Any]]]:
    """A stored run of two analysed scenarios, ``one`` and ``two`` (each made, then
    ``prepare``-d, then analysed), with its manifest and summary; and their summaries."""
    run_dir = create_run(tmp_path / "results", "r1")
    for name in ("one", "two"):
        sdir = make_scenario_dir(run_dir, name)
        if prepare is not None:
            prepare(sdir)
    first = [analyze_scenario_dir(run_dir / n) for n in ("one", "two")]
    write_manifest(run_dir, scenarios=[], command=[], started="", quick=False, jobs=1)
    write_run_summary(run_dir, first)
    return run_dir, first


def test_reanalysis_equals_the_first_analysis(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    run_dir, first = _analysed_run(tmp_path)
    outcomes_before = pd.read_parquet(run_dir / "one" / "outcomes.parquet")
    (run_dir / "one" / "outcomes.parquet").unlink()
    assert main(["analyze", str(run_dir)]) == 0
    after = json.loads((run_dir / "summary.json").read_text())["scenarios"]
    assert after == json.loads(json.dumps(first))
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "one" / "outcomes.parquet"),
                                  outcomes_before)
    assert "run directory" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["run_record", "sim_history", "scenario"])
def test_a_reanalysis_that_fails_keeps_the_earlier_results_and_exits_1(
        tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]) -> None:
    # a file damaged after a good analysis replaced its results with empty ones, exit 0
    run_dir, first = _analysed_run(tmp_path)
    sdir = run_dir / "one"
    kept = {p.name: p.read_bytes() for p in sdir.iterdir()
            if p.suffix == ".parquet" or p.name == "summary.json"}
    if damage == "run_record":
        (sdir / "run.json").write_text((sdir / "run.json").read_text()[:50])
    elif damage == "sim_history":
        (sdir / "sim_history.jsonl").write_text("{not json\n" +
                                                (sdir / "sim_history.jsonl").read_text())
    else:
        (sdir / "scenario.toml").unlink()
    assert main(["analyze", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: one: ") and "earlier results are kept" in err, err
    assert {n: (sdir / n).read_bytes() for n in kept} == kept
    after = json.loads((run_dir / "summary.json").read_text())["scenarios"]
    assert after == json.loads(json.dumps(first))


def test_a_reanalysis_of_a_run_under_seeds_pools_every_seed_again(tmp_path: Path) -> None:
    """The scenario's folder holds the pool and a copy of seed 1's files: analysing that
    copy replaced the pool (246 trades, 3 missed) with seed 1 alone (82, 0)."""
    from experiments.scenario import load_scenario
    from experiments.seeds import pool

    run_dir = create_run(tmp_path / "results", "r1")
    sdir = run_dir / "seeded"
    seeds_dir = sdir / "seeds"
    parts = []
    seeds_dir.mkdir(parents=True)
    for seed in (1, 2):
        one = make_scenario_dir(tmp_path / f"made{seed}", "seeded").rename(seeds_dir / str(seed))
        if seed == 2:  # seed 2 met its fault elsewhere: its trades are new trials
            rows = [json.loads(x) for x in (one / "sim_history.jsonl").read_text().splitlines()]
            for r in rows:
                if r["event"] in ("fault_start", "fault_stop"):
                    r["t_ns"] += 1_000_000
            (one / "sim_history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        parts.append(analyze_scenario_dir(one))
    pooled = pool(load_scenario(seeds_dir / "1" / "scenario.toml"), sdir, [1, 2], parts)
    write_manifest(run_dir, scenarios=[], command=[], started="", quick=False, jobs=1)
    write_run_summary(run_dir, [pooled])
    assert pooled["trades"] == 2 * parts[0]["trades"] and pooled["seeds"] == [1, 2]
    assert main(["analyze", str(run_dir)]) == 0
    again = json.loads((sdir / "summary.json").read_text())
    assert again == json.loads(json.dumps(pooled))
    after = json.loads((run_dir / "summary.json").read_text())["scenarios"]
    assert after == [again]


def test_a_scenario_listed_whose_folder_is_gone_is_said_and_kept_as_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It was dropped from summary.json, exit 0, and the report then judged the rest."""
    import shutil

    run_dir, _first = _analysed_run(tmp_path)
    shutil.rmtree(run_dir / "two")
    assert main(["analyze", str(run_dir)]) == 1
    assert "two: listed in the run but its folder two/ is missing" in capsys.readouterr().err
    after = json.loads((run_dir / "summary.json").read_text())["scenarios"]
    assert [(s["scenario"], s["status"]) for s in after] == [("one", "ok"), ("two", "missing")]


def test_a_failed_first_analysis_is_still_written_inconclusive(tmp_path: Path) -> None:
    # with nothing earlier to keep, the failure is the record (the report says so)
    sdir = make_scenario_dir(tmp_path)
    (sdir / "scenario.toml").unlink()
    summary = analyze_scenario_dir(sdir, keep_previous=True)
    assert summary["status"] == "inconclusive"
    assert json.loads((sdir / "summary.json").read_text())["status"] == "inconclusive"


def test_reanalysis_with_a_spare_core_reads_big_files_in_a_second_process_alike(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import experiments.analysis as analysis

    run_dir, first = _analysed_run(tmp_path, prepare=_unstamped)
    started: list[Path] = []

    class Counted(analysis._SecondProcess):
        def __init__(self, monitor_path: Path, det_path: Path, *args: Any) -> None:
            started.append(det_path)
            super().__init__(monitor_path, det_path, *args)

    monkeypatch.setattr(analysis, "_SecondProcess", Counted)
    monkeypatch.setattr(analysis, "SECOND_PROCESS_BYTES", 1)
    monkeypatch.setenv("EXPERIMENTS_RENDER_AHEAD", "1")
    assert main(["analyze", str(run_dir)]) == 0
    assert [p.parent.name for p in started] == ["one", "two"]
    after = json.loads((run_dir / "summary.json").read_text())["scenarios"]
    assert after == json.loads(json.dumps(first))
    started.clear()
    monkeypatch.setenv("EXPERIMENTS_RENDER_AHEAD", "0")  # no spare core: read here
    assert main(["analyze", str(run_dir)]) == 0
    assert started == []


def test_cli_bad_arguments_give_one_line_and_exit_2(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'}: no such run directory"
    assert main(["run", "no_such_scenario"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no_such_scenario: no such scenario") and "\n" not in err
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nrecording = "default"\nsim_duration_s = 10\n'
                   '[wallets]\ncount = 1\n[monitor]\nmode = "pigeon"\n')
    assert main(["validate", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {bad}: monitor.mode: must be websocket or polling")
    with pytest.raises(SystemExit) as info:
        main(["run", "--jobs", "zero"])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("error: argument --jobs")
    assert main(["validate"]) == 0


def test_read_jsonl_drops_only_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3, "tor', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(("text", "reason"), [
    ('{"a": 1}\n{bad\n{"a": 3}\n', "not JSON"),
    ('{"a": 1}\n[1, 2]\n{"a": 3}\n', "expected a JSON object"),
])
def test_read_jsonl_names_file_and_line_of_a_bad_line(tmp_path: Path, text: str,
                                                      reason: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(JsonlError, match=f"h.jsonl:2: {reason}") as info:
        read_jsonl(path)
    assert info.value.line == 2 and info.value.path == path


def test_analysis_streams_the_histories_instead_of_holding_them(tmp_path: Path) -> None:
    """A long run's histories are mostly rows the checker does not read (a simulated week:
    ~1.6 million, 4.4 GB as dicts): the analysis reads them a row at a time, so its memory
    does not grow with them, and the outcome is the same."""
    small = analyze_scenario_dir(make_scenario_dir(tmp_path / "a"))
    sdir = make_scenario_dir(tmp_path / "b")
    bulk = {"sim_history.jsonl": {"event": "request", "method": "eth_getLogs"},
            "monitor_history.jsonl": {"event": "delivered", "source": "ws"}}
    for name, row in bulk.items():
        with open(sdir / name, "a", encoding="utf-8") as fh:
            for i in range(20_000):
                fh.write(json.dumps({"t_ns": ns(60), **row, "n": i, "pad": "x" * 200}) + "\n")
    tracemalloc.start()
    try:
        summary = analyze_scenario_dir(sdir)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000  # the 40,000 rows held as dicts: ~25 MB
    assert {k: summary[k] for k in ("trades", "missed", "latency_p95_s", "api_calls")} == {
        k: small[k] for k in ("trades", "missed", "latency_p95_s", "api_calls")}


def _count_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the JSON-lines files the analysis opens in this process, in order."""
    import experiments.analysis as analysis

    opened: list[str] = []
    real = analysis.iter_jsonl

    def counting(path: Any, select: Any = None) -> Any:
        opened.append(Path(path).name)
        return real(path, select)

    monkeypatch.setattr(analysis, "iter_jsonl", counting)
    monkeypatch.setattr("experiments.store.iter_jsonl", counting)
    return opened


def test_analysis_reads_the_simulator_history_once_a_pass_it_needs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A monitor that did not stamp latency stages costs no pass over the histories for
    them, and the history's end (where an unstopped fault stops) and its fault rows come
    from the truth's pass, not passes of their own: one pass over the simulator's history,
    one over the detections. The end is still the last row's, selected or not."""

    sdir = make_scenario_dir(tmp_path)
    rows = [json.loads(line) for line in (sdir / "sim_history.jsonl").read_text().splitlines()]
    rows.append({"t_ns": ns(70), "event": "fault_start", "fault_id": "f9", "name": "ws_stall",
                 "target": "ws", "params": {}})  # never stopped
    rows.append({"t_ns": ns(120), "event": "request", "method": "eth_blockNumber"})
    write_jsonl(sdir / "sim_history.jsonl", rows)
    _unstamped(sdir)
    opened = _count_opens(monkeypatch)
    summary = analyze_scenario_dir(sdir)
    assert summary["status"] == "ok", summary["error"]
    full_passes = opened.count("sim_history.jsonl") - 1  # sim_start stops at the first row
    assert full_passes == 1, opened
    assert opened.count("detections.jsonl") == 1, opened
    stall = [f for f in summary["faults"] if f["name"] == "ws_stall"]
    assert stall and stall[0]["stop_s"] == pytest.approx(120.0)  # past the window's end
    assert summary["latency_stages"] is None


def test_a_monitor_that_stamped_stages_or_says_nothing_gets_them_looked_for() -> None:
    from experiments.analysis import _stamped

    assert not _stamped([{"event": "start", "settings": {"latency_stages": False}}])
    assert _stamped([{"event": "start", "settings": {"latency_stages": True}}])
    assert _stamped([{"event": "start", "settings": {}}])  # an older history: maybe
    assert _stamped([{"event": "start", "settings": {"latency_stages": False}},
                     {"event": "start", "settings": {"latency_stages": True}}])  # restarted
    assert _stamped([])


def test_an_endless_line_is_refused_before_it_is_read_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A corrupt history of one endless line was read whole by the analysis."""
    import experiments.store as store

    monkeypatch.setattr(store, "MAX_LINE_CHARS", 100)
    f = tmp_path / "h.jsonl"
    f.write_text('{"t_ns": 1, "event": "start"}\n' + "x" * 5000)
    with pytest.raises(JsonlError, match=r"h\.jsonl:2: a line longer than 100 characters"):
        read_jsonl(f)
    f.write_text('{"t_ns": 1, "event": "start"}\n' + '{"t_ns": 2}\n')
    assert [r["t_ns"] for r in read_jsonl(f)] == [1, 2]  # up to the bound: read


def _unstamped(sdir: Path) -> Path:
    """The monitor did not stamp latency stages (as in virtual time): the detections are
    read once, for the checker."""
    mon = [json.loads(line) for line in
           (sdir / "monitor_history.jsonl").read_text().splitlines()]
    mon[0]["settings"] = {"latency_stages": False}
    write_jsonl(sdir / "monitor_history.jsonl", mon)
    return sdir


def _frames(sdir: Path) -> dict[str, pd.DataFrame]:
    return {n: pd.read_parquet(sdir / f"{n}.parquet")
            for n in ("truth", "detections", "outcomes")}


def test_a_second_process_reads_the_detections_and_the_result_is_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a core to spare, a big detections file and the monitor's history are read by
    another process while this one reads the simulator's history: this process never opens
    them, and the summary and tables are those of an analysis without it."""
    import experiments.analysis as analysis

    alone = _unstamped(make_scenario_dir(tmp_path / "a"))
    expected = analyze_scenario_dir(alone)
    expected_frames = _frames(alone)
    sdir = _unstamped(make_scenario_dir(tmp_path / "b"))
    monkeypatch.setattr(analysis, "SECOND_PROCESS_BYTES", 1)
    opened = _count_opens(monkeypatch)
    summary = analyze_scenario_dir(sdir, second_process=True)
    assert summary["status"] == "ok", summary["error"]
    assert opened == ["sim_history.jsonl"] * 2, opened  # sim_start, the truth's pass
    assert summary == expected
    for name, frame in _frames(sdir).items():
        pd.testing.assert_frame_equal(frame, expected_frames[name])
    # below the size, or without a spare core, it is read here
    opened.clear()
    monkeypatch.setattr(analysis, "SECOND_PROCESS_BYTES", 1 << 40)
    assert analyze_scenario_dir(sdir, second_process=True) == expected
    assert opened.count("detections.jsonl") == 1 and opened.count("monitor_history.jsonl") == 1


def test_no_second_process_to_be_had_means_reading_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemonic process (a pool or cluster worker) may not start children: multiprocessing
    says so with an AssertionError. The analysis reads the files itself, the same result."""
    import concurrent.futures

    import experiments.analysis as analysis

    expected = analyze_scenario_dir(_unstamped(make_scenario_dir(tmp_path / "a")))
    sdir = _unstamped(make_scenario_dir(tmp_path / "b"))

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit", refused)
    monkeypatch.setattr(analysis, "SECOND_PROCESS_BYTES", 1)
    opened = _count_opens(monkeypatch)
    assert analyze_scenario_dir(sdir, second_process=True) == expected
    assert "detections.jsonl" in opened and "monitor_history.jsonl" in opened


def test_a_bad_detections_file_read_by_a_second_process_fails_as_it_fails_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import experiments.analysis as analysis

    errors = []
    for second in (False, True):
        sdir = make_scenario_dir(tmp_path / str(second))
        path = sdir / "detections.jsonl"
        lines = path.read_text().splitlines()
        lines.insert(1, '{"t_ns": 5, "kind": "trade", ')  # a bad line that is not the last
        path.write_text("\n".join(lines) + "\n")
        monkeypatch.setattr(analysis, "SECOND_PROCESS_BYTES", 1)
        summary = analyze_scenario_dir(sdir, second_process=second)
        assert summary["status"] == "inconclusive"
        errors.append(summary["error"].replace(str(sdir), "<dir>"))
    assert errors[0] == errors[1] and "detections.jsonl:2" in errors[0], errors


def test_an_analysis_that_fails_before_it_asks_the_second_process_still_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A simulator history that cannot give a truth stops the checker before it asks for
    what the second process reads: the scenario is inconclusive, and nothing waits for it."""
    import experiments.analysis as analysis

    sdir = _unstamped(make_scenario_dir(tmp_path))
    rows = [json.loads(line) for line in (sdir / "sim_history.jsonl").read_text().splitlines()]
    write_jsonl(sdir / "sim_history.jsonl",
                [r for r in rows if r.get("event") != "block_published"])
    monkeypatch.setattr(analysis, "SECOND_PROCESS_BYTES", 1)
    summary = analyze_scenario_dir(sdir, second_process=True)
    assert summary["status"] == "inconclusive"
    assert "no block_published rows" in summary["error"]
