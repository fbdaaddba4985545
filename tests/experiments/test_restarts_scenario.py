"""``[[restarts]]`` in a scenario: the monitor killed or stopped mid-run, down a while,
and started again on the same state store and detections file, in virtual time. The
scenario format and the runner could not restart the monitor, so a chaos search could
not try it (tests/experiments/test_chaos_found_restarts.py had to swap the monitor class
in)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from experiments.chaos import broken
from experiments.cli import main
from experiments.runner import RunnerOptions, run_scenario
from experiments.scenario import ScenarioError, scenario_from_dict
from experiments.virtual import LOG_FILE, _logs_to, run_scenario_virtual

BASE: dict[str, Any] = {
    "name": "restarts", "profile": "default", "seed": 7, "blocks": 260,
    "sim_duration_s": 420.0, "speed": 1, "grace_s": 60.0,
    "thresholds": ["missed == 0", "duplicates == 0", "phantoms == 0"],
    "wallets": {"count": 6, "pick": "active"}, "monitor": {"mode": "websocket"},
}


def _with(restarts: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return {**BASE, **over, "restarts": restarts}


@pytest.mark.parametrize(("restarts", "error"), [
    ([{"at": 500, "kind": "kill"}], "restarts[0].at: 500 s is not inside the measured window"),
    ([{"at": 100, "kind": "kill", "down_s": 320}], "restarts[0].down_s: the monitor would "
                                                   "still be down"),
    ([{"at": 100, "kind": "crash"}], "restarts[0].kind: must be 'kill' or 'stop'"),
    ([{"at": 100, "kind": "kill", "down_s": 30}, {"at": 120, "kind": "stop"}],
     "restarts[1].at: 120 s is not after restarts[0] is up again (130 s)"),
    ([{"at": 200, "kind": "kill"}, {"at": 100, "kind": "stop"}], "restarts[1].at: 100 s"),
    ([{"at": -1, "kind": "stop"}], "restarts[0].at: must be >= 0"),
    ([{"at": 1, "kind": "stop", "down_s": float("nan")}], "restarts[0].down_s: must be >= 0"),
    ([{"kind": "stop"}], "restarts[0].at: required field is missing"),
    ([{"at": 1, "kind": "stop", "signal": 9}], "restarts[0].signal: unknown field"),
])
def test_a_restart_outside_the_window_overlapping_or_malformed_is_refused_naming_it(
        restarts: list[dict[str, Any]], error: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict(_with(restarts))
    assert error in str(exc.value)


def test_restarts_round_trip_through_scenario_toml_and_quick_keeps_those_that_fit(
        tmp_path: Path) -> None:
    import tomllib

    sc = scenario_from_dict(_with([{"at": 60, "kind": "kill", "down_s": 10},
                                   {"at": 200, "kind": "stop"}]))
    doc = sc.to_toml_dict()
    assert doc["restarts"] == [{"at": 60.0, "kind": "kill", "down_s": 10.0},
                               {"at": 200.0, "kind": "stop", "down_s": 0.0}]
    import tomli_w
    again = scenario_from_dict(tomllib.loads(tomli_w.dumps(doc)))
    assert again.restarts == sc.restarts
    assert [r.at for r in sc.quickened().restarts] == [60.0]  # 90 s quick run
    assert "restarts" not in scenario_from_dict(BASE).to_toml_dict()


def test_a_real_time_run_refuses_restarts_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only virtual time restarts the monitor: a real-time run says so, before it runs,
    not a run without the restarts the scenario asked for."""
    import tomli_w

    path = tmp_path / "restarts.toml"
    path.write_text(tomli_w.dumps(scenario_from_dict(
        _with([{"at": 60, "kind": "kill"}])).to_toml_dict()), encoding="utf-8")
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "virtual time only (--clock virtual)" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "latest").exists()
    assert main(["validate", str(path)]) == 0
    assert "--clock virtual only" in capsys.readouterr().out
    sc = scenario_from_dict(_with([{"at": 60, "kind": "kill"}]))
    summary = asyncio.run(run_scenario(sc, tmp_path / "direct",
                                       RunnerOptions(cache_dir=tmp_path / "cache")))
    assert summary["status"] == "harness_error"
    run = json.loads((tmp_path / "direct" / "run.json").read_text(encoding="utf-8"))
    assert "virtual time only" in run["error"]


def test_a_virtual_run_kills_and_stops_the_monitor_and_the_restarts_are_fault_windows(
        tmp_path: Path) -> None:
    """Killed at once, stopped for 30 s, killed for 90 s: every trade still delivered
    once, each restart a window of the summary's faults, the trades it delayed in it,
    and the monitor's history a start for each restart (a stop only for a clean one)."""
    sc = scenario_from_dict(_with([{"at": 60, "kind": "kill"},
                                   {"at": 100, "kind": "stop", "down_s": 30},
                                   {"at": 180, "kind": "kill", "down_s": 90}]))
    sdir = tmp_path / sc.name
    summary = run_scenario_virtual(sc, sdir, RunnerOptions(cache_dir=tmp_path / "cache"))
    assert summary["status"] == "ok", summary.get("error")
    assert summary["trades"] > 20 and broken(summary) == []
    windows = [(f["name"], f["start_s"], f["stop_s"]) for f in summary["faults"]]
    assert windows == [("monitor_kill", 60.0, 60.0), ("monitor_stop", 100.0, 130.0),
                       ("monitor_kill", 180.0, 270.0)]
    run = json.loads((sdir / "run.json").read_text(encoding="utf-8"))
    assert [(r["kind"], r["at_s"], r["down_s"]) for r in run["restarts"]] == \
        [("kill", 60.0, 0.0), ("stop", 100.0, 30.0), ("kill", 180.0, 90.0)]
    events = [json.loads(line)["event"] for line in
              (sdir / "monitor_history.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events.count("start") == 4 and events.count("stop") == 2
    outcomes = pd.read_parquet(sdir / "outcomes.parquet")
    down = outcomes[outcomes["fault"] == "monitor_kill"]
    assert len(down) > 0 and down["in_fault"].all()
    assert (down["latency_s"] > 30).any()  # published while it was down 90 s
    log = (sdir / LOG_FILE).read_text(encoding="utf-8")
    assert log.count("monitor started") == 4


def test_an_asyncio_error_of_a_virtual_run_goes_to_its_log_not_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The asyncio logger (a task's exception never retrieved, a callback that raised)
    was not sent to run.log: such an ERROR showed only on stderr, through the progress
    bar, and not in the run's log where its monitor's lines are."""
    path = tmp_path / LOG_FILE
    level = logging.getLogger("asyncio").level
    with _logs_to(path):
        loop = asyncio.new_event_loop()
        try:
            loop.call_exception_handler({"message": "Task exception was never retrieved",
                                         "exception": RuntimeError("boom")})
        finally:
            loop.close()
    said = capsys.readouterr()
    assert "boom" not in said.err + said.out
    text = path.read_text(encoding="utf-8")
    assert "ERROR asyncio: Task exception was never retrieved" in text and "boom" in text
    assert logging.getLogger("asyncio").level == level
