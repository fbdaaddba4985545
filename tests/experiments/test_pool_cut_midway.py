"""Pooling seeds on a disk that fills up (or a process stopped) mid-write: the scenario's
pooled files are written as one, so the earlier pool's files stand whole; a pooled table
or a copied history cut short never sits beside a summary and reads as a result."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from experiments import seeds as seeds_mod
from experiments.checker import OUTCOME_COLUMNS
from experiments.scenario import scenario_from_dict
from experiments.seeds import pool

WALLET = "0x" + "cd" * 20
SEEDS = [1, 2]


def _outcomes(trades: int) -> pd.DataFrame:
    rows = [{"trade_id": f"0x{i:064x}:0", "wallet": WALLET, "block_number": 100 + i,
             "visible_t_ns": i * 1_000_000_000, "delivered_t_ns": i * 1_000_000_000 + 5,
             "latency_s": 0.1, "outcome": "detected", "deliveries": 1, "source": "ws",
             "in_fault": False, "fault": None} for i in range(trades)]
    frame = pd.DataFrame(rows, columns=OUTCOME_COLUMNS)
    frame["delivered_t_ns"] = frame["delivered_t_ns"].astype("Int64")
    return frame


def _seed_dirs(sdir: Path, trades: int, history: str) -> list[dict]:
    summaries = []
    for seed in SEEDS:
        seed_dir = sdir / "seeds" / str(seed)
        seed_dir.mkdir(parents=True, exist_ok=True)
        _outcomes(trades).to_parquet(seed_dir / "outcomes.parquet", index=False)
        (seed_dir / "sim_history.jsonl").write_text(history, encoding="utf-8")
        (seed_dir / "run.json").write_text(json.dumps({"trades": trades}), encoding="utf-8")
        summaries.append({"scenario": "pooled", "mode": "websocket", "status": "ok",
                          "speed": 1.0, "sim_duration_s": 600.0, "faults": [],
                          "uptime": 1.0, "coverage": 1.0, "reconnects": 0,
                          "fallback_s": 0.0, "bytes_received": 1, "cpu_s": 1.0,
                          "rss_peak_bytes": 1})
    return summaries


def _scenario():  # type: ignore[no-untyped-def]
    return scenario_from_dict({"name": "pooled", "recording": "default",
                               "sim_duration_s": 600, "wallets": {"list": [WALLET]},
                               "thresholds": ["missed_pct < 1"]})


def _files(sdir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(sdir.iterdir()) if p.is_file()}


@pytest.mark.parametrize("cut", ["sim_history.jsonl", "run.json", "outcomes.parquet"])
def test_a_pool_cut_midway_leaves_the_earlier_pool_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: str) -> None:
    sdir = tmp_path / "pooled"
    first = pool(_scenario(), sdir, SEEDS, _seed_dirs(sdir, 10, '{"t_ns": 1}\n' * 50))
    assert first["status"] == "ok" and first["trades"] == 20
    before = _files(sdir)
    summaries = _seed_dirs(sdir, 30, '{"t_ns": 2, "event": "x"}\n' * 500)

    real_copy, real_parquet = shutil.copyfile, pd.DataFrame.to_parquet

    def half_then_full(target: Path) -> None:
        data = Path(target).read_bytes()
        Path(target).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    def copyfile(src, dst, **kw):  # type: ignore[no-untyped-def]
        real_copy(src, dst, **kw)
        if Path(src).name == cut:
            half_then_full(dst)
        return dst

    def to_parquet(self, path, *a, **kw):  # type: ignore[no-untyped-def]
        real_parquet(self, path, *a, **kw)
        if cut == "outcomes.parquet" and "seeds" not in str(path):
            half_then_full(path)

    monkeypatch.setattr(seeds_mod.shutil, "copyfile", copyfile)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    with pytest.raises(OSError):
        pool(_scenario(), sdir, SEEDS, summaries)
    monkeypatch.undo()
    assert _files(sdir) == before  # every pooled file whole, and no temporary one left
    assert json.loads((sdir / "summary.json").read_text())["trades"] == 20
    assert len(pd.read_parquet(sdir / "outcomes.parquet")) == 20


def test_a_file_the_first_seed_lacks_is_not_left_from_an_earlier_pool(
        tmp_path: Path) -> None:
    sdir = tmp_path / "pooled"
    pool(_scenario(), sdir, SEEDS, _seed_dirs(sdir, 10, '{"t_ns": 1}\n'))
    assert (sdir / "sim_history.jsonl").exists()
    summaries = _seed_dirs(sdir, 12, '{"t_ns": 1}\n')
    (sdir / "seeds" / "1" / "sim_history.jsonl").unlink()
    out = pool(_scenario(), sdir, SEEDS, summaries)
    assert out["trades"] == 24
    assert not (sdir / "sim_history.jsonl").exists()
