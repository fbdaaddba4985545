"""Virtual time: deterministic, equivalent to real time, and the same through Dask.

The simulator and the real monitor share one looptime loop in one process and talk over
real loopback sockets (``python -m experiments run --clock virtual``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from experiments.runner import RunnerOptions
from experiments.scenario import load_scenario, resolve_scenario
from experiments.seeds import reseed
from experiments.virtual import run_scenario_virtual

ROOT = Path(__file__).resolve().parents[2]


def _virtual(name: str, out: Path, cache: Path, seed: int | None = None) -> dict[str, Any]:
    sc = load_scenario(resolve_scenario(name)).quickened()
    if seed is not None:
        sc = reseed(sc, seed)
    return run_scenario_virtual(sc, out / sc.name, RunnerOptions(cache_dir=cache))


def test_a_scenario_built_in_code_that_is_not_valid_is_refused_before_the_run(
        tmp_path: Path) -> None:
    """A Scenario changed in code (``model_copy``) is not validated: a fault past the end
    ran the whole scenario, and only its analysis (which reads scenario.toml back) said
    so - ``make bench``'s busy run spent its time to end inconclusive. Refused before
    anything runs now."""
    sc = load_scenario(resolve_scenario("reorgs")).model_copy(
        update={"sim_duration_s": 60.0, "grace_s": 10.0})
    assert max(f.at or 0 for f in sc.faults) > 70  # starts after the run ends
    summary = run_scenario_virtual(sc, tmp_path / sc.name,
                                   RunnerOptions(cache_dir=tmp_path / "cache"))
    run = json.loads((tmp_path / sc.name / "run.json").read_text())
    assert run["status"] == "harness_error" and "nothing was run" in run["error"]
    assert "is after the run ends" in run["error"]
    assert not (tmp_path / sc.name / "sim_history.jsonl").exists()
    assert summary["status"] != "ok"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reorgs", "provider_outage"])
def test_same_scenario_and_seed_twice_gives_byte_identical_detections_and_outcomes(
        name: str, tmp_path: Path) -> None:
    a = _virtual(name, tmp_path / "a", tmp_path / "cache", seed=4)
    b = _virtual(name, tmp_path / "b", tmp_path / "cache", seed=4)
    assert a["status"] == b["status"] == "ok" and a["trades"] > 50
    da = (tmp_path / "a" / name / "detections.jsonl").read_bytes()
    db = (tmp_path / "b" / name / "detections.jsonl").read_bytes()
    assert da == db and len(da) > 1000
    oa = pd.read_parquet(tmp_path / "a" / name / "outcomes.parquet")
    ob = pd.read_parquet(tmp_path / "b" / name / "outcomes.parquet")
    pd.testing.assert_frame_equal(oa, ob)
    keys = ("trades", "detected", "late", "missed", "duplicates", "phantoms", "retracted",
            "latency_p50_s", "latency_p95_s", "uptime", "coverage")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["malformed_mixed", "websocket_drops"])
def test_results_do_not_depend_on_the_idle_checks_before_a_clock_jump(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock jumps after fewer idle loop turns (``NOOP_CYCLES`` 0, for speed) with the
    same results as after many: nothing in flight on the loopback sockets is skipped."""
    import experiments.virtual as virtual

    runs = {}
    for cycles in (0, 8):
        monkeypatch.setattr(virtual, "NOOP_CYCLES", cycles)
        runs[cycles] = _virtual(name, tmp_path / str(cycles), tmp_path / "cache", seed=3)
    assert runs[0]["status"] == runs[8]["status"] == "ok" and runs[0]["trades"] > 50
    da = (tmp_path / "0" / name / "detections.jsonl").read_bytes()
    assert da == (tmp_path / "8" / name / "detections.jsonl").read_bytes() and da
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "0" / name / "outcomes.parquet"),
                                  pd.read_parquet(tmp_path / "8" / name / "outcomes.parquet"))
    keys = ("trades", "missed", "duplicates", "phantoms", "retracted", "latency_p50_s",
            "latency_p95_s", "uptime")
    assert {k: runs[0][k] for k in keys} == {k: runs[8][k] for k in keys}


