"""``Store.prune_delivered(keep_from=...)``: the dedup rows of blocks a sweep is still to
read are kept whatever the cursors say. With ``reconcile_interval = 0`` the heads move the
cursors over blocks no ``eth_getLogs`` fetched yet; a sweep that reads them later needs
the ids of the trades the feed delivered there, or it sends them to the bot again."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_prune_delivered_sets import RETENTION, _delivered, _left, _wallet

from monitor.store import Store


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), keep_from=st.one_of(st.none(), st.integers(-5, 260)))
def test_rows_at_or_above_the_hold_are_kept(tmp_path_factory, seed: int,
                                            keep_from: int | None) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    store = Store(tmp_path_factory.mktemp("h") / "s.db")
    cursor = {_wallet(i): rng.randrange(50, 250) for i in range(1, 9)}
    for w, block in cursor.items():
        store.set_cursors([w], block, None, "websocket", forward_only=False)
    known = [*cursor, _wallet(99), None]
    rows = [(f"t{n}", rng.choice(known), rng.randrange(0, 260)) for n in range(300)]
    _delivered(store, rows)
    pruned = store.prune_delivered(RETENTION, limit=10_000, keep_from=keep_from)
    hold = float("inf") if keep_from is None else keep_from
    want = {t for t, w, n in rows
            if not (w in cursor and n < cursor[w] - RETENTION and n < hold)}
    assert _left(store) == want
    assert pruned == len(rows) - len(want)
    store.close()


def test_a_held_row_goes_once_the_hold_is_lifted(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    w = _wallet(1)
    store.set_cursors([w], 1_000, None, "websocket", forward_only=False)
    _delivered(store, [("low", w, 100), ("held", w, 500), ("kept", w, 995)])
    assert store.prune_delivered(RETENTION, keep_from=400) == 1
    assert _left(store) == {"held", "kept"}
    assert store.prune_delivered(RETENTION) == 1
    assert _left(store) == {"kept"}
    store.close()
