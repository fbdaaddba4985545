"""The pilot's store and CLI under damage that real operators meet: a store SQLite cannot
open (not a file; unreadable to the user who runs status or reconcile). One line naming
the store, exit 2, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from monitor_sim import PY, ROOT

WALLET = "0x" + "11" * 20


def _one_line(res: subprocess.CompletedProcess[str], prefix: str) -> str:
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert len(err) == 1 and err[0].startswith(prefix), res.stderr
    return err[0]


def test_a_store_sqlite_cannot_open_is_one_line_in_status_run_and_reconcile(
        tmp_path: Path) -> None:
    """sqlite3.connect's own error (here pilot.sqlite is a folder; as often the file
    belongs to the service user and reconcile runs as another) was a traceback in
    ``pilot status``, ``pilot`` and ``reconcile``: it came before the store's checks."""
    store = tmp_path / "store"
    (store / "pilot.sqlite").mkdir(parents=True)
    status = subprocess.run([PY, "-m", "monitor", "pilot", "status", "--store", str(store)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "pilot.sqlite" in _one_line(status, "python -m monitor pilot: error: ")
    run = subprocess.run([PY, "-m", "monitor", "pilot", "--store", str(store),
                          "--ws-url", "ws://127.0.0.1:9/", "--rpc-url", "http://127.0.0.1:9/",
                          "--explorer-url", "http://127.0.0.1:9/api", "--wallet", WALLET],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "pilot.sqlite" in _one_line(run, "python -m monitor pilot: error: ")
    rec = subprocess.run([PY, "-m", "experiments", "reconcile", str(store), "--rpc-url",
                          "http://127.0.0.1:9/", "--out", str(tmp_path / "out")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "pilot.sqlite" in _one_line(rec, "error: ")