def test_wallets_counted_from_the_plans_are_those_of_the_synthesised_file(
        tmp_path: Path) -> None:
    """Virtual time synthesises a profile's chain while it replays it and never writes
    it: its wallets come from the block plans, the same counts as the file's logs."""
    from experiments.runner import _synth, planned_trades_by_wallet, trades_by_wallet

    planned = planned_trades_by_wallet("default", 7, 300, tmp_path / "plans")
    assert planned == trades_by_wallet(_synth("default", 7, 300, tmp_path / "files"))
    assert len(planned) > 20
    assert planned_trades_by_wallet("default", 7, 300, tmp_path / "plans") == planned


@pytest.mark.slow
def test_another_seed_gives_another_fault_schedule(tmp_path: Path) -> None:
    a = _virtual("reorgs", tmp_path / "a", tmp_path / "cache", seed=1)
    b = _virtual("reorgs", tmp_path / "b", tmp_path / "cache", seed=2)
    assert a["faults"] != b["faults"]


def _run(args: list[str], timeout: float = 900) -> None:
    proc = subprocess.run([sys.executable, "-m", "experiments", "run", *args,
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _summary(run: Path, name: str) -> dict[str, Any]:
    return json.loads((run / "latest" / name / "summary.json").read_text())


EQUIVALENT = ["polling_15s", "provider_outage"]
OUTAGE_SEEDS = [1, 2, 3, 4]


@pytest.mark.slow
def test_virtual_and_real_time_agree(tmp_path: Path) -> None:
    """Same missed, duplicates, phantoms and retractions; polling latency quantiles within
    10%, the in-fault p95 of the websocket scenario within 15% (real time at the
    scenarios' speed 30).

    provider_outage runs under four seeds on both clocks and is compared pooled. One run
    has two outage windows, and its in-fault p95 (the tenth-largest of about 190
    latencies) falls on the edge of one cluster of a dozen trades that wait for the same
    fallback poll: 18.3 s in virtual time, 24.9 or 28.1 s in real time on a loaded
    machine, as the cluster lands one side of the quantile or the other. Four seeds give
    eight windows at shifted phases, so the quantile measures the distribution rather than
    one cluster. What remains is real time's own cost: each wall millisecond the monitor
    spends on a poll round is 30 simulated milliseconds at speed 30 (in-fault poll mean
    15.3 vs 13.7 s), which virtual time leaves out by design; hence 15%."""
    outage = tmp_path / "provider_outage.toml"
    text = (ROOT / "experiments" / "scenarios" / "provider_outage.toml").read_text()
    outage.write_text(text.replace('name = "provider_outage"',
                                   f'name = "provider_outage"\nseeds = {OUTAGE_SEEDS}'))
    scenarios = ["polling_15s", str(outage)]
    _run([*scenarios, "--jobs", "2", "--out", str(tmp_path / "real")])
    _run([*scenarios, "--clock", "virtual", "--out", str(tmp_path / "virtual")])
    for name in EQUIVALENT:
        real, virt = _summary(tmp_path / "real", name), _summary(tmp_path / "virtual", name)
        assert real["status"] == virt["status"] == "ok", (real["error"], virt["error"])
        for key in ("trades", "missed", "duplicates", "phantoms", "retracted"):
            assert real[key] == virt[key], (name, key, real[key], virt[key])
        quantiles = ([("latency_p50_s", 0.10), ("latency_p95_s", 0.10)]
                     if real["mode"] == "polling" else [("latency_p95_in_fault_s", 0.15)])
        for key, rel in quantiles:
            assert virt[key] == pytest.approx(real[key], rel=rel), (name, key)
    assert _summary(tmp_path / "real", "provider_outage")["seeds"] == OUTAGE_SEEDS


@pytest.mark.slow
def test_dask_local_cluster_gives_the_results_of_a_local_run(tmp_path: Path) -> None:
    import distributed  # noqa: F401  (the dask extra; make test installs it)
    args = ["reorgs", "--quick", "--clock", "virtual", "--seeds", "2"]
    _run([*args, "--out", str(tmp_path / "local")])
    _run([*args, "--executor", "dask", "--jobs", "2", "--out", str(tmp_path / "dask")])
    local, dask = _summary(tmp_path / "local", "reorgs"), _summary(tmp_path / "dask", "reorgs")
    assert local["seeds"] == dask["seeds"] == [1, 2]
    for key in ("trades", "detected", "late", "missed", "duplicates", "phantoms",
                "retracted", "latency_p95_s", "spread", "thresholds"):
        assert local[key] == dask[key], key
    for seed in (1, 2):
        a = tmp_path / "local" / "latest" / "reorgs" / "seeds" / str(seed) / "detections.jsonl"
        b = tmp_path / "dask" / "latest" / "reorgs" / "seeds" / str(seed) / "detections.jsonl"
        assert a.read_bytes() == b.read_bytes()
    # locally each (scenario, seed) ran in a fresh process: its figures are its own
    pids = {json.loads((tmp_path / "local" / "latest" / "reorgs" / "seeds" / str(seed)
                        / "run.json").read_text())["pid"] for seed in (1, 2)}
    assert len(pids) == 2


@pytest.mark.slow
def test_seeds_in_a_scenario_file_are_run_and_pooled(tmp_path: Path) -> None:
    text = (ROOT / "experiments" / "scenarios" / "reorgs.toml").read_text()
    path = tmp_path / "reorgs_seeded.toml"
    text = "\n".join(line for line in text.splitlines() if not line.startswith("seeds ="))
    path.write_text(text.replace('name = "reorgs"', 'name = "reorgs_seeded"\nseeds = [3, 4]'))
    _run([str(path), "--quick", "--clock", "virtual", "--out", str(tmp_path / "out")])
    pooled = _summary(tmp_path / "out", "reorgs_seeded")
    per = [json.loads((tmp_path / "out" / "latest" / "reorgs_seeded" / "seeds" / str(k)
                       / "summary.json").read_text()) for k in (3, 4)]
    assert pooled["seeds"] == [3, 4]
    assert pooled["trades"] == sum(p["trades"] for p in per)
    assert pooled["spread"]["trades"]["n"] == 2
    manifest = json.loads((tmp_path / "out" / "latest" / "manifest.json").read_text())
    assert manifest["seeds"]["reorgs_seeded"] == [3, 4] and manifest["clock"] == "virtual"


def test_each_resource_sample_follows_a_full_collection(tmp_path: Path) -> None:
    # the run spaces full collections out (~every 10 simulated hours of the soak): the
    # hourly sample collects first, so cyclic garbage (tracebacks of broken connections)
    # is not read as growth and does not pile up between samples (issue #10)
    import asyncio
    import gc
    import types
    import weakref

    from experiments.virtual import _sample

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    mon = types.SimpleNamespace(store=None, pipeline=None, shards=[])
    clock = types.SimpleNamespace(now_ns=lambda: 0)
    run: dict[str, Any] = {}
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        garbage = Cycle()
        alive = weakref.ref(garbage)
        del garbage
        assert alive() is not None  # only a collection frees a cycle

        async def one_sample() -> None:
            task = asyncio.create_task(_sample(mon, None, tmp_path, clock, run))
            await asyncio.sleep(0)
            task.cancel()

        asyncio.run(one_sample())
        assert alive() is None and len(run["samples"]) == 1
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.slow
def test_dask_address_of_a_running_scheduler_gives_the_results_of_a_local_run(
        tmp_path: Path) -> None:
    """``--executor dask://HOST:PORT``: the units go to an existing scheduler (here a
    LocalCluster of 2 workers started by the test) and come back into the same store."""
    from dask.distributed import LocalCluster

    args = ["websocket_drops", "--quick", "--clock", "virtual", "--seeds", "2"]
    _run([*args, "--out", str(tmp_path / "local")])
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        address = cluster.scheduler_address.removeprefix("tcp://")
        _run([*args, "--executor", f"dask://{address}", "--out", str(tmp_path / "remote")])
    local = _summary(tmp_path / "local", "websocket_drops")
    remote = _summary(tmp_path / "remote", "websocket_drops")
    assert local["seeds"] == remote["seeds"] == [1, 2] and local["trades"] > 50
    for key in ("trades", "missed", "duplicates", "phantoms", "latency_p95_s", "spread"):
        assert local[key] == remote[key], key
    for seed in (1, 2):
        part = Path("latest") / "websocket_drops" / "seeds" / str(seed) / "detections.jsonl"
        assert (tmp_path / "local" / part).read_bytes() == \
            (tmp_path / "remote" / part).read_bytes()


def test_a_dask_address_with_nothing_there_is_a_clear_error_and_no_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad port, a closed port, and a port that takes TCP but never speaks Dask (the
    dashboard's HTTP port by mistake): one line naming the address, exit code 2, no
    traceback, no run directory."""
    import contextlib
    import io
    import socket as socket_mod

    from experiments import matrix
    from experiments.cli import main

    silent = socket_mod.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts the connection, never answers
    closed = socket_mod.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setattr(matrix, "DASK_CONNECT_S", 3.0)
    cases = {f"dask://127.0.0.1:{silent.getsockname()[1]}": "no Dask scheduler answered",
             f"dask://127.0.0.1:{closed_port}": "cannot reach the Dask scheduler",
             "dask://127.0.0.1:99999": "port in 1-65535",
             "dask://nohost": "expected dask://HOST:PORT"}
    try:
        for executor, words in cases.items():
            out = tmp_path / "out"
            argv = ["run", "websocket_clean", "--quick", "--clock", "virtual",
                    "--no-progress", "--executor", executor, "--out", str(out)]
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv)
            assert code == 2, (executor, err.getvalue())
            assert words in err.getvalue() and "Traceback" not in err.getvalue(), executor
            assert not out.exists() or not any(out.iterdir()), executor
    finally:
        silent.close()


@pytest.mark.slow
def test_a_chain_rendered_ahead_by_a_helper_process_gives_the_same_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's chain rendered on the spare core (``render_ahead``) is the chain rendered
    in the run's own process: the same detections, byte for byte, and outcomes."""
    import experiments.virtual as virtual

    monkeypatch.setattr(virtual, "RENDER_AHEAD_MIN_BLOCKS", 0)  # a short run uses it too
    # 10 simulated minutes, 300 blocks, 30 wallets (the matrix runs 40 minutes of 200)
    sc = load_scenario(resolve_scenario("news_burst"))
    sc = sc.model_copy(update={"sim_duration_s": 600.0,
                               "wallets": sc.wallets.model_copy(update={"count": 30})})
    runs = {}
    for ahead in (False, True):
        runs[ahead] = run_scenario_virtual(
            sc, tmp_path / str(ahead) / sc.name,
            RunnerOptions(cache_dir=tmp_path / "cache", render_ahead=ahead))
    assert runs[False]["status"] == runs[True]["status"] == "ok"
    assert runs[True]["trades"] > 20
    det = [(tmp_path / str(a) / sc.name / "detections.jsonl").read_bytes()
           for a in (False, True)]
    assert det[0] == det[1] and det[0]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "False" / sc.name / "outcomes.parquet"),
        pd.read_parquet(tmp_path / "True" / sc.name / "outcomes.parquet"))
    for ahead in (False, True):
        run = json.loads((tmp_path / str(ahead) / sc.name / "run.json").read_text())
        assert run["render_ahead"] == {"helper": ahead, "helper_failures": 0}


def test_a_helper_renders_only_when_a_core_is_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments.virtual import render_ahead_wanted

    monkeypatch.delenv("EXPERIMENTS_RENDER_AHEAD", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1})
    assert render_ahead_wanted(1)
    assert not render_ahead_wanted(2)  # two runs at a time on two cores: none spare
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    assert not render_ahead_wanted(1)
    monkeypatch.setenv("EXPERIMENTS_RENDER_AHEAD", "1")
    assert render_ahead_wanted(4)
    monkeypatch.setenv("EXPERIMENTS_RENDER_AHEAD", "0")
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert not render_ahead_wanted(1)


