"""The runner under a user's hand: stopped by a signal, fed hostile scenarios.

SIGTERM (``kill``, ``timeout``, a cancelled CI job) stops ``python -m experiments run`` as
Ctrl-C does: its simulator, monitor and worker processes end with it, and the run store
is left with a manifest and a summary that say the run was interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import tomli_w

from tests.cli_checks import (
    ROOT,
    copy_of_run,
    error_line,
    run_module,
    scenario_file,
    still_running,
    until,
)


@pytest.fixture
def runner() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """``python -m experiments run ...`` as a process of its own; whatever it started is
    killed at the end whatever the test found."""
    started: list[subprocess.Popen[str]] = []
    seen: dict[int, psutil.Process] = {}

    def start(*args: str, sigint: Any = signal.SIG_DFL) -> subprocess.Popen[str]:
        """``sigint``: the SIGINT disposition the runner starts with (SIG_IGN: as a
        background job of a non-interactive shell, or a CI step, starts it). SIGHUP and
        SIGTERM start at their defaults, whatever this test process inherited: under
        ``nohup`` SIGHUP comes ignored, and the runner rightly leaves it so."""
        def dispositions() -> None:
            signal.signal(signal.SIGINT, sigint)
            signal.signal(signal.SIGHUP, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

        proc = subprocess.Popen([sys.executable, "-m", "experiments", "run", *args,
                                 "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                preexec_fn=dispositions)
        started.append(proc)
        return proc

    def children(proc: subprocess.Popen[str]) -> list[psutil.Process]:
        kids = psutil.Process(proc.pid).children(recursive=True)
        seen.update((k.pid, k) for k in kids)
        return kids

    start.children = children  # type: ignore[attr-defined]
    yield start
    for proc in started:
        if proc.poll() is None:
            try:
                children(proc)
            except psutil.Error:
                pass
            proc.kill()
        proc.communicate()
    for kid in seen.values():
        try:
            kid.kill()
        except psutil.Error:
            pass


@pytest.mark.parametrize(("sig", "sigint"), [
    (signal.SIGTERM, signal.SIG_DFL), (signal.SIGHUP, signal.SIG_DFL),
    (signal.SIGTERM, signal.SIG_IGN)], ids=["sigterm", "sighup", "sigterm_sigint_ignored"])
def test_sigterm_stops_a_real_time_run_and_its_simulator_and_monitor(
        tmp_path: Path, runner: Callable[..., subprocess.Popen[str]], sig: int,
        sigint: Any) -> None:
    """Before: SIGTERM (or SIGHUP: the terminal closed) ended the runner at once; the
    simulator and the monitor (in sessions of their own) ran on for good, and the run
    directory had no manifest. A runner started with SIGINT ignored (a background job of a
    non-interactive shell; how a CI step ran this test) still left the monitor running:
    asyncio installed no handler, and the stop raised KeyboardInterrupt mid-loop."""
    out = tmp_path / "out"
    proc = runner(str(scenario_file(tmp_path / "long.toml")), "--out", str(out), sigint=sigint)
    until(lambda: any('"event":"start"' in p.read_text(errors="replace")
                       for p in out.glob("*/long/sim_history.jsonl")))  # replay started
    kids = runner.children(proc)  # type: ignore[attr-defined]
    names = " ".join(" ".join(k.cmdline()) for k in kids)
    assert "simulator serve" in names and "monitor run" in names
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "interrupted" in err
    assert still_running(kids) == []
    run_dir = (out / "latest").resolve()
    assert (run_dir / "manifest.json").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [s["status"] for s in summary["scenarios"]] == ["harness_error"]
    run = json.loads((run_dir / "long" / "run.json").read_text())
    assert run["status"] == "harness_error" and "interrupted" in run["error"]


def test_sigterm_stops_a_many_seed_virtual_run_and_its_workers_at_once(
        tmp_path: Path, runner: Callable[..., subprocess.Popen[str]]) -> None:
    """Before: the workers of ``--seeds`` ran on (each a simulated day) after SIGTERM
    ended the runner; a Ctrl-C waited for every seed still queued."""
    out = tmp_path / "out"
    proc = runner(str(scenario_file(tmp_path / "day.toml", sim_duration_s=86_400)),
                  "--clock", "virtual", "--seeds", "3", "--jobs", "2", "--out", str(out))
    until(lambda: len(list(out.glob("*/long/seeds/*/sim_config.toml"))) >= 2)
    kids = runner.children(proc)  # type: ignore[attr-defined]
    assert len(kids) >= 2
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        pytest.fail("the runner did not stop within 40 s of SIGTERM")
    assert time.monotonic() - sent < 20
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert still_running(kids) == []
    run_dir = (out / "latest").resolve()
    assert (run_dir / "manifest.json").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [s["status"] for s in summary["scenarios"]] == ["harness_error"]


_RECORDING = {"name": "rec", "recording": "placeholder", "sim_duration_s": 60, "grace_s": 10,
              "wallets": {"count": 3}}


@pytest.mark.parametrize(("over", "expected"), [
    ({"monitor": {"heartbeat_interval": 1e9}}, "monitor: the monitor refuses these "
     "settings: invalid setting heartbeat_interval: must be at most 86400"),
    ({"monitor": {"backoff_initial": 100.0, "backoff_max": 1.0}},
     "backoff_max must be >= backoff_initial"),
    ({"seeds": [1, 2, 1]}, "seeds: [2]: seed 1 is listed twice"),
])
def test_what_a_run_would_refuse_is_refused_by_validate_and_run_before_anything(
        tmp_path: Path, over: dict[str, object], expected: str) -> None:
    """Before: ``validate`` said ok; ``run`` made a run directory and each run was a
    harness error (the monitor refused its settings) or was refused after validation."""
    path = scenario_file(tmp_path / "bad.toml", sim_duration_s=60, **over)
    for command in (["validate"], ["run", "--clock", "virtual", "--out", str(tmp_path / "o")]):
        line = error_line(run_module("experiments", *command, str(path)))
        assert expected in line and str(path) in line
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("2*"))


@pytest.mark.parametrize("recording", ["missing", "folder", "relative"])
def test_a_recording_that_is_not_a_file_is_one_line_before_anything_runs(
        tmp_path: Path, recording: str) -> None:
    """Before: validated, then a run directory whose scenario was a harness error."""
    (tmp_path / "folder").mkdir()
    given = {"missing": str(tmp_path / "nope.jsonl.gz"), "folder": str(tmp_path / "folder"),
             "relative": "no-such-recording-here.jsonl.gz"}[recording]
    path = tmp_path / "rec.toml"
    path.write_bytes(tomli_w.dumps({**_RECORDING, "recording": given}).encode())
    for command in (["validate"], ["run", "--clock", "virtual", "--out", str(tmp_path / "o")]):
        line = error_line(run_module("experiments", *command, str(path)))
        assert f"recording: {given}" in line
        assert ("a folder" if recording == "folder" else "no such file") in line
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run --seeds 2 --clock virtual`` of a 40-block chain, both seeds ok."""
    tmp = tmp_path_factory.mktemp("seeded")
    path = scenario_file(tmp / "tiny.toml", name="tiny", blocks=40, sim_duration_s=30,
                     grace_s=5, wallets={"count": 20})
    res = run_module("experiments", "run", str(path), "--seeds", "2", "--clock", "virtual",
                     "--no-progress", "--out", str(tmp / "out"))
    assert res.returncode == 0, res.stderr
    return (tmp / "out" / "latest").resolve()


