"""A short seeded mixed-fault run with malformed data (the default matrix's malformed_mixed,
in virtual time): every valid trade delivered once, every kind of bad input injected is
counted by the monitor, and no task is dead at the end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from experiments.runner import RunnerOptions
from experiments.scenario import load_scenario, resolve_scenario
from experiments.virtual import run_scenario_virtual

# which family of monitor rejections answers each malformed fault of the simulator
FAMILY = {"ws_garbage": ("ws_",), "bad_log": ("decode_error",), "head_jump": ("head_jump",),
          "rpc_garbage": ("rpc_",), "explorer_garbage": ("explorer_",)}


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x]


@pytest.mark.slow
def test_malformed_mixed_loses_nothing_counts_every_kind_and_keeps_every_task(
        tmp_path: Path) -> None:
    sc = load_scenario(resolve_scenario("malformed_mixed"))
    summary = run_scenario_virtual(sc, tmp_path / sc.name, RunnerOptions(cache_dir=tmp_path))
    assert summary["status"] == "ok", summary["error"]
    assert summary["trades"] > 100
    assert (summary["missed"], summary["duplicates"], summary["phantoms"]) == (0, 0, 0)
    sdir = tmp_path / sc.name
    injected = Counter(r["name"] for r in rows(sdir / "sim_history.jsonl")
                       if r["event"] == "malformed")
    assert set(injected) == set(FAMILY), injected
    mon = rows(sdir / "monitor_history.jsonl")
    rejected = Counter(r["kind"] for r in mon if r["event"] == "bad_input")
    rejected["decode_error"] = sum(1 for r in mon if r["event"] == "decode_error")
    for name, prefixes in FAMILY.items():
        seen = sum(n for kind, n in rejected.items() if kind.startswith(prefixes))
        assert seen >= 1, f"{name}: injected {injected[name]}, none counted ({rejected})"
    assert sum(rejected.values()) >= 0.9 * sum(injected.values())
    tasks = next(r for r in mon if r["event"] == "tasks")
    assert tasks["alive"] and all(tasks["alive"].values()), tasks
    assert not [r for r in mon if r["event"] == "task_crash"]
