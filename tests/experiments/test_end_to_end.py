"""End to end: the real simulator and monitor processes, over loopback (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from experiments.analysis import SUMMARY_KEYS
from experiments.matrix import run_matrix
from experiments.scenario import Scenario, scenario_from_dict
from experiments.store import read_jsonl

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_run_quick_on_two_scenarios(tmp_path: Path) -> None:
    out = tmp_path / "results"
    res = subprocess.run(
        [sys.executable, "-m", "experiments", "run", "polling_15s", "websocket_drops",
         "--quick", "--out", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=220, check=False,
        env=dict(os.environ, COLUMNS="200"))
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = (out / "latest").resolve()
    assert f"run directory: {run_dir}" in res.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["quick"] is True
    assert [s["name"] for s in manifest["scenarios"]] == ["polling_15s", "websocket_drops"]
    summaries = json.loads((run_dir / "summary.json").read_text())["scenarios"]
    for s in summaries:
        assert list(s) == SUMMARY_KEYS
        assert s["status"] == "ok", s["error"]
        assert s["trades"] > 0
        sdir = run_dir / s["scenario"]
        for name in ("scenario.toml", "sim_history.jsonl", "monitor_history.jsonl",
                     "detections.jsonl", "truth.parquet", "detections.parquet",
                     "outcomes.parquet", "summary.json"):
            assert (sdir / name).exists(), f"{s['scenario']}/{name}"
        outcomes = pd.read_parquet(sdir / "outcomes.parquet")
        assert len(outcomes) >= s["trades"]
    polling, drops = summaries
    assert polling["mode"] == "polling" and polling["explorer_calls_per_hour"] > 0
    assert polling["latency_p50_s"] > 1.0          # an interval-bound baseline
    assert drops["faults"] and all(f["name"] == "ws_drop" for f in drops["faults"])
    assert drops["reconnects"] >= 1

    # The report and the notebook work on this real --quick run, not only on fixtures.
    rep = subprocess.run([sys.executable, "-m", "reports", "build", str(run_dir)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert (run_dir / "report.html").stat().st_size > 10_000
    assert any(v in rep.stdout for v in ("GO", "MARGINAL", "NO-GO", "INCONCLUSIVE"))
    nb = nbformat.read(ROOT / "notebooks" / "analysis.ipynb", as_version=4)
    os.environ["RUN_DIR"] = str(run_dir)
    try:
        NotebookClient(nb, timeout=180, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        os.environ.pop("RUN_DIR", None)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"run {run_dir.name}: 2 scenarios" in text
    assert [o for o in outputs if "image/png" in o.get("data", {})]


def _pair(base: dict[str, Any], slow_speed: float, fast_speed: float) -> list[Scenario]:
    return [scenario_from_dict({**base, "name": f"{base['name']}_x{speed:g}", "speed": speed})
            for speed in (slow_speed, fast_speed)]


def _common_outcomes(run_dir: Path, names: list[str]) -> list[pd.DataFrame]:
    """Outcomes of the trades both runs judged: visible in the overlap of their windows,
    in simulated seconds since block 0 (the monitor comes up at a different simulated
    moment at each speed)."""
    frames, spans = [], []
    for name in names:
        sdir = run_dir / name
        start = next(r for r in read_jsonl(sdir / "sim_history.jsonl")
                     if r["event"] == "start")
        run = json.loads((sdir / "run.json").read_text())
        speed = float(run["speed"])

        def sim_s(t_ns: Any, t0: int = int(start["t0_ns"]), speed: float = speed) -> Any:
            return (t_ns - t0) * speed / 1e9

        out = pd.read_parquet(sdir / "outcomes.parquet")
        out = out[out["visible_t_ns"].notna()].copy()
        out["visible_s"] = sim_s(out["visible_t_ns"].astype("int64"))
        frames.append(out)
        spans.append((sim_s(run["window_start_ns"]), sim_s(run["window_end_ns"])))
    lo = max(s[0] for s in spans) + 1.0
    hi = min(s[1] for s in spans) - 1.0
    assert hi - lo > 60, f"the two runs share only {hi - lo:.0f} simulated seconds"
    return [f[(f["visible_s"] >= lo) & (f["visible_s"] <= hi)] for f in frames]


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    return {k: int((frame["outcome"] == k).sum()) for k in ("missed", "duplicate", "phantom")}


POLLING = {"name": "fidelity_polling", "recording": "default", "sim_duration_s": 150,
           "grace_s": 60, "wallets": {"count": 10, "pick": "active"},
           "monitor": {"mode": "polling", "polling_interval": 15}}
WS_DROPS = {"name": "fidelity_ws_drops", "recording": "default", "sim_duration_s": 150,
            "grace_s": 15, "wallets": {"count": 50, "pick": "mix"},
            "monitor": {"mode": "websocket", "fallback_after": 20},
            "faults": [{"name": "ws_drop", "target": "ws", "at": 20, "every": 30}]}


@pytest.fixture(scope="module")
def fidelity_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Both pairs at once (speed 1 is mostly waiting): polling x1/x20, ws drops x1/x20."""
    scenarios = _pair(POLLING, 1, 20) + _pair(WS_DROPS, 1, 20)
    res = run_matrix(scenarios, out=tmp_path_factory.mktemp("fidelity"), command=["test"],
                     quick=False, jobs=4, progress=False)
    assert [s["status"] for s in res.summaries] == ["ok"] * 4, res.summaries
    return res, [s.name for s in scenarios]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_time_compression_is_honest_for_polling(fidelity_run: Any) -> None:
    res, names = fidelity_run
    slow, fast = _common_outcomes(res.run_dir, names[:2])
    assert len(slow) == len(fast) and len(slow) >= 10
    assert set(slow["trade_id"]) == set(fast["trade_id"])
    assert _counts(slow) == _counts(fast)
    for q in (0.5, 0.95):
        a, b = slow["latency_s"].quantile(q), fast["latency_s"].quantile(q)
        assert abs(b - a) <= 0.10 * a, f"p{q * 100:.0f}: {a:.2f} s at speed 1, {b:.2f} s compressed"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_time_compression_is_honest_for_websocket_with_drops(fidelity_run: Any) -> None:
    res, names = fidelity_run
    assert all(s["reconnects"] >= 1 for s in res.summaries[2:])
    slow, fast = _common_outcomes(res.run_dir, names[2:])
    assert len(slow) == len(fast) and len(slow) >= 10
    assert _counts(slow) == _counts(fast)