def test_analyze_a_run_whose_pool_of_seeds_failed_reanalyses_its_seeds(
        seeded_run: Path, tmp_path: Path) -> None:
    """Before: a pool with a failed seed writes no run.json of its own, so ``analyze``
    said 'no scenarios stored in this run' (exit 2) and analysed none of the seeds
    stored; beside another scenario, it was called 'missing' with its folder there."""
    run_dir = copy_of_run(seeded_run, tmp_path)
    seed2 = run_dir / "tiny" / "seeds" / "2" / "run.json"
    run = json.loads(seed2.read_text())
    run.update(status="harness_error", error="wallets.count = 20 but only 9 traded")
    seed2.write_text(json.dumps(run))
    for p in (run_dir / "tiny").iterdir():  # a failed pool writes its summary alone
        if p.name not in ("seeds", "summary.json"):
            p.unlink()
    res = run_module("experiments", "analyze", str(run_dir))
    assert res.returncode == 0, res.stderr
    again = json.loads((run_dir / "summary.json").read_text())["scenarios"]
    assert [s["status"] for s in again] == ["harness_error"]
    assert "1 of 2 seeds failed: seed 2" in again[0]["error"]
    assert "only 9 traded" in again[0]["error"]
    assert json.loads((run_dir / "tiny" / "seeds" / "1" / "summary.json").read_text()
                      )["status"] == "ok"


