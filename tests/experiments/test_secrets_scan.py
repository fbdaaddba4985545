"""A whole experiment with distinctive secrets: none of them appears in any file the run
wrote (histories, detections, summaries, logs, the report) nor on stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPLORER_KEY = "ExplorerKeyZq7Wv93Lm2Kp"
BOT_TOKEN = "7654321098:AAZq7Wv93Lm2KpBotTokenXy"


@pytest.mark.slow
def test_no_secret_in_any_file_of_a_run_or_on_stderr(tmp_path: Path) -> None:
    env = dict(os.environ, EXPERIMENTS_EXPLORER_API_KEY=EXPLORER_KEY,
               EXPERIMENTS_TELEGRAM_TOKEN=BOT_TOKEN)
    out = tmp_path / "results"
    run = subprocess.run([sys.executable, "-m", "experiments", "run", "provider_outage",
                          "--quick", "--no-progress", "--out", str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    report = subprocess.run([sys.executable, "-m", "reports", "build", str(out / "latest")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert report.returncode == 0, report.stderr[-2000:]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 5
    alerts = 0
    fragments = [EXPLORER_KEY, BOT_TOKEN, BOT_TOKEN.split(":")[1], EXPLORER_KEY[:4] + "…"]
    for path in files:
        data = path.read_bytes()
        for secret in fragments:
            assert secret.encode() not in data, f"{secret[:6]}... leaked into {path}"
        alerts += data.count(b'"event":"alert"')
    for stream in (run.stdout, run.stderr, report.stdout, report.stderr):
        for secret in fragments:
            assert secret not in stream
    assert alerts > 0  # the alerts (and so the token) were really used
