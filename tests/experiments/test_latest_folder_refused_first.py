"""A folder (or a file) at ``--out``/latest, the link each run replaces at its end, is
refused before anything runs by ``chaos`` and ``reconcile`` too, as ``run`` refuses it:
a chaos search ran whole (hours with the defaults) and then ended in 'error: Is a
directory: .../.latest-<pid>', with no table of what it found."""

from __future__ import annotations

from pathlib import Path

from tests.cli_checks import error_line, run_module


def _out_with_a_latest_folder(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    (out / "latest").mkdir(parents=True)
    return out


def test_chaos_refuses_it_before_it_runs(tmp_path: Path) -> None:
    out = _out_with_a_latest_folder(tmp_path)
    res = run_module("experiments", "chaos", "--runs", "1", "--duration", "500",
                     "--no-progress", "--out", str(out))
    line = error_line(res)
    assert "latest is a folder, not the link" in line, line
    assert sorted(p.name for p in out.iterdir()) == ["latest"]  # nothing ran


def test_reconcile_refuses_it_before_it_reads_the_store_or_the_chain(tmp_path: Path) -> None:
    out = _out_with_a_latest_folder(tmp_path)
    res = run_module("experiments", "reconcile", str(tmp_path / "no-store"), "--rpc-url",
                     "http://127.0.0.1:9/", "--out", str(out))
    line = error_line(res)
    assert "latest is a folder, not the link" in line, line
