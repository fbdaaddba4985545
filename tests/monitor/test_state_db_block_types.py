"""A state DB whose block numbers are not numbers (SQLite keeps a text in an INTEGER
column: a hand edit, another program) is refused when it is opened, naming the table,
the row and the value: ``monitor run`` printed a TypeError traceback out of its start."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.cli import main as monitor_main
from monitor.errors import StoreError
from monitor.store import Store

WALLETS = ["0x" + f"{i:02x}" * 20 for i in range(1, 4)]


def _state_db(path: Path, *, in_sets: bool) -> Path:
    """A state DB with cursors for WALLETS (rows of their own, or one cursor set), a
    block hash and a launch point."""
    store = Store(path, synchronous="OFF", cursor_set_min=2 if in_sets else 10**6)
    store.set_cursors(WALLETS, 120, "0x120", "websocket", blocks={120: "0x120"}, launch=True)
    store.close()
    return path


DAMAGE = [
    ("cursors", "UPDATE cursors SET block = 'abc'", "table cursors: block of 0x0101"),
    ("cursors negative", "UPDATE cursors SET block = -5", "is '-5', not a block number"),
    ("cursor_sets", "UPDATE cursor_sets SET block = 'abc'", "table cursor_sets: block of 1"),
    ("blocks", "UPDATE blocks SET number = -3", "table blocks: number of -3"),
    ("launches", "UPDATE launches SET block = 1.5", "table launches: block of 0x0101"),
]


@pytest.mark.parametrize(("name", "sql", "said"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_a_block_number_that_is_not_one_is_refused_at_open(
        name: str, sql: str, said: str, tmp_path: Path) -> None:
    path = _state_db(tmp_path / "state.sqlite", in_sets=name == "cursor_sets")
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()
    with pytest.raises(StoreError) as err:
        Store(path)
    assert said in err.value.message and "is damaged" in err.value.message, err.value.message
    Store(tmp_path / "other.sqlite").close()  # the lock of the refused one is let go too
    db = sqlite3.connect(path)
    db.execute("DELETE FROM cursors")
    db.execute("DELETE FROM cursor_sets")
    db.execute("DELETE FROM cursor_members")
    db.execute("DELETE FROM blocks")
    db.execute("DELETE FROM launches")
    db.commit()
    db.close()
    Store(path).close()  # its lock was released: the fixed file opens


def test_monitor_run_on_such_a_state_db_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a TypeError traceback from WalletMonitor.start (exit 1)."""
    path = _state_db(tmp_path / "state.sqlite", in_sets=False)
    db = sqlite3.connect(path)
    db.execute("UPDATE cursors SET block = 'abc'")
    db.commit()
    db.close()
    code = monitor_main(["run", "--mode", "polling", "--explorer-url", "http://127.0.0.1:9/api",
                         "--set", "explorer_api_key=k", "--wallet", WALLETS[0],
                         "--db", str(path), "--detections", str(tmp_path / "d.jsonl"),
                         "--history", str(tmp_path / "h.jsonl")])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code == 2
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "is damaged (table cursors: block of" in errors[0], err


def test_a_whole_state_db_opens(tmp_path: Path) -> None:
    for in_sets in (False, True):
        path = _state_db(tmp_path / f"state{in_sets}.sqlite", in_sets=in_sets)
        store = Store(path)
        assert {c.block for c in store.cursors().values()} == {120}
        store.close()
