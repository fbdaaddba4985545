"""Cursor sets (monitor.store) under faults: a write that fails anywhere inside its
transaction (SQLite interrupted at a random step, as a full disk or an I/O error would
stop it) leaves the file AND the in-memory index as before, and every later write still
gives each wallet the cursor per-wallet rows would. Also: lists with duplicates, slices
that overlap, writes in the order of another shard, prune_delivered and stats with sets,
and the index rebuilt at reopen equal to the one kept in memory."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import StoreError
from monitor.store import LAUNCH_GROUP, Store

WALLETS = [f"0x{i:040x}" for i in range(1, 11)]

_write = st.tuples(
    st.just("set"), st.lists(st.sampled_from(WALLETS), min_size=1, max_size=12),
    st.integers(0, 12), st.sampled_from([None, "0xa", "0xb"]),
    st.sampled_from(["websocket", "polling"]), st.booleans(),
    st.one_of(st.none(), st.integers(1, 400)))
_start = st.tuples(st.just("start"), st.lists(st.sampled_from(WALLETS), max_size=12),
                   st.integers(0, 12), st.one_of(st.none(), st.integers(1, 400)))
_reopen = st.tuples(st.just("reopen"))
_prune = st.tuples(st.just("prune"), st.integers(1, 5))


class _Fail:
    """A progress handler that interrupts SQLite once, after ``steps`` VM steps (the
    ROLLBACK that follows runs)."""

    def __init__(self, steps: int) -> None:
        self.left = steps

    def __call__(self) -> int:
        self.left -= 1
        return 1 if self.left == 0 else 0


def _index_of(store: Store) -> tuple[dict[str, int], dict[int, int]]:
    db = store._db
    set_of = dict(db.execute("SELECT wallet, set_id FROM cursor_members"))
    size: dict[int, int] = {}
    for s in set_of.values():
        size[s] = size.get(s, 0) + 1
    return set_of, size


def _cursors(store: Store) -> dict[str, tuple[int, str | None, str]]:
    return {w: (c.block, c.hash, c.group) for w, c in store.cursors().items()}


def _check(store: Store, model: dict[str, tuple[int, str | None, str]]) -> None:
    assert _cursors(store) == model
    for w in WALLETS:
        c = store.cursor(w)
        assert (None if c is None else (c.block, c.hash, c.group)) == model.get(w)
    assert store.stats()["wallets_with_cursor"] == len(model)
    set_of, size = _index_of(store)
    assert store._set_of == set_of  # the in-memory index is the file's
    assert store._set_size == size
    for set_id, members in store._set_exact.items():
        assert sorted(members) == sorted(w for w, s in set_of.items() if s == set_id)
    db = store._db
    own = {w for (w,) in db.execute("SELECT wallet FROM cursors")}
    assert not own & set(set_of)
    assert db.execute("SELECT COUNT(*) FROM cursor_sets WHERE id NOT IN "
                      "(SELECT set_id FROM cursor_members)").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM cursor_members WHERE set_id NOT IN "
                      "(SELECT id FROM cursor_sets)").fetchone()[0] == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.one_of(_write, _start, _reopen, _prune), min_size=1, max_size=25),
       sizes=st.sampled_from([(2, 3), (1, 2), (3, 5), (2, 10)]))
def test_a_write_failing_anywhere_leaves_the_file_and_the_index_as_before(
        ops: list[tuple], sizes: tuple[int, int]) -> None:
    lo, hi = sizes
    model: dict[str, tuple[int, str | None, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.sqlite"
        store = Store(path, cursor_set_min=lo, cursor_set_max=hi, synchronous="OFF")
        try:
            for op in ops:
                if op[0] in ("set", "start"):
                    fail = op[-1]
                    if fail is not None:
                        store._db.set_progress_handler(_Fail(fail), 1)
                    ok = True
                    try:
                        if op[0] == "set":
                            _, ws, block, block_hash, group, forward, _f = op
                            store.set_cursors(ws, block, block_hash, group,
                                              forward_only=forward)
                        else:
                            _, ws, block, _f = op
                            started = store.start_cursors(ws, block)
                    except StoreError:
                        ok = False
                    finally:
                        store._db.set_progress_handler(None, 1)
                    after = dict(model)
                    if op[0] == "set":
                        for w in dict.fromkeys(ws):
                            if not forward or w not in after or after[w][0] < block:
                                after[w] = (block, block_hash, group)
                    else:
                        fresh = [w for w in dict.fromkeys(ws) if w not in model]
                        assert not ok or started == fresh
                        after.update(dict.fromkeys(fresh, (block, None, LAUNCH_GROUP)))
                    if ok or _cursors(store) == after:  # a failed COMMIT may have committed
                        model = after
                elif op[0] == "prune":
                    store.prune_delivered(op[1])
                else:
                    store.close()
                    store = Store(path, cursor_set_min=lo, cursor_set_max=hi,
                                  synchronous="OFF")
                _check(store, model)
        finally:
            store.close()


def test_prune_delivered_keeps_what_is_near_the_cursor_of_a_wallet_in_a_set(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite", cursor_set_min=2, cursor_set_max=3)
    a, b, c, d = WALLETS[:4]
    try:
        store.set_cursors([a, b, c], 100, "0x100", "websocket")  # a set
        store.set_cursors([d], 20, None, "polling")  # a row of its own
        rows = [(f"t{w}{n}", w, n, f"0x{n}", 0, 1, 0) for w in (a, b, c, d)
                for n in (10, 60, 95)]
        with store._tx():
            store._db.executemany("INSERT INTO delivered VALUES (?,?,?,?,?,?,?)", rows)
        assert store.prune_delivered(10) == 6  # 10 and 60 of a, b, c; none of d's
        left = {(w, n) for w, n in store._db.execute(
            "SELECT wallet, block_number FROM delivered")}
        assert left == {(a, 95), (b, 95), (c, 95), (d, 10), (d, 60), (d, 95)}
    finally:
        store.close()


def test_an_unbindable_hash_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.sqlite", cursor_set_min=2, cursor_set_max=3)
    try:
        store.set_cursors(WALLETS[:6], 10, "0x10", "websocket")
        before = dict(store._set_of), dict(store._set_size)
        with pytest.raises((StoreError, sqlite3.Error, TypeError, ValueError)):
            store.set_cursors(WALLETS[:6], 11, object(), "websocket")  # type: ignore[arg-type]
        assert (store._set_of, store._set_size) == before
        assert {c.block for c in store.cursors().values()} == {10}
        store.set_cursors(WALLETS[:6], 12, "0x12", "websocket")
        assert {c.block for c in store.cursors().values()} == {12}
    finally:
        store.close()


def test_two_shards_with_overlapping_slices_and_a_poller_between(tmp_path: Path) -> None:
    ws = [f"0x{i:040x}" for i in range(1, 40)]
    store = Store(tmp_path / "state.sqlite", cursor_set_min=3, cursor_set_max=5)
    model: dict[str, int] = {}
    try:
        for block in range(1, 30):
            one, two = ws[:25], ws[block % 10:block % 10 + 25][::-1]
            store.set_cursors(one, block, None, "websocket")
            store.set_cursors(ws[block % 39:block % 39 + 1], block + 1, None, "polling")
            store.set_cursors(two + two[:4], block, None, "websocket")
            for w in one + two:
                model[w] = max(model.get(w, -1), block)
            w1 = ws[block % 39]
            model[w1] = max(model.get(w1, -1), block + 1)
            assert {w: c.block for w, c in store.cursors().items()} == model
            assert _index_of(store) == (store._set_of, store._set_size)
    finally:
        store.close()


class _FailInCommit:
    """Interrupts SQLite once, at the ``at``-th step of a COMMIT (which then may have
    committed: SQLite 3.4x does at the third)."""

    def __init__(self, db: sqlite3.Connection, at: int) -> None:
        self.armed = False
        self.fired = False
        self.left = at
        db.set_trace_callback(self.statement)
        db.set_progress_handler(self.step, 1)

    def statement(self, sql: str) -> None:
        self.armed = sql.strip().upper() == "COMMIT"

    def step(self) -> int:
        if self.armed and not self.fired:
            self.left -= 1
            self.fired = self.left == 0
            return int(self.fired)
        return 0


@pytest.mark.parametrize("at", [1, 2, 3, 4])
@pytest.mark.parametrize("write", ["sets", "start", "own", "blocks"])
def test_a_failed_commit_leaves_the_memory_of_the_sets_as_the_file(
        tmp_path: Path, write: str, at: int) -> None:
    """A COMMIT that reported an error: whether or not it committed, the in-memory index
    of the cursor sets (and of the blocks table) is what the file holds. Before, it was
    kept as before the write while the file had the write: a wallet counted twice, a
    set's row moved with a wallet that had left it."""
    a, b, c, d = WALLETS[:4]
    store = Store(tmp_path / "state.sqlite", cursor_set_min=2, cursor_set_max=3)
    try:
        store.set_cursors([a, b, c], 10, "0x10", "websocket", blocks={10: "0x10"})
        fault = _FailInCommit(store._db, at)
        try:
            if write == "sets":
                store.set_cursors([d, a], 11, "0x11", "websocket")
            elif write == "start":
                store.start_cursors([d, c], 5)
            elif write == "own":
                store.set_cursors([a], 12, None, "polling")
            else:
                store.save_blocks({10: "0xdd"})
        except StoreError:
            pass
        finally:
            store._db.set_progress_handler(None, 1)
            store._db.set_trace_callback(None)
        assert fault.fired or at > 3
        assert (store._set_of, store._set_size) == _index_of(store)
        assert store._blocks_held == dict(store._db.execute("SELECT number, hash FROM blocks"))
        model = _cursors(store)
        assert store.stats()["wallets_with_cursor"] == len(model)
        store.set_cursors([b, c], 20, "0x20", "websocket")  # the rest of a's set
        store.save_blocks({10: "0x10"})
        model.update({b: (20, "0x20", "websocket"), c: (20, "0x20", "websocket")})
        assert _cursors(store) == model
        assert store.blocks()[10] == "0x10"
        store.close()
        store = Store(tmp_path / "state.sqlite", cursor_set_min=2, cursor_set_max=3)
        assert _cursors(store) == model
    finally:
        store.close()
