"""``Store.forget_wallets``: a departed wallet's cursor (its own row or its place in a
cursor set), launch point and sweep floor go in one transaction; the other wallets of its
set keep theirs, on disk and after a reopen."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.store import Store

W = [f"0x{i:040x}" for i in range(12)]


def _state(store: Store) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    return ({w: c.block for w, c in store.cursors().items()}, store.launches(),
            store.sweep_floors())


@settings(max_examples=40, deadline=None)
@given(sets=st.lists(st.tuples(st.lists(st.sampled_from(W), min_size=1, max_size=8, unique=True),
                               st.integers(0, 1_000)), min_size=1, max_size=4),
       gone=st.lists(st.sampled_from(W), max_size=6, unique=True))
def test_forgotten_wallets_leave_no_trace_and_the_others_keep_theirs(
        tmp_path_factory: object, sets: list[tuple[list[str], int]], gone: list[str]) -> None:
    path = Path(tmp_path_factory.mktemp("s")) / "state.db"  # type: ignore[attr-defined]
    store = Store(path, cursor_set_min=3, cursor_set_max=4)
    store.start_cursors(W[:6], 10)
    for ws, block in sets:
        store.set_cursors(ws, block, None, "g", forward_only=False)
    store.set_sweep_floors(W[::2], 5)
    cursors, launches, floors = _state(store)
    store.forget_wallets(gone)
    want = tuple({w: v for w, v in d.items() if w not in gone}
                 for d in (cursors, launches, floors))
    assert _state(store) == want
    for w in W:  # each one read alone too (the set mirrors)
        c = store.cursor(w)
        assert (None if c is None else c.block) == want[0].get(w)
    store.set_cursors(W[:3], 2_000, None, "g")  # a write after it works on what is left
    store.close()
    again = Store(path, cursor_set_min=3, cursor_set_max=4)
    try:
        expect = dict(want[0], **{w: max(2_000, want[0].get(w, 0)) for w in W[:3]})
        assert _state(again) == (expect, want[1], want[2])
    finally:
        again.close()
