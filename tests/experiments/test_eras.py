"""Eras: the default matrix runs on today's chain; the older era stays as named scenarios,
and each scenario's era reaches the summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from experiments.analysis import SUMMARY_KEYS, empty_summary
from experiments.runner import _base_run, resolve_recording, synth_cache_name
from experiments.scenario import list_default_scenarios, load_scenario, scenario_from_dict
from simulator import synth

ROOT = Path(__file__).resolve().parents[2]
TODAY = "2026-05+ (1.75 s blocks, V2)"
OLD = "2026-04 (2 s blocks, V1+V2)"


def test_every_default_scenario_validates() -> None:
    proc = subprocess.run([sys.executable, "-m", "experiments", "validate"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in list_default_scenarios():
        assert f"ok  {path.stem}" in proc.stdout, path.stem


def test_default_matrix_runs_on_todays_chain_and_keeps_the_older_era() -> None:
    scenarios = [load_scenario(p) for p in list_default_scenarios()]
    assert all(s.era for s in scenarios), [s.name for s in scenarios if not s.era]
    today = [s for s in scenarios if s.recording == "today"]
    old = [s for s in scenarios if s.recording == "default"]
    assert len(today) >= 10 and {s.name for s in old} == {"reorgs_2026q1_deep",
                                                           "websocket_clean_2026q1"}
    assert len(today) > len(scenarios) - len(today)  # today's chain is the default
    for s in today:
        assert s.era == TODAY, s.name
        assert s.monitor.block_interval == 1.75, s.name
        depths = [f.params.get("depth", 1) for f in s.faults if f.name == "reorg"]
        assert all(d <= 2 for d in depths), (s.name, depths)  # Heimdall v2: <= 2 blocks
    for s in old:
        assert s.era == OLD and s.monitor.block_interval == 2.0, s.name
    deep = load_scenario(ROOT / "experiments/scenarios/reorgs_2026q1_deep.toml")
    assert max(f.params["depth"] for f in deep.faults) == 12
    assert max(f.params["depth"] for f in deep.quickened().faults) == 12
    assert any(f.name == "reorg" for s in today for f in s.faults)


def test_today_and_default_resolve_to_the_shipped_recordings(tmp_path: Path) -> None:
    base = {"name": "x", "sim_duration_s": 60, "wallets": {"count": 1}}
    for name in ("today", "default"):
        sc = scenario_from_dict({**base, "recording": name})
        assert resolve_recording(sc, tmp_path) == synth.shipped_recording_path(name)
    assert not list(tmp_path.iterdir())  # nothing synthesised


def test_a_missing_shipped_recording_is_synthesised_by_its_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(synth.SHIPPED_RECORDINGS, "today", ("today", 5, 1))
    monkeypatch.setattr(synth, "shipped_recording_path", lambda name: tmp_path / "absent.gz")
    sc = scenario_from_dict({"name": "x", "sim_duration_s": 60, "wallets": {"count": 1},
                             "recording": "today"})
    path = resolve_recording(sc, tmp_path / "cache")
    assert path == tmp_path / "cache" / f"{synth_cache_name('today', 1, 5)}.jsonl.gz"
    assert path.exists() and path.name.startswith("today-")


def test_era_goes_into_the_run_record_and_the_summary() -> None:
    sc = scenario_from_dict({"name": "x", "sim_duration_s": 60, "wallets": {"count": 1},
                             "recording": "today", "era": TODAY})
    assert "era" in SUMMARY_KEYS
    run = _base_run(sc)
    assert run["era"] == TODAY
    assert empty_summary({**run, "status": "harness_error"})["era"] == TODAY
    assert sc.to_toml_dict()["era"] == TODAY  # scenario.toml in the run store keeps it
    assert scenario_from_dict({"name": "y", "sim_duration_s": 60, "wallets": {"count": 1},
                               "recording": "today"}).era is None  # optional
