"""``Store.set_sweep_floors`` / ``sweep_floors`` (table ``sweep_floors``): the zero mode's
sweep floor per wallet, kept across a restart. A state DB from before the table opens
(the table made; an older monitor ignores it: no schema bump), rows are set, moved and
dropped in one transaction each, and a floor that is not a block number is refused at
open as the other block columns are."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.store import SCHEMA_VERSION, Store

WALLETS = ["0x" + f"{i:02x}" * 20 for i in range(1, 4)]


def test_floors_are_set_moved_and_dropped(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    assert store.sweep_floors() == {}
    store.set_sweep_floors(WALLETS, 120)
    store.set_sweep_floors(WALLETS[:1], 90)
    store.set_sweep_floors(WALLETS[2:], None)
    assert store.sweep_floors() == {WALLETS[0]: 90, WALLETS[1]: 120}
    store.close()
    store = Store(tmp_path / "s.db")  # (durable)
    assert store.sweep_floors() == {WALLETS[0]: 90, WALLETS[1]: 120}
    store.set_sweep_floors(WALLETS, None)
    assert store.sweep_floors() == {}
    store.close()


def test_a_state_db_from_before_the_table_opens(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE sweep_floors")
    db.commit()
    db.close()
    store = Store(path)
    assert store.sweep_floors() == {}
    assert int(store._db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION == 2
    store.close()


def test_a_floor_that_is_not_a_block_number_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path)
    store.set_sweep_floors(WALLETS[:1], 7)
    store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE sweep_floors SET block = 'abc'")
    db.commit()
    db.close()
    with pytest.raises(StoreError) as err:
        Store(path)
    assert "is damaged (table sweep_floors: block of 0x0101" in err.value.message, err.value
