"""Randomised fault schedules (python -m experiments chaos): valid, deterministic, every
fault kind drawn, each ending in time for a correct monitor to recover; and a short
search runs clean."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from experiments.chaos import (
    FIRST_FAULT_S,
    GENERATORS,
    RECOVERY_S,
    broken,
    chaos_faults,
    chaos_scenario,
    run_chaos,
)
from experiments.cli import main
from simulator.faults import FAULTS, FaultPlan


def test_every_fault_kind_the_simulator_knows_has_a_generator() -> None:
    assert set(GENERATORS) == set(FAULTS)


def test_chaos_schedules_are_valid_deterministic_and_leave_time_to_recover() -> None:
    seen: set[str] = set()
    for seed in range(200):
        sc = chaos_scenario(seed, 3600.0)
        assert sc == chaos_scenario(seed, 3600.0)  # a pure function of the seed
        entries = [f.model_dump(exclude_none=True) for f in sc.faults]
        FaultPlan.parse(entries).windows(sc.sim_duration_s)  # the simulator takes it
        assert 4 <= len(entries) <= 14
        for f in entries:
            assert f["at"] >= FIRST_FAULT_S
            assert f["at"] + f.get("duration", 0.0) <= 3600.0 - RECOVERY_S
        seen |= {f["name"] for f in entries}
    assert seen == set(FAULTS)  # every kind is drawn
    assert chaos_scenario(1).faults != chaos_scenario(2).faults


def test_a_run_too_short_to_recover_is_refused() -> None:
    with pytest.raises(ValueError, match="needs more than"):
        chaos_faults(random.Random(1), RECOVERY_S + FIRST_FAULT_S)


def test_broken_names_what_broke() -> None:
    assert broken({"status": "ok", "missed": 0, "duplicates": 0, "phantoms": 0}) == []
    assert broken({"status": "ok", "missed": 2, "duplicates": 0, "phantoms": 1}) == \
        ["2 missed", "1 phantoms"]
    assert broken({"status": "harness_error", "error": "boom"}) == \
        ["status harness_error: boom"]


def test_a_too_short_duration_is_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chaos", "--duration", "100", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--duration must be at least" in err[0]


@pytest.mark.slow
def test_a_short_chaos_search_holds_every_invariant(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    result = run_chaos([1, 2], out=tmp_path, duration_s=900.0, progress=False)
    assert result.failures == []
    assert [s["status"] for s in result.summaries] == ["ok", "ok"]
    assert all(s["trades"] > 100 for s in result.summaries)
    assert (result.run_dir / "chaos_1" / "scenario.toml").is_file()  # replayable
    assert main(["chaos", "--runs", "1", "--seed", "3", "--duration", "900", "--out",
                 str(tmp_path), "--no-progress"]) == 0
    assert "no trade missed, repeated or invented" in capsys.readouterr().out

