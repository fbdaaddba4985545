"""Hostile input to ``python -m monitor run`` and ``monitor pilot``, run as a user runs
them (a subprocess): one ``python -m monitor[ pilot]: error: ...`` line, exit code 2, no
traceback, nothing written where it was not asked for, and no secret in the line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_checks import error_line

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
W = "0x" + "11" * 20


def monitor(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("MONITOR_") and k not in (
                "EXPLORER_API_KEY", "TELEGRAM_TOKEN", "WEBSOCKET_URL", "EXPLORER_API_KEY_FILE")}
    return subprocess.run([PY, "-m", "monitor", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={**base, "PYTHONPATH": str(ROOT), **(env or {})})


def run_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--mode", "polling", "--explorer-url", "http://127.0.0.1:9/api",
            "--wallet", W, "--db", str(tmp_path / "m.db"), *extra]


@pytest.mark.parametrize(("toml", "expected"), [
    ('api_key = "abc"\n', "invalid setting api_key: unknown setting"),
    ("explorer_api_key = 12345\n", "invalid setting explorer_api_key: Input should be a "
                                   "valid string"),
    ('"" = 1\n', "invalid setting '': unknown setting")])
def test_config_errors_mask_secrets_only(toml: str, expected: str, tmp_path: Path) -> None:
    """The line was redacted as a whole: "api_key: *** setting", "explorer_api_key: ***
    should be a valid string" (a name and ': ' looked like a key and its value), and a key
    '' read "invalid setting unknown setting"."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    line = error_line(monitor(*run_args(tmp_path, "--config", str(cfg))))
    assert line.endswith(expected), line


def test_a_secret_in_a_bad_url_is_still_masked(tmp_path: Path) -> None:
    line = error_line(monitor("run", "--mode", "polling", "--explorer-url",
                              "http://u:hunter2pass@h:99999/api", "--wallet", W,
                              "--db", str(tmp_path / "m.db")))
    assert "hunter2pass" not in line and "explorer_url" in line


def test_a_config_nested_too_deep_is_one_line(tmp_path: Path) -> None:
    """tomllib has no depth limit: a RecursionError traceback of 3,000 lines."""
    cfg = tmp_path / "deep.toml"
    cfg.write_text("wallets = " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deep" in error_line(monitor(*run_args(tmp_path, "--config", str(cfg))))


@pytest.mark.parametrize(("flag", "setting"), [("--db", "state_db"),
                                               ("--metrics-host", "metrics_host")])
def test_empty_paths_and_hosts_are_refused(flag: str, setting: str, tmp_path: Path) -> None:
    """``--db ''`` said "state_db  is a directory"; an empty metrics_host listened on every
    interface (0.0.0.0 and ::) without a word."""
    args = run_args(tmp_path, flag, "", "--metrics-port", "0")
    line = error_line(monitor(*args))
    assert f"invalid setting {setting}: must not be empty" in line


def test_env_empty_metrics_host_is_refused(tmp_path: Path) -> None:
    line = error_line(monitor(*run_args(tmp_path),
                              env={"MONITOR_METRICS_HOST": "", "MONITOR_METRICS_PORT": "0"}))
    assert "metrics_host: must not be empty" in line


def test_an_upper_case_set_of_the_key_is_refused_by_the_pilot(tmp_path: Path) -> None:
    """``--set EXPLORER_API_KEY=...`` was taken as the key (the settings' names are not
    case-sensitive), past the pilot's refusal and run's warning."""
    res = monitor("pilot", "--store", str(tmp_path / "s"), "--wallet", W,
                  "--set", "EXPLORER_API_KEY=SeCrEtKeY12345")
    line = error_line(res)
    assert "--set explorer_api_key is refused" in line and "SeCrEtKeY12345" not in res.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("action", ["run", "status"])
def test_pilot_empty_store_is_refused_not_the_current_folder(action: str,
                                                             tmp_path: Path) -> None:
    """``--store ''`` was the current folder: the pilot wrote pilot.sqlite, events.jsonl
    and sightings.jsonl there (and ``status`` read it)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    res = monitor("pilot", action, "--store", "", "--ws-url", "ws://127.0.0.1:9/",
                  "--rpc-url", "http://127.0.0.1:9/", "--explorer-url",
                  "http://127.0.0.1:9/api", "--wallet", W, cwd=cwd)
    assert "--store: an empty path" in error_line(res)
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize("payload", ["{not json", '{"wallet": 1}', "[1, 2]"])
def test_a_damaged_outbox_row_is_one_line_naming_it(payload: str, tmp_path: Path) -> None:
    """A state DB whose outbox holds a row that cannot be read (a disk error, an edit by
    hand): the restart's redelivery raised ValueError/TypeError out of the monitor, a
    traceback. It is one line naming the row, exit 2, and the row is kept (the sink may
    never have had it)."""
    import sqlite3

    from monitor.cores import Deduplicator
    from monitor.store import Store
    from monitor.trades import decode_order_filled
    from tests.monitor.monitor_helpers import order_filled

    trade = decode_order_filled(order_filled(tx=5))
    store = Store(tmp_path / "m.db")
    store.commit(Deduplicator().offer(trade.id, trade.block_hash), trade_id=trade.id,
                 source="ws", trade=trade)
    store.close()
    with sqlite3.connect(tmp_path / "m.db") as db:
        db.execute("UPDATE outbox SET payload = ?", (payload,))
    db.close()
    res = monitor(*run_args(tmp_path, "--detections", str(tmp_path / "d.jsonl")))
    assert "Traceback" not in res.stderr and res.returncode == 2, res.stderr
    line = res.stderr.strip().splitlines()[-1]  # after the log lines of the stop
    assert line.startswith("python -m monitor: error: "), res.stderr
    assert "outbox row seq 1" in line and trade.id in line, line
    with sqlite3.connect(tmp_path / "m.db") as db:
        assert db.execute("SELECT COUNT(*) FROM outbox WHERE sent = 0").fetchone() == (1,)
    db.close()
