"""``experiments reconcile`` checks ``--out`` before it reads anything but leaves making
it to the run it stores: a missing or damaged pilot store leaves no empty run store
behind (d194d54 made it first), and an ``--out`` that cannot be made is still refused
before the store or the chain is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.cli import main as experiments_main


def _reconcile(store: Path, out: Path) -> int:
    return experiments_main(["reconcile", str(store), "--rpc-url", "http://127.0.0.1:9/",
                             "--out", str(out), "--grace", "0"])


def test_a_missing_store_leaves_no_run_store(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results" / "pilot"
    assert _reconcile(tmp_path / "no-store", out) == 2
    assert "no pilot store" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_an_out_under_a_file_is_refused_before_the_store_is_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("x")
    assert _reconcile(tmp_path / "no-store", tmp_path / "a-file" / "results") == 2
    err = capsys.readouterr().err
    assert "cannot make the run store there" in err and "is not a folder" in err, err
    assert "no pilot store" not in err
