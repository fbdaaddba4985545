"""Randomised fault schedules (python -m experiments chaos): valid, deterministic, every
fault kind drawn, each ending in time for a correct monitor to recover; and a short
search runs clean."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from experiments.chaos import (
    CHAIN_PROFILES,
    FIRST_FAULT_S,
    GENERATORS,
    MONITOR_KNOBS,
    RECOVERY_S,
    STORM_FAULTS,
    STORM_S,
    UNCARRIED,
    broken,
    chaos_faults,
    chaos_scenario,
    chaos_storm,
    judge_websocket_wallets,
    judged_wallets,
    mixed_reorgs,
    poller_can_survive,
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
        assert 4 <= len(entries) <= 14 + STORM_FAULTS[1] + 3  # + a storm, mixed reorgs
        for f in entries:
            assert f["at"] >= FIRST_FAULT_S
            assert f["at"] + f.get("duration", 0.0) <= 3600.0 - RECOVERY_S
        seen |= {f["name"] for f in entries}
    assert seen == set(FAULTS)  # every kind is drawn
    assert chaos_scenario(1).faults != chaos_scenario(2).faults


def test_every_monitor_knob_and_chain_is_drawn_and_polled_wallets_face_what_they_survive(
        ) -> None:
    values: dict[str, set[object]] = {}
    profiles, modes, shares = set(), set(), set()
    for seed in range(200):
        sc = chaos_scenario(seed, 1800.0)  # validated: the monitor takes the settings
        profiles.add(sc.profile)
        settings = sc.monitor.settings()
        modes.add(settings["mode"])
        shares.add(settings.get("websocket_share", 100.0) < 100)
        assert settings["block_interval"] == CHAIN_PROFILES[str(sc.profile)]
        for name, value in settings.items():
            values.setdefault(name, set()).add(value)
        entries = [f.model_dump(exclude_none=True) for f in sc.faults]
        polled = settings["mode"] == "polling" or settings.get("websocket_share", 100) < 100
        if polled:  # a poller never retracts and reads only its overlap again
            overlap = settings.get("explorer_overlap_blocks", 64)
            assert all(poller_can_survive(f, overlap, settings["block_interval"])
                       for f in entries  # bar the reorgs of a schedule judged on
                       if not (f["name"] == "reorg"  # its WebSocket wallets alone
                               and mixed_reorgs(seed, settings)))
        if settings["mode"] == "polling":
            assert all(f["name"].startswith("explorer_") for f in entries)
    assert profiles == set(CHAIN_PROFILES)
    assert modes == {"polling", "websocket"} and shares == {True, False}
    for name, choices in MONITOR_KNOBS.items():  # every value of every knob the
        if name not in UNCARRIED:                # scenario can carry is drawn
            assert values[name] == set(choices), name
    assert not UNCARRIED & set(values)


def test_a_poller_is_not_asked_to_survive_a_reorg_or_a_lag_past_its_overlap() -> None:
    assert not poller_can_survive({"name": "reorg", "at": 1.0}, 64, 2.0)
    lag = {"name": "explorer_lag", "at": 1.0, "params": {"extra_s": 120.0}}
    assert not poller_can_survive(lag, 64, 2.0)
    assert poller_can_survive(lag, 200, 2.0)
    assert poller_can_survive({"name": "explorer_down", "at": 1.0}, 64, 2.0)


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



@pytest.mark.slow
def test_the_simulated_explorer_keeps_every_block_an_outage_hides(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A streamed chain keeps 96 blocks, and its explorer indexed only those at its first
    request after an outage: seed 5 (900 s: the explorer down from 193 s to 444 s, two
    overlapping faults) "missed" 45 trades a real explorer would have answered, and the
    search widened the chain's window to hide it. The explorer now archives what the
    window lets go (e3e9113): the schedule runs on the default window, and loses nothing.
    The schedule as written, its restart changing no wallet (the draws of 85230e1 give
    it +2 -2 wallets: a removed wallet's trades the outage held are another question)."""
    import experiments.chaos as chaos

    monkeypatch.setattr(chaos, "_wallet_changes", lambda seed, restarts, wallets: restarts)
    sc = chaos_scenario(5, 900.0)
    downs = [f for f in sc.faults if f.name == "explorer_down"]
    assert max(f.at + f.duration for f in downs) - min(f.at for f in downs) > 200
    assert "window_blocks" not in sc.chain
    result = run_chaos([5], out=tmp_path, duration_s=900.0, progress=False)
    assert result.failures == [] and result.summaries[0]["status"] == "ok"
    assert result.summaries[0]["missed"] == 0 and result.summaries[0]["trades"] > 100


