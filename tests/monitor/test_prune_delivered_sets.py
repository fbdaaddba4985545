"""``Store.prune_delivered`` with cursor sets. It went through the ``wallet_cursors`` view,
and SQLite walked every cursor member for the bound and for the join: ~40-80 ms a call on
the event loop at 100,000 wallets in sets (``benchmarks/test_wallets_bench.py``). Now each
candidate row's wallet is looked up by key. The rows pruned are those of the rule: a dedup
row more than ``retention`` blocks below its own wallet's cursor (rows of a wallet without
a cursor kept), whether the wallet's cursor is its own row or its set's."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.store import _PRUNE_DELIVERED, Store

RETENTION = 10


def _wallet(i: int) -> str:
    return f"0x{i:040x}"


def _delivered(store: Store, rows: list[tuple[str, str | None, int]]) -> None:
    with store._tx():
        store._db.executemany(
            "INSERT INTO delivered(trade_id, wallet, block_number, block_hash, retracted, "
            "deliveries, retractions) VALUES (?,?,?,'0xh',0,1,0)", rows)


def _left(store: Store) -> set[str]:
    return {t for (t,) in store._db.execute("SELECT trade_id FROM delivered")}


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), in_sets=st.integers(0, 600),
       own=st.integers(0, 40))
def test_the_rows_pruned_are_the_rules(tmp_path_factory, seed: int, in_sets: int,
                                       own: int) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    store = Store(tmp_path_factory.mktemp("p") / "s.db")
    store.cursor_set_min = 16  # small sets, several of them, beside wallets' own rows
    store.cursor_set_max = 64
    cursor: dict[str, int] = {}
    wallets = [_wallet(i) for i in range(1, in_sets + 1)]
    for i in range(0, len(wallets), 128):  # slices moved together: sets
        part, block = wallets[i:i + 128], rng.randrange(50, 200)
        store.set_cursors(part, block, None, "websocket", forward_only=False)
        cursor.update(dict.fromkeys(part, block))
    for j in range(own):  # each its own row (fewer than cursor_set_min at once)
        w, block = _wallet(10_000 + j), rng.randrange(50, 200)
        store.set_cursors([w], block, None, "websocket", forward_only=False)
        cursor[w] = block
    assert bool(store._set_of) == (in_sets >= store.cursor_set_min)  # sets when enough
    known = list(cursor) + [_wallet(20_000 + k) for k in range(5)] + [None]  # no cursor
    rows = [(f"t{n}", rng.choice(known), rng.randrange(0, 220)) for n in range(400)]
    _delivered(store, rows)
    pruned = store.prune_delivered(RETENTION, limit=10_000)
    want = {t for t, w, n in rows if not (w in cursor and n < cursor[w] - RETENTION)}
    assert _left(store) == want
    assert pruned == len(rows) - len(want)
    store.close()


def test_the_prune_looks_wallets_up_not_every_cursor_member(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    store.set_cursors([_wallet(i) for i in range(1, 5_001)], 500, None, "websocket")
    plan = " | ".join(r[3] for r in store._db.execute(
        "EXPLAIN QUERY PLAN " + _PRUNE_DELIVERED, (RETENTION, RETENTION, 1 << 62, 1_000)))
    assert "cursor_members" in plan  # looked up ...
    assert "SCAN m" not in plan and "SCAN cursor_members" not in plan, plan  # ... not walked
    store.close()
