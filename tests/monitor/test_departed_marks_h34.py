"""The owed drain's mark (a removed wallet's cursor group ``owed:<top>``,
monitor.departed.owed_group) read back from a state DB that is damaged or edited by hand.

A mark whose top is no block number says the wallet was removed at some start, but not up
to where it is owed: the start refuses the file with a clear error (as it does a cursor
that is no block number) rather than guess. Before: ``owed:²`` was a ValueError traceback
out of the start (``"²".isdigit()`` is True, ``int("²")`` fails), and ``owed:abc`` on a
wallet back on the list was taken for no mark - the wallet resumed at its old cursor and
its trades of the time it was off the list went to the bot."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from hostile_node import HostileNode
from monitor_helpers import WALLET, order_filled
from test_departed_hostile import GONE, _first_run
from test_reliability import run_monitor

from monitor.departed import owed_top
from monitor.errors import StoreError
from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


@pytest.mark.parametrize("group", ["owed:²", "owed:١٢", "owed:abc", "owed:-1", "owed:1e400",
                                   "owed:" + "9" * 10_000, "owed:", "owed: 5"])
def test_a_mark_whose_top_is_no_block_number_reads_as_none(group: str) -> None:
    assert owed_top(group) is None


def test_a_mark_reads_its_top() -> None:
    assert owed_top("owed:110") == 110
    assert owed_top("websocket") is None


def _mark(tmp: Path, wallet: str, group: str) -> None:
    db = sqlite3.connect(tmp / "state.db")
    try:
        with db:
            n = db.execute("UPDATE cursors SET grp=? WHERE wallet=?", (group, wallet)).rowcount
            n += db.execute("UPDATE cursor_sets SET grp=? WHERE id IN (SELECT set_id FROM "
                            "cursor_members WHERE wallet=?)", (group, wallet)).rowcount
        assert n == 1
    finally:
        db.close()


@pytest.mark.parametrize(("group", "back"), [("owed:²", False), ("owed:abc", True),
                                             ("owed:²", True)])
def test_a_damaged_mark_is_refused_with_a_clear_error(tmp_path: Path, group: str,
                                                      back: bool) -> None:
    got: list[str] = []

    async def go() -> None:
        await _first_run(tmp_path, 30.0)  # GONE's cursor at 99
        _mark(tmp_path, GONE, group)
        async with HostileNode() as node:
            node.logs.append(order_filled(wallet=GONE, block=112, tx=4))
            node.head = 120

            async def body(_mon: WalletMonitor, sink: MemorySink) -> None:
                got.extend(e.trade_id for e in sink.events)
            await run_monitor(node, tmp_path, body,
                              wallets=[WALLET, GONE] if back else [WALLET],
                              reconcile_interval=30.0, start_block=None)
    with pytest.raises(StoreError, match=r"is damaged .*cursor group 'owed:"):
        asyncio.run(go())
    assert got == []
