"""A disk that fills up while a run store is rewritten leaves the earlier files whole:
``experiments analyze`` cut truth.parquet where the disk ended (the earlier analysis's
results damaged, the error not naming the file), and the run's summary.json was cut the
same way."""

from __future__ import annotations

import errno
import hashlib
import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.store import write_run_summary, written_together
from tests.cli_checks import ROOT, copy_of_run, error_line, quick_virtual_run

SCENARIO = "websocket_clean"


def _digests(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def _full_after(limit: int) -> None:
    """In the child: writing past ``limit`` bytes of a file fails with EFBIG, as a disk
    that fills up mid-write fails with ENOSPC (the bytes before it written)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quick_virtual_run(tmp_path_factory.mktemp("results"), SCENARIO)


def test_analyze_on_a_full_disk_keeps_the_earlier_results_and_names_the_file(
        stored_run: Path, tmp_path: Path) -> None:
    run = copy_of_run(stored_run, tmp_path)
    before = _digests(run)
    res = subprocess.run([sys.executable, "-m", "experiments", "analyze", str(run)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         preexec_fn=lambda: _full_after(3000))
    line = error_line(res)
    assert f"{run / SCENARIO}/" in line and ".parquet" in line, line
    assert _digests(run) == before  # byte for byte; no temporary file left


def _cut_then_full(self: Path, text: str, *args: object, **kwargs: object) -> int:
    """``Path.write_text`` on a disk that fills up half way."""
    with open(self, "w", encoding="utf-8") as fh:
        fh.write(text[: len(text) // 2])
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_run_summary_written_on_a_full_disk_leaves_the_old_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_run_summary(tmp_path, [{"scenario": "a", "status": "ok"}])
    before = (tmp_path / "summary.json").read_bytes()
    monkeypatch.setattr(Path, "write_text", _cut_then_full)
    with pytest.raises(OSError) as err:
        write_run_summary(tmp_path, [{"scenario": "b", "status": "ok"}])
    monkeypatch.undo()
    assert err.value.filename == str(tmp_path / "summary.json")
    assert (tmp_path / "summary.json").read_bytes() == before
    assert json.loads(before)["scenarios"][0]["scenario"] == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_files_written_together_replace_theirs_only_when_all_are_written(
        tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("old a")
    b.write_text("old b")
    with pytest.raises(RuntimeError), written_together() as stage:
        stage(a).write_text("new a")
        raise RuntimeError("the second file failed")
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    with written_together() as stage:
        stage(a).write_text("new a")
        stage(b).write_text("new b")
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
