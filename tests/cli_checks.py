"""What the hostile-input tests of every command check, in one place."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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


def copy_of_run(stored: Path, tmp_path: Path) -> Path:
    """A copy of a stored run for a test to damage."""
    dst = tmp_path / "run"
    shutil.copytree(stored, dst)
    return dst
