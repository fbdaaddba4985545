"""Found by ``python -m experiments chaos`` (seed 111, 900 s, ``subscription_mode =
firehose``): an orphan kept on the word of another maker's fill."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hostile_node import HostileNode
from monitor_helpers import OTHER, order_filled
from test_reliability import (
    backfill_block_105,
    drop_and_resubscribe,
    history_rows,
    replace_block,
    run_monitor,
    until,
)

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor


def test_a_firehose_orphan_is_retracted_when_its_log_index_went_to_another_maker(
        tmp_path: Path) -> None:
    """Firehose mode: the trade of block 105 was delivered, then a reorg replaced block 105
    while the socket was down; the new chain has the same transaction, whose log index 0
    is now another maker's fill. The reconnect's re-check asked the node for every fill of
    the range (the firehose has no maker filter), found the trade id ``tx:0`` among them
    and kept the orphan: it stood at the bot for good (6 phantoms in the chaos run)."""
    live = order_filled(block=105, tx=9)
    other = order_filled(block=105, tx=9, wallet=OTHER, block_hash="0x" + "ee" * 32)

    async def go() -> None:
        async with HostileNode() as node:
            node.head = 100
            node.logs.append(live)

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await backfill_block_105(node, mon, sink)
                node.logs[:] = [other]  # block 105 replaced while the socket is down
                replace_block(node, 105)
                await drop_and_resubscribe(node)
                node.head = 111
                await node.new_head(111)
                await until(lambda: any(e.kind == "retraction" for e in sink.events),
                            "the orphan retracted", timeout=10.0)
            await run_monitor(node, tmp_path, body, subscription_mode="firehose")
    asyncio.run(go())
    retracted = history_rows(tmp_path, "retracted")
    assert [r["trade_id"] for r in retracted] == [f"{live['transactionHash']}:0"]