def test_analyze_does_not_pool_only_the_seeds_that_finished(
        seeded_run: Path, tmp_path: Path) -> None:
    """A seed the manifest ran that left no run.json (the run interrupted) fails the
    pool. Before: ``analyze`` pooled the seeds that had finished and called the
    scenario ok, as if it had been run under them alone."""
    run_dir = copy_of_run(seeded_run, tmp_path)
    assert json.loads((run_dir / "tiny" / "summary.json").read_text())["status"] == "ok"
    (run_dir / "tiny" / "seeds" / "2" / "run.json").unlink()
    res = run_module("experiments", "analyze", str(run_dir))
    assert res.returncode == 0, res.stderr
    again = json.loads((run_dir / "summary.json").read_text())["scenarios"]
    assert again[0]["status"] == "harness_error"
    assert "seed 2 has no run.json" in again[0]["error"]


@pytest.mark.parametrize("name", ["summary.json", "manifest.json", "report.html"])
def test_a_scenario_named_as_a_file_of_the_run_directory_is_refused(
        tmp_path: Path, name: str) -> None:
    """Before: its folder took the run file's place; the run ran, then ended 'error: Is a
    directory: .../summary.json', with no summary, no latest, and a report that could
    not be written."""
    path = scenario_file(tmp_path / "s.toml", name=name, blocks=40, sim_duration_s=30,
                     grace_s=5)
    for command in (["validate"], ["run", "--clock", "virtual", "--out", str(tmp_path / "o")]):
        line = error_line(run_module("experiments", *command, str(path)))
        assert f"name: {name!r} is the name of a file of the run directory" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("what", ["latest", ".cache"])
def test_a_run_store_whose_latest_or_cache_is_in_the_way_is_refused_before_the_run(
        tmp_path: Path, what: str) -> None:
    """Before: a folder ``latest`` let the run run, then ended it 'error: Is a directory'
    with no table (and a stray .latest-<pid> link); a file ``.cache`` made every
    scenario a harness error (NotADirectoryError)."""
    out = tmp_path / "o"
    out.mkdir()
    if what == "latest":
        (out / "latest").mkdir()
    else:
        (out / ".cache").write_text("")
    path = scenario_file(tmp_path / "s.toml", blocks=40, sim_duration_s=30, grace_s=5)
    line = error_line(run_module("experiments", "run", str(path), "--clock", "virtual",
                                 "--out", str(out)))
    assert ("latest is a folder" if what == "latest" else
            ".cache is a file, not the folder of the recordings' cache") in line
    assert sorted(p.name for p in out.iterdir()) == [what]


def test_a_wallet_listed_twice_is_refused_not_counted_twice(tmp_path: Path) -> None:
    """Before: validated; the monitor watched it once, and the run's summary said
    2 wallets and halved api_calls_per_hour_per_wallet."""
    wallet = "0x" + "ab" * 20
    path = scenario_file(tmp_path / "s.toml", blocks=40, sim_duration_s=30, grace_s=5,
                     wallets={"list": [wallet, wallet.upper().replace("0X", "0x")]})
    line = error_line(run_module("experiments", "validate", str(path)))
    assert "wallets.list: " in line and "is listed twice" in line