def test_every_monitor_knob_the_search_draws_reaches_the_scenario() -> None:
    """subscription_mode, reconcile_interval, head_lag_blocks and explorer_overlap_blocks
    were drawn and dropped: the scenario's [monitor] table could not carry them, so the
    committed search could not find the defects they expose (seeds 141, 142)."""
    from experiments.chaos import MONITOR_KNOBS, UNCARRIED

    assert not UNCARRIED
    given: set[str] = set()
    for seed in range(200):
        given |= set(chaos_scenario(seed, 900.0).monitor.settings())
    assert set(MONITOR_KNOBS) <= given


def test_some_schedules_are_storms_of_overlapping_faults_in_ten_minutes() -> None:
    """Spread-out schedules rarely hold more than two or three faults at once: one in
    four gets 8 to 20 more inside one 10-minute stretch, from a generator of its own (the
    other schedules stay what they were)."""
    storms = 0
    for seed in range(120):
        sc = chaos_scenario(seed, 3600.0)
        entries = [f.model_dump(exclude_none=True) for f in sc.faults]
        if "storm" not in sc.description:
            assert len(entries) <= 14 + 3
            continue
        storms += 1
        rng = random.Random(f"chaos-storm:{seed}")
        rng.randrange(4)
        ours = chaos_storm(rng, 3600.0)  # with no keep: the same as kept in websocket mode
        if sc.monitor.settings()["mode"] == "websocket" and \
                sc.monitor.settings().get("websocket_share", 100) >= 100:
            assert {(f["name"], f["at"]) for f in ours} <= \
                {(f["name"], f["at"]) for f in entries}
        n = len(ours)
        assert STORM_FAULTS[0] <= n <= STORM_FAULTS[1]
        first = min(f["at"] for f in ours)
        assert max(f["at"] + f.get("duration", 0.0) for f in ours) - first <= STORM_S
        assert first >= FIRST_FAULT_S
        assert max(f["at"] + f.get("duration", 0.0) for f in ours) <= 3600.0 - RECOVERY_S
    assert 15 <= storms <= 50
    for seed in (1, 2, 3):  # a storm even in a run too short for the whole stretch
        faults = chaos_storm(random.Random(seed), FIRST_FAULT_S + RECOVERY_S + 30)
        assert all(f["at"] >= FIRST_FAULT_S and f["at"] + f.get("duration", 0.0)
                   <= FIRST_FAULT_S + 30 for f in faults)