@pytest.mark.parametrize(("text", "value"), [(None, 0), ("", 0), ("3", 3), ("abc", 0),
                                             ("-5", 0), ("1.5", 0)])
def test_a_bad_noop_cycles_knob_is_said_and_zero(text: str | None, value: int,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """``EXPERIMENTS_NOOP_CYCLES=abc`` was a ValueError traceback at import."""
    from experiments.virtual import _noop_cycles

    assert _noop_cycles(text) == value
    assert ("not a whole number" in caplog.text) == (text in ("abc", "-5", "1.5"))


def test_a_bad_render_ahead_knob_is_said_and_the_cores_decide(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from experiments.virtual import render_ahead_wanted

    monkeypatch.setenv("EXPERIMENTS_RENDER_AHEAD", "yes")
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1})
    assert render_ahead_wanted(1) and not render_ahead_wanted(2)
    assert "neither 0 nor 1" in caplog.text


@pytest.mark.slow
def test_the_default_matrix_has_the_trades_to_decide_every_gate(tmp_path: Path) -> None:
    """``make experiment``'s matrix must be able to say GO or NO-GO: every rate gate of
    every scenario gets enough trades for its 95 % bound to decide (0 missed in 299+
    trades is < 1 %). It once gave INCONCLUSIVE on every run: news_burst had 82 trades
    and websocket_clean_speed1 44. Virtual time, so a run of the whole matrix is quick; the
    trades are the recording's, the same at any speed."""
    from reports.criteria import load_criteria
    from reports.load import load_run
    from reports.verdict import evaluate

    _run(["--clock", "virtual", "--jobs", "2", "--out", str(tmp_path / "out")])
    run = load_run(tmp_path / "out" / "latest")
    assert len(run.scenarios) >= 15
    result = evaluate(run, load_criteria())
    undecided = [(c.scenario, c.expr, c.note) for c in result.checks
                 if c.passed is None and (c.critical or c.scored)]
    assert not undecided, undecided
    assert result.verdict.value != "INCONCLUSIVE", result.reasons