def test_sigterm_while_a_recording_is_synthesised_stops_at_once(
        tmp_path: Path, runner: Callable[..., subprocess.Popen[str]]) -> None:
    """Before: the runner waited for the ``synth`` of the whole recording (~40 s for a
    simulated day here, minutes for a week) before it could exit."""
    out = tmp_path / "out"
    proc = runner(str(scenario_file(tmp_path / "day.toml", sim_duration_s=86_400, speed=30,
                                seed=11)), "--out", str(out))

    def synth() -> list[psutil.Process]:
        return [k for k in runner.children(proc)  # type: ignore[attr-defined]
                if "synth" in " ".join(k.cmdline())]

    until(synth)
    kids = synth()
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the runner did not stop within 60 s of SIGTERM")
    assert time.monotonic() - sent < 10, "waited for the synthesis to finish"
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert still_running(kids) == []
    assert not list((out / ".cache" / "recordings").glob("*.jsonl.gz*"))  # no partial file


class _KilledWorker(Exception):
    """What ``distributed`` raises for a task whose worker died (out of memory)."""


class _Future:
    def __init__(self, fn: Callable[..., dict[str, object]], args: tuple[object, ...],
                 fail: bool) -> None:
        self.fn, self.args, self.fail = fn, args, fail

    def result(self) -> dict[str, object]:
        if self.fail:
            raise _KilledWorker("Attempted to run task run_unit on 3 different workers, "
                                "but all those workers died while running it")
        return self.fn(*self.args)


class _StubClient:
    """A Dask client whose first task's worker dies; the others run here."""

    def __init__(self) -> None:
        self.submitted = 0

    def __enter__(self) -> _StubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., dict[str, object]], *args: object,
               pure: bool = True) -> _Future:
        self.submitted += 1
        return _Future(fn, args, fail=self.submitted == 1)

    def gather(self, futures: list[_Future]) -> list[dict[str, object]]:
        return [f.result() for f in futures]


def test_a_dask_task_whose_worker_died_is_that_unit_s_harness_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``client.gather`` raised the first task's KilledWorker: a traceback from
    ``python -m experiments run --executor dask://...``, and the other seed's results
    stored as 'run interrupted'."""
    from experiments import matrix
    from experiments.scenario import load_scenario

    monkeypatch.setattr(matrix, "check_scheduler", lambda address: None)
    monkeypatch.setattr(matrix, "_connect_client", lambda cls, address: _StubClient())
    sc = load_scenario(scenario_file(tmp_path / "s.toml", blocks=40, sim_duration_s=30,
                                 grace_s=5))
    result = matrix.run_matrix([sc], out=tmp_path / "out", command=["x"], quick=False,
                               executor="dask://127.0.0.1:8786", progress=False,
                               clock="virtual", seeds=[1, 2])
    [pooled] = result.summaries
    assert pooled["status"] == "harness_error"
    assert "seed 1: harness_error (the Dask task failed on its worker: _KilledWorker" \
        in pooled["error"]
    seed2 = json.loads((result.run_dir / "long" / "seeds" / "2" / "summary.json").read_text())
    assert seed2["status"] == "ok"


def test_a_peer_that_is_no_dask_scheduler_is_said_as_such() -> None:
    """distributed reads a non-Dask peer's first bytes as a frame length and raises
    'MemoryError: Unable to allocate 3.07 EiB': the one line said only that."""
    from experiments.matrix import MatrixError, _connect_client

    def client(address: str) -> None:
        raise MemoryError("Unable to allocate 3.07 EiB for an array")

    with pytest.raises(MatrixError, match="does not speak Dask's protocol"):
        _connect_client(client, "tcp://127.0.0.1:9", timeout=5)
