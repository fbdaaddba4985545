"""A pilot store whose values are of the wrong type (SQLite keeps a text in an INTEGER
column: a hand edit, another program) is one line naming the table, row and column in
``pilot status`` and ``experiments reconcile``, exit 2: it was a TypeError traceback."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from experiments.cli import main as experiments_main
from monitor.cli import main as monitor_main
from monitor.pilot import PilotStore

WALLET = "0x" + "11" * 20


def _store(directory: Path) -> Path:
    """A stopped pilot's store: one session, both paths beaten, a trade seen by both."""
    s = PilotStore(directory)
    s.set_meta("start_block", 100)
    s.set_meta("wallets", [WALLET])
    s.set_meta("beat_s", 5.0)
    now = time.time_ns()
    sid = s.new_session(now - 100 * 10**9, 0)
    for path in ("websocket", "polling"):
        s.beat(sid, path, dt_s=5, healthy=True, fallback=False, state="x", head=105,
               cursor=104, wall_ns=now, mono_ns=1)
        s._db.execute("INSERT INTO sightings VALUES (?, 'trade', 't1', 0, 'ws', ?, 1, ?, ?,"
                      " 101, '0xab', ?)", (path, now, sid, WALLET, now // 10**9 - 3))
    s.end_session(sid, now)
    s.close()
    return directory


DAMAGE = {
    "sessions.started_wall_ns": ("UPDATE sessions SET started_wall_ns = 'abc'",
                                 "table sessions, row 1: started_wall_ns is 'abc'"),
    "sessions.last_wall_ns": ("UPDATE sessions SET last_wall_ns = 'abc'",
                              "table sessions, row 1: last_wall_ns is 'abc'"),
    "paths.healthy_s": ("UPDATE paths SET healthy_s = 'x'", "table paths, row 1: healthy_s"),
    "sightings.wall_ns": ("UPDATE sightings SET wall_ns = 'x'",
                          "table sightings, row 1: wall_ns"),
    "sightings.session": ("UPDATE sightings SET session = 'x'",  # reconcile sorts by it
                          "table sightings, row 1: session"),
    "sightings.block_timestamp": ("UPDATE sightings SET block_timestamp = 'x'",
                                  "table sightings, row 1: block_timestamp"),
    "meta.wallets": ("UPDATE meta SET value = '5' WHERE key = 'wallets'",
                     "meta 'wallets' is '5', not a list of texts"),
    "meta.wallets null": ("UPDATE meta SET value = 'null' WHERE key = 'wallets'",
                          "meta 'wallets' is 'None'"),
}


def _damaged(tmp_path: Path, sql: str) -> Path:
    store = _store(tmp_path / "store")
    db = sqlite3.connect(store / "pilot.sqlite")
    db.execute(sql)
    db.commit()
    db.close()
    return store


def _one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_pilot_status_of_a_store_with_a_value_of_the_wrong_type_is_one_line(
        case: str, as_json: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql, said = DAMAGE[case]
    store = _damaged(tmp_path, sql)
    code = monitor_main(["pilot", "status", "--store", str(store), *(["--json"] * as_json)])
    line = _one_line(capsys.readouterr().err)
    assert code == 2
    assert "not a pilot store" in line and said in line, line


def test_reconcile_of_a_store_with_a_head_of_the_wrong_type_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _damaged(tmp_path, "INSERT INTO heads VALUES (1, 1, 'websocket', 'x')")
    code = experiments_main(["reconcile", str(store), "--rpc-url", "http://127.0.0.1:9/",
                             "--out", str(tmp_path / "out"), "--grace", "0"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2
    assert "table heads, row 1: head is 'x'" in line, line
    assert not (tmp_path / "out").exists()


def test_a_whole_store_still_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(tmp_path / "store")
    assert monitor_main(["pilot", "status", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "trades seen by both paths: 1" in out and "1 wallet(s)" in out
