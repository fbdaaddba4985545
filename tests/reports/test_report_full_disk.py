"""A report written on a disk that fills up leaves the earlier report as it was:
``reports build`` cut report.html (to nothing on a full disk) and then failed, the last
good report lost with it."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reports.files import write_whole
from tests.cli_checks import ROOT, error_line, quick_virtual_run

SCENARIO = "websocket_clean"


def _full_after(limit: int) -> None:
    """In the child: writing past ``limit`` bytes of a file fails (EFBIG), as a disk
    that fills up mid-write does (ENOSPC)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quick_virtual_run(tmp_path_factory.mktemp("results"), SCENARIO)


def test_a_build_on_a_full_disk_keeps_the_last_report(stored_run: Path) -> None:
    build = [sys.executable, "-m", "reports", "build", str(stored_run)]
    assert subprocess.run(build, cwd=ROOT, capture_output=True, timeout=300).returncode == 0
    report = stored_run / "report.html"
    before = hashlib.sha256(report.read_bytes()).hexdigest()
    assert report.stat().st_size > 20_000
    res = subprocess.run(build, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         preexec_fn=lambda: _full_after(10_000))
    assert str(report) in error_line(res)
    assert hashlib.sha256(report.read_bytes()).hexdigest() == before
    assert not [p for p in stored_run.iterdir() if p.name.endswith(".tmp")]


def test_whole_writes_keep_a_link_its_mode_and_write_a_device_as_it_is(
        tmp_path: Path) -> None:
    real = tmp_path / "real.html"
    real.write_text("old")
    os.chmod(real, 0o600)
    link = tmp_path / "report.html"
    link.symlink_to(real.name)
    write_whole(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert real.stat().st_mode & 0o777 == 0o600
    write_whole(os.devnull, "to a device")  # not replaced by a file
    assert Path(os.devnull).is_char_device()
    with pytest.raises(OSError) as err:
        write_whole(tmp_path / "no" / "such.html", "x")
    assert err.value.filename == str(tmp_path / "no" / "such.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.html", "report.html"]
