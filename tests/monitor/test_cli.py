"""``python -m monitor run``: bad input is one line and exit 2; READY; clean SIGTERM stop."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from monitor_sim import PY, ROOT, read_jsonl, spawn, wait_for

W = "0x1111111111111111111111111111111111111111"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "monitor", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize(("args", "needle"), [
    (["run", "--wallet", "0x12"], "wallet"),
    (["run", "--wallet", W, "--ws-url", "http://127.0.0.1:1/"], "websocket_url"),
    (["run", "--wallet", W, "--mode", "polling", "--speed", "0"], "speed"),
    (["run", "--wallet", W, "--mode", "polling", "--speed", "fast"], "speed"),
    (["run", "--wallet", W, "--websocket-share", "150"], "websocket_share"),
    (["run"], "wallets"),
    (["run", "--wallet", W], "websocket_url"),  # websocket mode without URLs
    (["run", "--wallet", W, "--nonsense", "1"], "unrecognized"),
    (["run", "--wallet", W, "--config", "/nonexistent/monitor.toml"], "not found"),
    (["run", "--wallets-file", "/nonexistent/w.txt"], "wallets_file"),
    (["run", "--wallet", W, "--set", "fallback_after"], "NAME=VALUE"),
    (["run", "--wallet", W, "--set", "=5"], "NAME=VALUE"),  # was "settings: unknown"
    (["fly"], "invalid choice"),
])

def test_bad_arguments_give_one_line_and_exit_2(args: list[str], needle: str) -> None:
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2  # argparse may add its usage line


def test_bad_wallets_file_line_is_named(tmp_path: Path) -> None:
    f = tmp_path / "w.txt"
    f.write_text(f"# watched\n{W}\nnot-an-address\n")
    r = run_cli("run", "--wallets-file", str(f), "--mode", "polling")
    assert r.returncode == 2 and "w.txt:3" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("setting_flag", [["--fallback-after", "5"],
                                          ["--set", "fallback_after=5"]])
def test_ready_then_clean_stop_on_sigterm_even_when_the_explorer_is_down(
        tmp_path: Path, setting_flag: list[str]) -> None:
    hist, det = tmp_path / "h.jsonl", tmp_path / "d.jsonl"
    p = spawn([PY, "-m", "monitor", "run", "--mode", "polling", "--wallet", W,
               "--explorer-url", "http://127.0.0.1:1/v2/api", "--db", str(tmp_path / "s.db"),
               "--detections", str(det), "--history", str(hist), "--speed", "50",
               *setting_flag], tmp_path / "err.txt")
    p.wait_ready()
    wait_for(lambda: any(r.get("event") == "api_call" for r in read_jsonl(hist)), 30,
             "a failed explorer call recorded")
    assert p.terminate() == 0
    rows = read_jsonl(hist)
    assert rows[0]["event"] == "start" and rows[0]["mode"] == "polling"
    assert rows[0]["settings"]["fallback_after"] == 5
    assert rows[-1]["event"] == "stop"
    assert rows[-1]["metrics"]["explorer"]["failures"]
    assert "Traceback" not in (tmp_path / "err.txt").read_text()
    assert det.exists()
    json.dumps(rows[-1])


def test_run_freezes_the_start_up_heap_before_ready(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11: a full collection walked the whole start-up heap (170 ms at 100,000
    wallets). ``run`` freezes it once the sources are started, before READY."""
    import asyncio
    import gc
    import os
    import signal

    import monitor.wallet_monitor
    from monitor import cli

    seen: dict[str, int] = {}

    class FakeMonitor:
        def __init__(self, settings: object) -> None:
            self.garbage: list[object] = []

        async def start(self) -> None:
            self.garbage = [[] for _ in range(100)]
            seen["at_start"] = gc.get_freeze_count()

        async def wait_connected(self, timeout: float) -> bool:
            seen["at_ready"] = gc.get_freeze_count()
            asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)
            return True

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(monitor.wallet_monitor, "WalletMonitor", FakeMonitor)
    gc.unfreeze()
    try:
        assert asyncio.run(cli._run(object())) == 0  # type: ignore[arg-type]
    finally:
        gc.unfreeze()
    assert seen["at_start"] == 0 and seen["at_ready"] > 0
    assert "READY" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "needle"), [
    (["--history", "/"], "history file / is a directory"),  # were tracebacks
    (["--history", "/proc/h.jsonl"], "history file /proc/h.jsonl: No such file"),
    (["--detections", "/"], "detections file / is a directory"),
])
def test_output_paths_that_cannot_be_written_give_one_line_and_exit_2(
        args: list[str], needle: str, tmp_path: Path) -> None:
    r = run_cli("run", "--wallet", W, "--ws-url", "ws://127.0.0.1:9/", "--rpc-url",
                "http://127.0.0.1:9/", "--db", str(tmp_path / "m.db"), *args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_metrics_port_in_use_or_a_foreign_host_is_one_line(tmp_path: Path) -> None:
    """Were an OSError / socket.gaierror traceback from the ops server's bind."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra, needle in ((["--metrics-port", str(port)], "address already in use"),
                              (["--metrics-host", "999.1.1.1", "--metrics-port", "19999"],
                               "cannot listen on 999.1.1.1")):
            r = run_cli("run", "--wallet", W, "--ws-url", "ws://127.0.0.1:9/", "--rpc-url",
                        "http://127.0.0.1:9/", "--db", str(tmp_path / "m.db"), *extra)
            assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
            assert needle in r.stderr and "metrics: cannot listen" in r.stderr


def test_a_second_run_on_the_same_state_db_is_refused_with_one_line(tmp_path: Path) -> None:
    """It printed READY and ran beside the first, sharing its outbox and dedup table."""
    db = tmp_path / "s.db"
    first = spawn([PY, "-m", "monitor", "run", "--mode", "polling", "--wallet", W,
                   "--explorer-url", "http://127.0.0.1:1/v2/api", "--db", str(db),
                   "--detections", str(tmp_path / "d1.jsonl"), "--speed", "50"],
                  tmp_path / "err1.txt")
    try:
        first.wait_ready()
        r = run_cli("run", "--mode", "polling", "--wallet", W, "--explorer-url",
                    "http://127.0.0.1:1/v2/api", "--db", str(db), "--detections",
                    str(tmp_path / "d2.jsonl"), "--speed", "50")
        assert r.returncode == 2 and "READY" not in r.stdout, r.stderr
        assert "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines()[-1] == (
            f"python -m monitor: error: state_db {db} is in use by another monitor "
            f"(pid {first.proc.pid})")
    finally:
        assert first.terminate() == 0


@pytest.mark.parametrize(("case", "needle"), [
    ("readonly", "cannot be written"),
    ("newer", "was written by a newer monitor (schema 99 > 2)"),
    ("other", "not a monitor state database (table cursors: no column wallet)"),
])
def test_a_state_db_the_monitor_cannot_use_is_one_line_before_ready(
        tmp_path: Path, case: str, needle: str) -> None:
    """Read-only: READY, then nothing delivered; newer: READY, every sync failed; another
    schema: a sqlite3 traceback from Store.cursors()."""
    import contextlib
    import sqlite3

    from fs_helpers import read_only

    from monitor.store import Store

    db = tmp_path / "s.db"
    if case == "readonly":
        Store(db).close()
    else:
        with contextlib.closing(sqlite3.connect(db)) as c:
            c.execute("PRAGMA user_version = 99" if case == "newer" else "SELECT 1")
            c.execute("CREATE TABLE cursors (x INTEGER)")
            c.commit()
    with read_only(db) if case == "readonly" else contextlib.nullcontext():
        r = run_cli("run", "--mode", "polling", "--wallet", W, "--explorer-url",
                    "http://127.0.0.1:1/v2/api", "--db", str(db), "--detections",
                    str(tmp_path / "d.jsonl"))
    assert r.returncode == 2 and "READY" not in r.stdout and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"python -m monitor: error: state_db {db}") and needle in last


@pytest.mark.parametrize(("flag", "needle"), [
    ("--history", "history file {f}: not a regular file"),
    ("--detections", "detections file {f}: not a regular file"),
    ("--wallets-file", "wallets_file: cannot read {f}: not a regular file"),
    ("--config", "config: cannot read {f}: not a regular file"),
    ("EXPLORER_API_KEY_FILE", "explorer_api_key_file: cannot read {f}: not a regular file"),
    ("pilot", "{f}: not a regular file"),
])
def test_a_fifo_for_a_file_is_one_line_not_a_hang(tmp_path: Path, flag: str,
                                                  needle: str) -> None:
    """--history naming a FIFO blocked in open() for ever and ignored SIGTERM; the config
    and secret files blocked too (until a signal)."""
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    args = ["run", "--mode", "polling", "--explorer-url", "http://127.0.0.1:1/v2/api",
            "--db", str(tmp_path / "s.db")]
    env = dict(os.environ)
    if flag == "EXPLORER_API_KEY_FILE":
        env[flag] = str(fifo)
    elif flag == "pilot":  # the pilot's own files in its store folder
        fifo = tmp_path / "store" / "events.jsonl"
        fifo.parent.mkdir()
        os.mkfifo(fifo)
        args = ["pilot", "--store", str(fifo.parent), "--ws-url", "ws://127.0.0.1:1/",
                "--rpc-url", "http://127.0.0.1:1/", "--explorer-url",
                "http://127.0.0.1:1/v2/api", "--start-block", "1"]
    else:
        args += [flag, str(fifo)]
    if flag != "--wallets-file":
        args += ["--wallet", W]
    r = subprocess.run([PY, "-m", "monitor", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=30, env=env)
    assert r.returncode in (1, 2) and "Traceback" not in r.stderr, r.stderr
    assert needle.format(f=fifo) in r.stderr.strip().splitlines()[-1], r.stderr


@pytest.mark.parametrize("command", ["run", "pilot"])
def test_sigterm_while_the_feed_connects_stops_at_once_without_ready(
        tmp_path: Path, command: str) -> None:
    """The stop was only awaited after wait_connected (up to 15 s), then READY was printed
    anyway: `exit rc=0 14 s after SIGTERM; stdout: READY`."""
    import os
    import signal
    import time

    where = (["--db", str(tmp_path / "s.db"), "--history", str(tmp_path / "h.jsonl")]
             if command == "run" else ["--store", str(tmp_path / "store"),
                                       "--explorer-url", "http://127.0.0.1:1/api",
                                       "--start-block", "1"])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([PY, "-m", "monitor", command, "--ws-url", "ws://127.0.0.1:1/",
                             "--rpc-url", "http://127.0.0.1:1/", "--wallet", W, *where],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        started = (tmp_path / "h.jsonl") if command == "run" else \
            (tmp_path / "store" / "websocket" / "history.jsonl")
        # the sources are started (the start row) and the feed cannot connect: waiting
        wait_for(lambda: any(r.get("event") in ("start", "pilot_session")
                             for r in read_jsonl(started)), 30, "the monitor started")
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert "READY" not in out
    assert took < 8.0, f"stopped {took:.1f} s after SIGTERM"


_TOKEN = "123456:AAtokenOnArgv"
_KEYED = "http://127.0.0.1:1/v2/K3yInThePath0123"


def test_both_commands_find_the_same_secrets_on_argv() -> None:
    """`run` warned only for --api-key; `pilot` refused --api-key but took
    --telegram-token; a URL carrying a key got no word from either."""
    from monitor.cli import build_parser
    from monitor.config import argv_secrets

    extra = ["--api-key", "k1", "--telegram-token", _TOKEN, "--rpc-url", _KEYED,
             "--ws-url", "ws://127.0.0.1:1/?key=abcdefgh12", "--explorer-url",
             "http://127.0.0.1:1/api", "--set", "telegram_token=" + _TOKEN,
             "--set", "explorer_api_key_file=/run/key", "--set", "websocket_url=" + _KEYED]
    found = {}
    for command in ("run", "pilot"):
        ns = build_parser().parse_args([command, *extra])
        found[command] = [(f.flag, f.definite) for f in argv_secrets(vars(ns), ns.set)]
    assert found["run"] == found["pilot"] == [
        ("--api-key", True), ("--telegram-token", True), ("--ws-url", False),
        ("--rpc-url", False), ("--set telegram_token", True), ("--set websocket_url", False)]


def test_run_warns_for_every_secret_on_argv(tmp_path: Path) -> None:
    r = run_cli("run", "--mode", "polling", "--wallet", W, "--explorer-url", _KEYED,
                "--telegram-token", _TOKEN, "--telegram-chat-id", "1",
                "--db", str(tmp_path))  # a folder: exit 2 once the warnings are out
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "--telegram-token on the command line is visible to every user in `ps`: " \
           "prefer TELEGRAM_TOKEN or TELEGRAM_TOKEN_FILE" in r.stderr
    assert "--explorer-url on the command line (it looks like it carries a key)" in r.stderr
    assert "K3yInThePath0123" not in r.stderr and "AAtokenOnArgv" not in r.stderr


_TG, _EX = "TELEGRAM_TOKEN or TELEGRAM_TOKEN_FILE", "EXPLORER_API_KEY or EXPLORER_API_KEY_FILE"


@pytest.mark.parametrize(("secret", "flag", "instead"), [
    (["--telegram-token", _TOKEN], "--telegram-token", _TG),
    (["--set", "telegram_token=" + _TOKEN], "--set telegram_token", _TG),
    (["--api-key", "k1"], "--api-key", _EX),
    (["--set", "explorer_api_key=k1"], "--set explorer_api_key", _EX)])
def test_the_pilot_refuses_every_key_or_token_on_argv(
        tmp_path: Path, secret: list[str], flag: str, instead: str) -> None:
    r = run_cli("pilot", "--store", str(tmp_path / "s"), "--wallet", W, *secret)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"python -m monitor pilot: error: {flag} is refused: keys on the command line are "
        f"visible in `ps`; use {instead}"]
    assert not (tmp_path / "s").exists()
