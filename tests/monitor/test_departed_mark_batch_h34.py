"""The owed drain's mark (``owed:<top>`` in the removed wallets' cursor group) is written
in ONE store transaction for all removed wallets, whatever their cursors.

Before, a transaction per distinct (cursor block, hash): removed polled wallets each
keep a cursor of their own, and 100,000 of them made ~100 s of a start. The store's
``set_cursors_each`` writes several cursors in one transaction with the outcome of a
``set_cursors`` per part (checked against it by hypothesis, through the cursor sets)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode
from hypothesis import given, settings
from hypothesis import strategies as st
from monitor_helpers import WALLET, order_filled
from test_reliability import TIMEOUT, run_monitor, trade_ids, until

from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor

W = [f"0x{i:040x}" for i in range(12)]
GONE = [f"0x{0xab00 + i:040x}" for i in range(300)]  # removed, each its own cursor


def _state(store: Store) -> dict[str, tuple[int, str | None, str]]:
    return {w: (c.block, c.hash, c.group) for w, c in store.cursors().items()}


_PART = st.tuples(st.lists(st.sampled_from(W), min_size=1, max_size=8, unique=True),
                  st.integers(0, 1_000), st.sampled_from([None, "0x" + "aa" * 32]))


@settings(max_examples=40, deadline=None)
@given(before=st.lists(_PART, max_size=4), parts=st.lists(_PART, max_size=4),
       forward=st.booleans())
def test_several_cursors_in_one_transaction_are_as_one_call_each(
        tmp_path_factory: Any, before: list[tuple[list[str], int, str | None]],
        parts: list[tuple[list[str], int, str | None]], forward: bool) -> None:
    seen: set[str] = set()  # the parts share no wallet
    parts = [(ws, b, h) for ws, b, h in ((list(dict.fromkeys(w for w in ws if w not in seen)),
                                          b, h) for ws, b, h in parts)
             if ws and not seen.update(ws)]
    tmp = Path(tmp_path_factory.mktemp("s"))
    one = Store(tmp / "one.db", cursor_set_min=3, cursor_set_max=4)
    each = Store(tmp / "each.db", cursor_set_min=3, cursor_set_max=4)
    try:
        for store in (one, each):
            store.start_cursors(W[:6], 10)
            for ws, b, h in before:
                store.set_cursors(ws, b, h, "g", forward_only=False)
        for ws, b, h in parts:
            one.set_cursors(ws, b, h, "owed:7", forward_only=forward)
        each.set_cursors_each(parts, "owed:7", forward_only=forward)
        assert _state(each) == _state(one)
        for w in W:  # each read alone too (the set mirrors)
            assert each.cursor(w) == one.cursor(w)
        each.set_cursors(W[:5], 2_000, None, "g")  # later writes on what it left
        one.set_cursors(W[:5], 2_000, None, "g")
        assert _state(each) == _state(one)
    finally:
        one.close()
        each.close()
    again = [Store(tmp / f"{n}.db", cursor_set_min=3, cursor_set_max=4)
             for n in ("one", "each")]
    try:  # as committed
        assert _state(again[1]) == _state(again[0])
    finally:
        for store in again:
            store.close()


@contextlib.contextmanager
def _transactions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the store transactions begun while ``_owed_wallets`` runs."""
    counted: list[int] = [0]
    active = [False]
    tx, owed = Store._tx, WalletMonitor._owed_wallets

    def counting_tx(self: Store) -> Any:
        counted[0] += active[0]
        return tx(self)

    async def owed_wallets(self: WalletMonitor) -> Any:
        active[0] = True
        try:
            return await owed(self)
        finally:
            active[0] = False
    monkeypatch.setattr(Store, "_tx", counting_tx)
    monkeypatch.setattr(WalletMonitor, "_owed_wallets", owed_wallets)
    yield counted


def test_removed_wallets_with_distinct_cursors_are_marked_in_one_transaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "state.db")
    store.start_cursors([WALLET, *GONE], 90)
    for i, w in enumerate(GONE):  # polled wallets: a cursor each
        store.set_cursors([w], 91 + i % 150, None, "polling")
    store.close()
    got: list[str] = []

    async def go() -> None:
        async with HostileNode() as node:
            node.logs.append(order_filled(wallet=GONE[7], block=103, tx=2))  # owed
            node.head = 250

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await until(lambda: mon.owed is not None and not mon.owed.owed, "drained",
                            timeout=60)
                got.extend(trade_ids(sink))
            with _transactions(monkeypatch) as counted:  # (the drain's own come after)
                await run_monitor(node, tmp_path, body, wallets=[WALLET],
                                  reconcile_interval=30.0, start_block=None)
            assert counted[0] == 1, counted  # before: 150 (one per distinct cursor)
    asyncio.run(go())
    assert got == ["0x" + f"{2:064x}" + ":0"]
