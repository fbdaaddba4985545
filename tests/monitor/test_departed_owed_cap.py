"""A wallet removed from the list at a start long after the run before stopped (a monitor
down for a weekend, a state DB of an old run given a new list): the trades it was owed are
those mined while the run before ran - up to an hour (``OWED_SLACK_S``) past the highest
block that run had read - not those mined while no monitor ran. Before, the drain read
up to the head of the new start: a day of a wallet the user had removed went to the bot."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostile_node import HostileNode
from monitor_helpers import WALLET, order_filled
from test_departed_owed import GONE, _cursor, _tid
from test_reliability import TIMEOUT, first_sync, history_rows, run_monitor, trade_ids, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import OWED_SLACK_S, WalletMonitor

BLOCK_S = 2.0  # the tests' block_interval
SLACK = int(OWED_SLACK_S / BLOCK_S)


def test_trades_mined_long_after_the_run_before_stopped_are_not_owed(tmp_path: Path) -> None:
    got: list[str] = []
    late = 99 + SLACK + 50  # mined while no monitor ran

    async def go() -> None:
        async with HostileNode() as node:
            async def first(mon: WalletMonitor, _sink: MemorySink) -> None:
                await first_sync(node, mon)  # both cursors at 99
            await run_monitor(node, tmp_path, first, wallets=[WALLET, GONE])

        async with HostileNode() as node:  # a day later, GONE removed
            node.logs += [order_filled(wallet=GONE, block=150, tx=2),   # owed
                          order_filled(wallet=GONE, block=late, tx=3)]  # not
            node.head = 99 + 43_200

            async def second(mon: WalletMonitor, sink: MemorySink) -> None:
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await until(lambda: mon.owed is not None and not mon.owed.owed,
                            "owed drained", timeout=60)
                got.extend(trade_ids(sink))
            await run_monitor(node, tmp_path, second, wallets=[WALLET],
                              backfill_chunk_blocks=2_000)
    asyncio.run(go())
    assert got == [_tid(2)], got
    assert _cursor(tmp_path, GONE) is None
    capped = history_rows(tmp_path, "owed_capped")
    assert capped and capped[-1]["top"] == 99 + SLACK and capped[-1]["reached"] == 99
