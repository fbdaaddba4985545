"""The monitor against a node that sends each block's logs before its header (geth gives
either order): the reorg and drop scenarios in virtual time lose, repeat and invent no
trade, and every reorged-out trade is retracted."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.runner import RunnerOptions
from experiments.scenario import load_scenario, resolve_scenario
from experiments.virtual import run_scenario_virtual


@pytest.mark.parametrize("name", ["reorgs", "websocket_drops"])
def test_logs_before_heads_loses_repeats_and_invents_nothing(name: str, tmp_path: Path) -> None:
    base = load_scenario(resolve_scenario(name)).quickened()
    sc = base.model_copy(update={"rpc": {**base.rpc, "logs_before_heads": True}})
    summary = run_scenario_virtual(sc, tmp_path / sc.name,
                                   RunnerOptions(cache_dir=tmp_path / "cache"))
    assert summary["status"] == "ok", summary.get("error")
    assert summary["trades"] > 100
    assert (summary["missed"], summary["duplicates"], summary["phantoms"]) == (0, 0, 0)
    if name == "reorgs":
        assert summary["retracted"] > 0  # reorgs there were, judged with the logs first
    assert "logs_before_heads = true" in (tmp_path / sc.name / "scenario.toml").read_text()
