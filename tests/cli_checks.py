"""What the hostile-input tests of every command check, in one place."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import tomli_w

ROOT = Path(__file__).resolve().parents[1]
#: JSON nested 100,000 deep: a RecursionError traceback where a reader did not guard
DEEP = "[" * 100_000 + "]" * 100_000


def run_module(module: str, *args: str, timeout: float = 120
               ) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` as a user runs it (no stdin: a prompt would hang)."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def error_line(res: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The one line a command refusing bad input printed: no traceback, exit ``code``."""
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0], res.stderr
    return lines[0]


def quick_virtual_run(out: Path, scenario: str) -> Path:
    """A stored run of one quick scenario in virtual time (seconds): ``out/latest``."""
    res = subprocess.run([sys.executable, "-m", "experiments", "run", scenario, "--quick",
                          "--clock", "virtual", "--no-progress", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return (out / "latest").resolve()


def scenario_file(path: Path, **over: object) -> Path:
    """A scenario file at ``path`` (a few wallets of the default profile at speed 1, 600
    simulated s), with ``over`` in place of any of its keys."""
    doc: dict[str, object] = {"name": "long", "profile": "default", "seed": 3,
                              "sim_duration_s": 600, "grace_s": 10, "speed": 1,
                              "wallets": {"count": 3}}
    doc.update(over)
    path.write_bytes(tomli_w.dumps(doc).encode())
    return path


def until(cond: Callable[[], object], timeout: float = 90.0) -> None:
    """Poll ``cond`` until it holds (a deadline, never a fixed sleep as synchronisation)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def alive(procs: list[psutil.Process]) -> list[int]:
    """The pids of ``procs`` still running (a zombie is gone)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.Error:
            pass
    return out


def still_running(procs: list[psutil.Process], timeout: float = 60.0) -> list[str]:
    """The processes of ``procs`` still running after ``timeout`` (generous: on a loaded
    machine a process killed in the middle of an fsync stays until the disk answers),
    each as pid, status and command line."""
    deadline = time.monotonic() + timeout
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    out = []
    for p in procs:
        if p.pid in alive([p]):
            try:
                out.append(f"{p.pid} {p.status()} {' '.join(p.cmdline())[:120]}")
            except psutil.Error:
                pass
    return out


def copy_of_run(stored: Path, tmp_path: Path) -> Path:
    """A copy of a stored run for a test to damage."""
    dst = tmp_path / "run"
    shutil.copytree(stored, dst)
    return dst
