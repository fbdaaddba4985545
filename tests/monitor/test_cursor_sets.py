"""Cursor sets (monitor.store): wallets given one cursor together are kept as one row.

Per wallet nothing changes: a model of per-wallet cursors (forward only, or moved back;
a start for wallets without one) gives the same cursors after any sequence of writes,
across reopening the file. And a sync of many wallets writes one row, where it wrote one
a wallet (100,000 rows every ``reconcile_interval`` at the whole market: half the
monitor's CPU)."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.store import LAUNCH_GROUP, Store

WALLETS = [f"0x{i:040x}" for i in range(1, 9)]

_write = st.tuples(
    st.just("set"), st.lists(st.sampled_from(WALLETS), min_size=1, max_size=8),
    st.integers(0, 12), st.sampled_from([None, "0xa", "0xb"]),
    st.sampled_from(["websocket", "polling"]), st.booleans())
_start = st.tuples(st.just("start"), st.lists(st.sampled_from(WALLETS), max_size=8),
                   st.integers(0, 12))
_reopen = st.tuples(st.just("reopen"))
#: an earlier write's wallets again, in the same order (a shard's next sync)
_again = st.tuples(st.just("again"), st.integers(0, 12), st.sampled_from([None, "0xc"]),
                   st.integers(0, 3))


def _check(store: Store, model: dict[str, tuple[int, str | None, str]]) -> None:
    got = {w: (c.block, c.hash, c.group) for w, c in store.cursors().items()}
    assert got == model
    for w in WALLETS:
        c = store.cursor(w)
        assert (None if c is None else (c.block, c.hash, c.group)) == model.get(w)
    assert store.stats()["wallets_with_cursor"] == len(model)
    db = store._db
    own = {w for (w,) in db.execute("SELECT wallet FROM cursors")}
    members = {w for (w,) in db.execute("SELECT wallet FROM cursor_members")}
    assert not own & members  # one cursor a wallet
    assert db.execute("SELECT COUNT(*) FROM cursor_sets WHERE id NOT IN "
                      "(SELECT set_id FROM cursor_members)").fetchone()[0] == 0  # no empty set
    assert {w for (w,) in db.execute("SELECT wallet FROM wallet_cursors")} == set(model)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.one_of(_write, _start, _reopen, _again), min_size=1, max_size=25))
def test_cursor_sets_give_every_wallet_the_cursor_of_per_wallet_rows(ops: list[tuple]) -> None:
    model: dict[str, tuple[int, str | None, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.sqlite"
        store = Store(path, cursor_set_min=2, cursor_set_max=3, synchronous="OFF")
        try:
            written: list[list[str]] = [WALLETS[:5]]
            for op in ops:
                if op[0] == "again":
                    ws = written[-1 - op[3] % len(written)]
                    op = ("set", ws, op[1], op[2], "websocket", True)
                if op[0] == "set":
                    written.append(op[1])
                    _, ws, block, block_hash, group, forward = op
                    store.set_cursors(ws, block, block_hash, group, forward_only=forward)
                    for w in dict.fromkeys(ws):
                        if not forward or w not in model or model[w][0] < block:
                            model[w] = (block, block_hash, group)
                elif op[0] == "start":
                    _, ws, block = op
                    started = store.start_cursors(ws, block)
                    fresh = [w for w in dict.fromkeys(ws) if w not in model]
                    assert started == fresh
                    model.update(dict.fromkeys(fresh, (block, None, LAUNCH_GROUP)))
                else:
                    store.close()
                    store = Store(path, cursor_set_min=2, cursor_set_max=3,
                                  synchronous="OFF")
                _check(store, model)
        finally:
            store.close()


def test_a_sync_of_many_wallets_writes_one_row(tmp_path: Path) -> None:
    wallets = [f"0x{i:040x}" for i in range(5_000)]
    store = Store(tmp_path / "state.sqlite")
    try:
        store.start_cursors(wallets, 100)  # started as sets, as a sync will write them
        before = store._db.total_changes
        store.set_cursors(wallets, 120, "0x120", "websocket")
        assert store._db.total_changes - before == 3  # sets of 2,000, 2,000 and 1,000
        before = store._db.total_changes
        for i in range(0, 5_000, 2_000):  # in parts as a shard writes them: the same sets
            store.set_cursors(wallets[i:i + 2_000], 121, "0x121", "websocket")
        assert store._db.total_changes - before == 3
        assert {c.block for c in store.cursors().values()} == {121}
        store.set_cursors(wallets[:1], 130, None, "polling")  # one moved on its own
        store.set_cursors(wallets, 125, "0x125", "websocket")
        blocks = {w: c.block for w, c in store.cursors().items()}
        assert blocks[wallets[0]] == 130 and set(blocks.values()) == {125, 130}
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "state.sqlite") as con:  # as another process reads it
        assert con.execute("SELECT COUNT(*) FROM cursor_members").fetchone()[0] == 4_999
    reopened = Store(tmp_path / "state.sqlite")
    try:
        assert {w: c.block for w, c in reopened.cursors().items()} == blocks
    finally:
        reopened.close()


def test_a_wallet_polled_out_of_its_set_is_written_again_with_the_set(tmp_path: Path) -> None:
    """The same slice again after one of its wallets took a cursor of its own (the
    fallback poller moved it): that wallet is written too, not only the set's row."""
    a, b, c = WALLETS[:3]
    store = Store(tmp_path / "state.sqlite", cursor_set_min=2, cursor_set_max=3)
    try:
        store.set_cursors([a, b, c], 10, "0x10", "websocket")
        store.set_cursors([a, b, c], 11, "0x11", "websocket")  # the same slice: one row
        store.set_cursors([b], 5, None, "polling", forward_only=False)  # moved back alone
        store.set_cursors([a, b, c], 12, "0x12", "websocket")
        assert {w: cur.block for w, cur in store.cursors().items()} == {a: 12, b: 12, c: 12}
    finally:
        store.close()
