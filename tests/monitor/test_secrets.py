"""API keys and bot tokens never appear in the monitor's logs, histories, detections or
error messages (the files are grepped)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from monitor_sim import PY, ROOT, read_jsonl, spawn, start_monitor, start_sim, top_wallets, wait_for

from monitor.config import load_settings
from monitor.errors import ConfigError, ServerError

KEY = "APIKEYabcdef0123456789SECRET"
TOKEN = "987654321:AAsecretTOKENvalue_xyz0123456"
W = "0x1111111111111111111111111111111111111111"


def test_errors_and_settings_never_show_secrets() -> None:
    s = load_settings({"explorer_api_key": KEY, "telegram_token": TOKEN}, environ={})
    assert KEY not in repr(s) and KEY not in json.dumps(s.redacted_dict())
    assert KEY not in str(ServerError(f"GET https://x/v2/api?apikey={KEY}&module=logs"))
    with pytest.raises(ConfigError) as info:
        load_settings({"explorer_url": f"ftp://x/v2/api?apikey={KEY}"}, environ={})
    assert KEY not in str(info.value)


def test_cli_error_line_does_not_echo_a_key() -> None:
    r = subprocess.run([PY, "-m", "monitor", "run", "--wallet", W, "--mode", "polling",
                        "--explorer-url", f"ftp://h/?apikey={KEY}", "--api-key", KEY],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and KEY not in r.stderr + r.stdout


def test_debug_logs_and_history_of_failing_calls_hold_no_key(tmp_path: Path) -> None:
    hist = tmp_path / "h.jsonl"
    p = spawn([PY, "-m", "monitor", "run", "--mode", "polling", "--wallet", W,
               "--explorer-url", "http://127.0.0.1:1/v2/api", "--api-key", KEY,
               "--telegram-token", TOKEN, "--telegram-chat-id", "1", "--log-level", "DEBUG",
               "--db", str(tmp_path / "s.db"), "--detections", str(tmp_path / "d.jsonl"),
               "--history", str(hist), "--speed", "50"], tmp_path / "err.txt")
    p.wait_ready()
    wait_for(lambda: sum(r.get("event") == "api_call" for r in read_jsonl(hist)) >= 2, 30,
             "failed calls recorded")
    assert p.terminate() == 0
    for f in tmp_path.iterdir():
        if f.suffix in (".jsonl", ".txt"):
            text = f.read_text()
            assert KEY not in text and TOKEN not in text, f.name


@pytest.mark.slow
def test_secrets_never_appear_in_a_run_against_the_simulator(tmp_path: Path) -> None:
    rec = tmp_path / "rec.jsonl.gz"
    subprocess.run([PY, "-m", "simulator", "synth", "--profile", "busy", "--blocks", "40",
                    "--seed", "5", "--out", str(rec)], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    wallets = top_wallets(rec, 6)
    speed = 10.0
    sim = start_sim(rec, tmp_path, speed=speed)
    try:
        mon = start_monitor(sim, tmp_path, wallets, speed=speed, mode="websocket",
                            extra=["--staleness-blocks", "5", "--api-key", KEY,
                                   "--telegram-token", TOKEN, "--telegram-chat-id", "42",
                                   "--telegram-api-url", sim.urls["telegram"],
                                   "--websocket-share", "50", "--log-level", "DEBUG",
                                   "--fallback-after", "2", "--backoff-max", "3"])
        sim.wait_published(8)
        sim.fault("ws_refuse", "ws", None, 10.0)  # alerts go to Telegram; fallback polls
        sim.wait_published(30)
        assert mon.proc.terminate() == 0
    finally:
        sim.stop()
    texts = {p.name: p.read_text() for p in tmp_path.iterdir()
             if p.is_file() and p.suffix in (".jsonl", ".err", ".txt")}
    assert "mon.err" in texts and "monitor_history.jsonl" in texts
    events = [json.loads(x)["event"] for x in texts["monitor_history.jsonl"].splitlines()]
    assert "alert" in events and "api_call" in events
    for name, text in texts.items():
        if name.startswith("sim"):
            continue  # the simulator's own files are its business (it masks keys itself)
        assert KEY not in text, f"API key leaked into {name}"
        assert TOKEN not in text, f"bot token leaked into {name}"
    start = json.loads(texts["monitor_history.jsonl"].splitlines()[0])
    assert start["event"] == "start" and start["settings"]["explorer_api_key"] != KEY