def test_partial_rollouts_draw_reorgs_and_are_judged_on_their_websocket_wallets(
        tmp_path: Path) -> None:
    """A poller never retracts, so a partial rollout drew no reorg, and the WebSocket
    shards beside the polled wallets never met one. Half of them now do, with at least
    one reorg, and only their WebSocket wallets are judged."""
    import pandas as pd

    from monitor.cores import assign_source

    mixed = plain = 0
    for seed in range(200):
        sc = chaos_scenario(seed, 1800.0)
        settings = sc.monitor.settings()
        if not mixed_reorgs(seed, settings):
            if settings.get("websocket_share", 100) < 100:
                plain += 1
                assert not any(f.name == "reorg" for f in sc.faults)
            continue
        mixed += 1
        assert settings["mode"] == "websocket" and settings["websocket_share"] < 100
        assert any(f.name == "reorg" for f in sc.faults)
        assert "judged on the WebSocket wallets" in sc.description
        assert all(poller_can_survive(f.model_dump(exclude_none=True),
                                      settings.get("explorer_overlap_blocks", 64),
                                      settings["block_interval"])
                   for f in sc.faults if f.name != "reorg")
    assert mixed >= 20 and plain >= 20
    seed = next(s for s in range(200)
                if mixed_reorgs(s, chaos_scenario(s, 1800.0).monitor.settings()))
    sc = chaos_scenario(seed, 1800.0)
    share = sc.monitor.settings()["websocket_share"]
    wallets = ["0x" + f"{i:040x}" for i in range(1, 60)]
    on_ws = [w for w in wallets if assign_source(w, share) == "websocket"]
    polled = [w for w in wallets if w not in on_ws]
    assert judged_wallets(sc, wallets) == on_ws and on_ws and polled
    assert judged_wallets(chaos_scenario(1, 1800.0), wallets) == wallets
    pd.DataFrame({"wallet": [polled[0], polled[1], on_ws[0], on_ws[1]],
                  "outcome": ["phantom", "missed", "detected", "retracted"]}
                 ).to_parquet(tmp_path / "outcomes.parquet")
    summary = {"status": "ok", "missed": 1, "duplicates": 0, "phantoms": 1}
    assert broken(judge_websocket_wallets(summary, sc, tmp_path)) == []
    shown = judge_websocket_wallets(summary, sc, tmp_path)  # what the table shows
    assert shown["judged_on"] == "2 WebSocket wallets of 4"
    assert shown["all_wallets"] == {"missed": 1, "duplicates": 0, "phantoms": 1}
    summary["thresholds"] = [{"expr": "phantoms == 0", "passed": False, "value": 1}]
    assert [t["passed"] for t in judge_websocket_wallets(summary, sc, tmp_path)
            ["thresholds"]] == [True]  # the table's column, as judged
    del summary["thresholds"]
    pd.DataFrame({"wallet": [polled[0], on_ws[0]], "outcome": ["phantom", "phantom"]}
                 ).to_parquet(tmp_path / "outcomes.parquet")
    assert broken(judge_websocket_wallets(summary, sc, tmp_path)) == ["1 phantoms"]
    (tmp_path / "outcomes.parquet").unlink()
    assert broken(judge_websocket_wallets(summary, sc, tmp_path))[0].startswith(
        "status harness_error")


def test_some_schedules_restart_the_monitor_from_a_generator_of_their_own() -> None:
    """The scenario format could not restart the monitor, so the search never tried a
    kill or a clean stop mid-run. One schedule in three now restarts it 1 to 3 times,
    each inside the window and ending in time to recover, one after the other; the
    schedules' other draws (chain, monitor, faults) are those of before."""
    from experiments.chaos import RESTART_ODDS, chaos_restarts

    with_restarts, kinds, downs = 0, set(), set()
    for seed in range(150):
        sc = chaos_scenario(seed, 1800.0)
        drawn = chaos_restarts(seed, 1800.0)
        assert [r.model_dump() for r in sc.restarts] == drawn
        if not drawn:
            assert "restarted" not in sc.description
            continue
        with_restarts += 1
        assert "the monitor restarted (" in sc.description
        up = FIRST_FAULT_S - 1
        for r in drawn:
            assert r["at"] > up and r["at"] + r["down_s"] <= 1800.0 - RECOVERY_S
            up = r["at"] + r["down_s"]
            kinds.add(r["kind"])
            downs.add(r["down_s"])
        plain = sc.model_copy(update={"restarts": ()})  # its other draws: unchanged
        assert plain.faults == chaos_scenario(seed, 1800.0).faults
    assert 150 / RESTART_ODDS / 2 <= with_restarts <= 150 / RESTART_ODDS * 2
    assert kinds == {"kill", "stop"} and {0.0, 120.0} <= downs


def test_the_chaos_table_shows_the_counts_a_run_is_judged_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A partial rollout with reorgs passes or fails on its WebSocket wallets, but the
    table showed every wallet's counts: phantoms of polled wallets in a row of a run that
    passed. The table now shows the judged counts, labelled, and says every wallet's."""
    import experiments.chaos as chaos

    judged = {"scenario": "chaos_9", "status": "ok", "mode": "websocket", "trades": 50,
              "missed": 0, "duplicates": 0, "phantoms": 0,
              "judged_on": "12 WebSocket wallets of 20",
              "all_wallets": {"missed": 0, "duplicates": 0, "phantoms": 3}}
    monkeypatch.setattr(chaos, "run_chaos", lambda *a, **k: chaos.ChaosResult(
        tmp_path, [judged], []))
    assert main(["chaos", "--runs", "1", "--duration", "900", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "chaos_9" in line and "websocket" in line)
    assert "(ws wallets)" in row and "3" not in row.split("│")[10]
    assert "all wallets: 0 missed, 0 duplicates, 3 phantoms" in " ".join(out.split())
