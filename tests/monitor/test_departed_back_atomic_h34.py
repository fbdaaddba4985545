"""A wallet added back to the list while still owed is forgotten and started again at
this start's head in ONE store transaction. In two, a kill (or a failed write) between
them left it with no cursor and no mark: the next start took it for a wallet new to the
list, started it at its own head, and the rest of what it was owed was never read."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from hostile_node import HostileNode
from monitor_helpers import WALLET, order_filled
from test_departed_hostile import GONE, _first_run, _tid
from test_reliability import TIMEOUT, run_monitor, trade_ids, until

from monitor.departed import owed_group
from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor


def _mark(tmp: Path) -> None:
    """As a start that removed GONE at head 200 left it, its drain killed at once."""
    db = sqlite3.connect(tmp / "state.db")
    try:
        with db:
            db.execute("UPDATE cursors SET grp=? WHERE wallet=?", (owed_group(200), GONE))
    finally:
        db.close()


def _node() -> HostileNode:
    node = HostileNode()
    node.logs.append(order_filled(wallet=GONE, block=150, tx=4))  # owed (below 200)
    node.head = 220
    return node


def test_a_start_failing_as_it_restarts_a_wallet_added_back_leaves_it_owed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[str] = []

    async def go() -> None:
        await _first_run(tmp_path, 30.0)  # cursors at 99
        _mark(tmp_path)
        launch = Store._launch

        def failing(self: Store, rows: list[tuple[str, int]]) -> None:
            if any(w == GONE for w, _b in rows):
                raise sqlite3.OperationalError("disk I/O error")  # as a kill there
            launch(self, rows)
        monkeypatch.setattr(Store, "_launch", failing)

        async def never(_mon: WalletMonitor, _sink: MemorySink) -> None:
            raise AssertionError("started")
        async with _node() as node:
            with pytest.raises(Exception, match="disk I/O error"):
                await run_monitor(node, tmp_path, never, wallets=[WALLET, GONE],
                                  reconcile_interval=30.0, start_block=None)
        monkeypatch.setattr(Store, "_launch", launch)

        async with _node() as node:  # GONE still on the list
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await until(lambda: _tid(4) in trade_ids(sink), "the owed trade")
                await until(lambda: mon.owed is not None and not mon.owed.owed, "drained")
                got.extend(trade_ids(sink))
            await run_monitor(node, tmp_path, body, wallets=[WALLET, GONE],
                              reconcile_interval=30.0, start_block=None)
    asyncio.run(go())
    assert got.count(_tid(4)) == 1  # before: never (GONE started at head 220, no mark)


def test_forget_and_start_again_is_one_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", cursor_set_min=2, cursor_set_max=4)
    ws = [f"0x{i:040x}" for i in range(4)]
    try:
        store.start_cursors(ws, 10)
        store.set_cursors(ws, 50, None, "websocket")  # one set
        store.set_sweep_floors(ws[:2], 40)
        store.forget_wallets(ws[:3], start_at=90)
        assert {w: (c.block, c.group) for w, c in store.cursors().items()} == {
            **{w: (90, "launch") for w in ws[:3]}, ws[3]: (50, "websocket")}
        assert store.launches() == {**{w: 90 for w in ws[:3]}, ws[3]: 10}
        assert store.sweep_floors() == {}
        store.set_cursors(ws, 95, None, "websocket")  # the mirrors follow
        assert {c.block for c in store.cursors().values()} == {95}
    finally:
        store.close()
    again = Store(tmp_path / "s.db")
    try:
        assert {c.block for c in again.cursors().values()} == {95}
    finally:
        again.close()


