"""``[[restarts]]`` that change the wallet list (``add_wallets``, ``remove_wallets``): the
restarted monitor watches the changed list, and the truth counts a wallet's trades only
while it was watched - an added one's from its launch point (the simulator's head when
the restarted monitor started), a removed one's up to the old monitor's stop. Scenarios
could not say it (the list was fixed for the run), while several monitor bugs were
exactly there (a wallet added at a restart getting trades from before its launch,
1065d49)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from experiments.runner import HarnessError, RunnerOptions, restart_wallets
from experiments.scenario import ScenarioError, load_scenario, scenario_from_dict
from experiments.virtual import run_scenario_virtual

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "experiments" / "scenarios" / "restarts" / "restart_wallet_changes.toml"

BASE: dict[str, Any] = {
    "name": "changes", "profile": "default", "seed": 7, "blocks": 260,
    "sim_duration_s": 300.0, "speed": 1, "grace_s": 60.0,
    "wallets": {"count": 3, "pick": "active"}, "monitor": {"mode": "websocket"},
}


def _with(restarts: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return {**BASE, **over, "restarts": restarts}


@pytest.mark.parametrize(("restarts", "over", "error"), [
    ([{"at": 10, "kind": "stop", "add_wallets": -1}], {},
     "restarts[0].add_wallets: must be >= 0"),
    ([{"at": 10, "kind": "stop", "remove_wallets": 10_001}], {},
     "restarts[0].remove_wallets: must be at most 10000"),
    ([{"at": 10, "kind": "stop", "add_wallets": "2"}], {},
     "restarts[0].add_wallets: must be a number"),
    ([{"at": 10, "kind": "stop", "remove_wallets": True}], {},
     "restarts[0].remove_wallets: must be a number"),
    ([{"at": 10, "kind": "stop", "remove_wallets": 4, "add_wallets": 5}], {},
     "restarts[0].remove_wallets: only 3 wallets are watched then, got 4"),
    ([{"at": 10, "kind": "stop", "remove_wallets": 3}], {},
     "restarts[0].remove_wallets: 3 of the 3 wallets watched then would leave none"),
    ([{"at": 10, "kind": "stop", "remove_wallets": 2},
      {"at": 20, "kind": "kill", "remove_wallets": 1}], {},
     "restarts[1].remove_wallets: 1 of the 1 wallets watched then would leave none"),
    ([{"at": 10, "kind": "stop", "add_wallets": 9_998}], {},
     "restarts[0].add_wallets: 10001 wallets watched in the run, more than 10000"),
    ([{"at": 10, "kind": "stop", "remove_wallets": 2}], {"quick": {"wallets": 2}},
     "(in the --quick form: quick.wallets = 2)"),
    ([{"at": 10, "kind": "stop", "remove_wallets": 1}],
     {"wallets": {"list": ["0x" + "11" * 20]}},
     "restarts[0].remove_wallets: 1 of the 1 wallets"),
])
def test_a_wallet_change_out_of_bounds_is_refused_naming_the_field(
        restarts: list[dict[str, Any]], over: dict[str, Any], error: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        scenario_from_dict(_with(restarts, **over))
    assert error in str(exc.value)


def test_wallet_changes_round_trip_and_are_left_out_of_scenario_toml_when_none() -> None:
    import tomllib

    import tomli_w

    sc = scenario_from_dict(_with([{"at": 60, "kind": "stop", "add_wallets": 2,
                                    "remove_wallets": 1},
                                   {"at": 200, "kind": "kill"}]))
    doc = sc.to_toml_dict()
    assert doc["restarts"] == [{"at": 60.0, "kind": "stop", "down_s": 0.0, "add_wallets": 2,
                                "remove_wallets": 1},
                               {"at": 200.0, "kind": "kill", "down_s": 0.0}]
    assert scenario_from_dict(tomllib.loads(tomli_w.dumps(doc))).restarts == sc.restarts
    assert load_scenario(SCENARIO).restarts[0].changes_wallets


def test_the_scenario_is_kept_out_of_the_default_matrix() -> None:
    from experiments.scenario import list_default_scenarios

    assert SCENARIO.exists() and SCENARIO not in list_default_scenarios()


def test_the_restarts_wallet_plan_is_seeded_picks_as_wallets_picks_and_never_brings_one_back(
        ) -> None:
    counts = {f"0x{i:040x}": 100 - i for i in range(20)}
    sc = scenario_from_dict(_with([{"at": 10, "kind": "stop", "add_wallets": 2,
                                    "remove_wallets": 2},
                                   {"at": 20, "kind": "kill", "add_wallets": 2,
                                    "remove_wallets": 3}]))
    first = [f"0x{i:040x}" for i in range(3)]
    plan = restart_wallets(sc, first, counts)
    assert plan == restart_wallets(sc, first, counts)  # the same lists every time
    (add1, rem1), (add2, rem2) = plan
    assert add1 == [f"0x{i:040x}" for i in (3, 4)]  # the next most active
    assert add2 == [f"0x{i:040x}" for i in (5, 6)]  # none removed comes back
    assert len(rem1) == 2 and set(rem1) <= set(first)
    assert len(rem2) == 3 and set(rem2) <= (set(first) - set(rem1)) | set(add1)
    other = restart_wallets(sc.model_copy(update={"seed": 8}), first, counts)
    assert [a for a, _ in other] == [add1, add2]
    with pytest.raises(HarnessError, match=r"restarts\[0\].add_wallets = 2 but the chain "
                                           r"has only 1 wallets with trades"):
        restart_wallets(sc, first, dict(list(counts.items())[:4]))


def _run(sdir: Path, cache: Path) -> dict[str, Any]:
    summary = run_scenario_virtual(load_scenario(SCENARIO), sdir, RunnerOptions(cache_dir=cache))
    assert summary["status"] == "ok", summary.get("error")
    return summary


def _fills(sdir: Path) -> list[tuple[int, str, str]]:
    """(block number, trade id, maker) of every fill the simulator published."""
    out = []
    for line in (sdir / "sim_history.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("event") == "block_published":
            out += [(row["number"], str(t).lower(), str(m).lower())
                    for t, m in row.get("order_filled") or []]
    return out


@pytest.mark.slow
def test_a_run_adding_and_removing_wallets_at_restarts_judges_each_only_while_watched(
        tmp_path: Path) -> None:
    """Two restarts (a stop adding 2 and removing 1, a kill adding 1 and removing 2):
    nothing missed, duplicated or phantom; the added wallets' trades mined before their
    launch and the removed wallets' trades mined after the restarted monitor's start
    were published, are not in the truth and were not delivered; every trade a removed
    wallet made while watched was delivered; a second run gives the same bytes."""
    cache = tmp_path / "cache"
    a = _run(tmp_path / "a", cache)
    sdir = tmp_path / "a"
    assert a["trades"] > 50
    assert (a["missed"], a["duplicates"], a["phantoms"]) == (0, 0, 0)
    run = json.loads((sdir / "run.json").read_text(encoding="utf-8"))
    changes = [(r["added"], r["removed"], r["launch_block"], r["stop_block"],
                r["started_block"]) for r in run["restarts"]]
    assert [(len(c[0]), len(c[1])) for c in changes] == [(2, 1), (1, 2)]
    for r in run["restarts"]:  # the heads in order; the monitor's own launch point (told,
        # not trusted) read while it started
        assert r["stop_block"] <= r["removed_block"] <= r["launch_block"] <= r["started_block"]
        assert all(r["launch_block"] <= b <= r["started_block"]
                   for b in r["launches_stored"].values())
    assert len(run["wallets"]) == 9 == a["wallets"]
    watch = {w["wallet"]: w for w in run["watch"]}
    assert set(watch) == set(run["wallets"])
    truth = pd.read_parquet(sdir / "truth.parquet")
    det = [json.loads(line) for line in
           (sdir / "detections.jsonl").read_text(encoding="utf-8").splitlines()]
    delivered = {str(d["trade"]["id"]).lower() for d in det if d["kind"] == "trade"}
    fills = _fills(sdir)
    before_launch = after_start = owed = 0
    for added, removed, launch, stopped, started in changes:
        for w in added:
            assert watch[w]["after_block"] == launch and watch[w]["from_s"] is not None
            early = {t for n, t, m in fills if m == w and n <= launch}
            until = watch[w]["until_block"]
            late = {t for n, t, m in fills
                    if m == w and n > launch and (until is None or n <= until)}
            before_launch += len(early)
            assert not early & set(truth["trade_id"]) and not early & delivered
            assert late <= set(truth["trade_id"])
        for w in removed:  # judged up to the stop; what the new monitor read of its
            # owed trades up to its start (monitor.departed) neither expected nor phantom
            assert watch[w]["until_block"] == started
            assert [stopped + 1, started] in watch[w]["unjudged_blocks"]
            gone = {t for n, t, m in fills if m == w and n > started}
            after_start += len(gone)
            assert not gone & set(truth["trade_id"]) and not gone & delivered
            judged = set(truth.loc[truth["in_window"], "trade_id"])
            mine = {t for n, t, m in fills if m == w and n <= stopped} & judged
            assert mine <= delivered
            owed += len(mine)
    assert before_launch > 10 and after_start > 5 and owed > 5  # something to see
    # deterministic: the same scenario and seed, byte-identical detections and outcomes
    b = _run(tmp_path / "b", cache)
    for name in ("detections.jsonl", "outcomes.parquet", "truth.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    keys = ("trades", "detected", "late", "missed", "duplicates", "phantoms", "wallets")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert json.loads((tmp_path / "b" / "run.json").read_text())["watch"] == run["watch"]
