"""The real monitor against reorgs announced as geth announces a side chain that
overtakes in one import (the reorg fault's ``heads = "top"``): the removed logs, the new
branch's logs, and ONE newHeads header, the new top's, at the height the old head had.
Depths 1, 3 and 16 while watched wallets trade in the orphaned and the new blocks; and
with the ``removed`` logs lost (``removed_logs = false``), where only the top header's
parentHash, not matching the hash the monitor tracked, shows the reorg; and with the
provider's HTTP node two blocks behind its WebSocket node (``rpc_lag``), still on the
replaced chain and without the new top when the header comes. Virtual time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from experiments.runner import RunnerOptions
from experiments.scenario import scenario_from_dict
from experiments.virtual import run_scenario_virtual

#: when each reorg starts (simulated s) and its depth
REORGS = ((40.0, 1), (90.0, 3), (150.0, 16), (220.0, 3), (260.0, 1))


def _scenario(name: str, *, removed_logs: bool, http_lag: int = 0) -> Any:
    faults: list[dict[str, Any]] = [
        {"name": "reorg", "target": "chain", "at": at,
         "params": {"depth": depth, "seed": 100 + i, "heads": "top",
                    "removed_logs": removed_logs}}
        for i, (at, depth) in enumerate(REORGS)]
    if http_lag:
        faults.append({"name": "rpc_lag", "target": "rpc_http", "at": 10, "duration": 280,
                       "params": {"blocks": http_lag}})
    return scenario_from_dict({
        "name": name, "profile": "steady-1.5s", "seed": 7, "blocks": 500,
        "sim_duration_s": 300, "speed": 1, "grace_s": 60,
        "wallets": {"count": 20, "pick": "active"},
        "monitor": {"mode": "websocket", "block_interval": 1.5},
        "faults": faults,
    }, where="test")


def _rows(path: Path, event: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("event") == event]


@pytest.mark.slow
@pytest.mark.parametrize(("removed_logs", "http_lag"), [(True, 0), (False, 0), (True, 2),
                                                        (False, 2)],
                         ids=["removed_sent", "removed_lost", "removed_sent_http_lag",
                              "removed_lost_http_lag"])
def test_reorgs_with_only_the_top_head_lose_nothing_and_retract_every_orphan(
        tmp_path: Path, removed_logs: bool, http_lag: int) -> None:
    """With the HTTP node behind, the re-check took "no new top yet" for nothing to wait
    for and judged the blocks below it with the node's replaced ones: the new branch's
    live trades retracted (missed), the old one's delivered again (phantoms)."""
    sc = _scenario("reorg_top_heads", removed_logs=removed_logs, http_lag=http_lag)
    sdir = tmp_path / sc.name
    summary = run_scenario_virtual(sc, sdir, RunnerOptions(cache_dir=tmp_path))
    assert summary["status"] == "ok", summary["error"]
    # the faults happened as asked: five reorgs, top head only
    starts = [r for r in _rows(sdir / "sim_history.jsonl", "fault_start")
              if r["name"] == "reorg"]
    assert [(s["params"]["heads"], s["params"]["removed_logs"]) for s in starts] == \
        [("top", removed_logs)] * len(REORGS)
    assert [r["depth"] for r in _rows(sdir / "sim_history.jsonl", "reorg")] == \
        [d for _at, d in REORGS]
    # watched wallets' trades sat in the orphaned blocks (delivered, then retracted) and
    # in the new ones (moved and kept trades: none missed)
    truth = pd.read_parquet(sdir / "outcomes.parquet")
    for row in _rows(sdir / "sim_history.jsonl", "reorg"):
        lo, hi = row["from_number"], row["from_number"] + row["depth"] - 1
        here = truth[(truth["block_number"] >= lo) & (truth["block_number"] <= hi)]
        assert (here["outcome"] == "retracted").any(), f"no orphan in {lo}..{hi}"
        assert (here["outcome"] != "retracted").any(), f"no new trade in {lo}..{hi}"
    assert (summary["missed"], summary["duplicates"], summary["phantoms"]) == (0, 0, 0)