def test_a_recording_defective_mid_file_makes_the_run_inconclusive(tmp_path: Path) -> None:
    """The simulator streams a recording and stops at a defect found mid-file (here a
    block whose parentHash breaks the chain); it used to log one line and go on serving,
    and the run passed for whole on a fraction of its blocks."""
    import gzip

    from experiments.scenario import scenario_from_dict

    with gzip.open(ROOT / "simulator" / "data" / "today.jsonl.gz", "rt") as fh:
        lines = fh.read().splitlines()[:121]  # the header and 120 blocks
    header = json.loads(lines[0])
    header.update(blocks=120, last_block=header["first_block"] + 119)
    lines[0] = json.dumps(header)
    bad = json.loads(lines[61])
    bad["block"]["parentHash"] = "0x" + "ab" * 32
    lines[61] = json.dumps(bad)
    path = tmp_path / "broken.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    doc = {"name": "broken", "recording": str(path), "sim_duration_s": 150, "grace_s": 10,
           "wallets": {"count": 5}, "monitor": {"mode": "websocket", "block_interval": 1.75}}
    options = RunnerOptions(cache_dir=tmp_path / "cache")
    # wallets picked by their trades: the whole file is read first, and the defect found
    summary = run_scenario_virtual(scenario_from_dict(doc, "broken.toml"),
                                   tmp_path / "first" / "broken", options)
    assert summary["status"] == "harness_error"
    assert summary["error"].startswith("recording: ") and "parentHash" in summary["error"]
    # wallets listed: the simulator meets the defect while it replays
    doc["wallets"] = {"list": ["0x" + "11" * 20]}
    summary = run_scenario_virtual(scenario_from_dict(doc, "broken.toml"),
                                   tmp_path / "run" / "broken", options)
    assert summary["status"] == "inconclusive", summary["error"]
    assert "recording ended early, after 60 blocks" in summary["error"]
    assert "parentHash" in summary["error"]
    rows = [json.loads(x) for x in
            (tmp_path / "run" / "broken" / "sim_history.jsonl").read_text().splitlines()]
    assert [r["blocks"] for r in rows if r["event"] == "recording_error"] == [60]
