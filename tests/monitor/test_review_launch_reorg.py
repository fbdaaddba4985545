"""A reorg just after the launch (71269f0: nothing at or below a wallet's launch point was
ever the bot's): the re-check fetches from the fork, and a reorg of the first blocks
watched, announced by heads whose parent is the launch block (a block the feed never
showed), must still not deliver the launch block's own trades.

The hostile node on loopback (real WebSocket and HTTP), real SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode, header
from monitor_helpers import order_filled
from test_reliability import TIMEOUT, cursor_at_least, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor

LAUNCH = 100  # the head when the monitor starts: its trades were made before the launch


def _other(n: int) -> str:
    """Block ``n``'s hash on the chain that replaced it."""
    return "0x" + "ee" * 31 + f"{n % 256:02x}"


@pytest.mark.parametrize("start_block", [None, LAUNCH + 1])
def test_a_reorg_of_the_first_blocks_watched_delivers_nothing_from_before_the_launch(
        tmp_path: Path, start_block: int | None) -> None:
    before = order_filled(block=LAUNCH, tx=1)  # mined before the launch
    after = order_filled(block=LAUNCH + 4, tx=2)
    delivered: list[int] = []

    async def go() -> None:
        async with HostileNode() as node:
            node.head = LAUNCH
            node.logs = [before, after]
            replaced = {LAUNCH + 1, LAUNCH + 2}
            reorged = False

            def get_block(params: list[Any]) -> Any:
                n = int(params[0], 16) if params[0] != "latest" else node.head
                if reorged and n in replaced:
                    return dict(header(n), hash=_other(n),
                                **({"parentHash": _other(n - 1)} if n - 1 in replaced
                                   else {}))
                return header(n)

            node.rpc["eth_getBlockByNumber"] = get_block

            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                nonlocal reorged
                await asyncio.wait_for(node.subscribed.wait(), TIMEOUT)
                await node.new_head(LAUNCH + 1)
                await node.new_head(LAUNCH + 2)
                reorged = True  # blocks 101 and 102 replaced, heads "each"
                await node.notify("newHeads", dict(header(LAUNCH + 1),
                                                   hash=_other(LAUNCH + 1)))
                await node.notify("newHeads", dict(header(LAUNCH + 2), hash=_other(LAUNCH + 2),
                                                   parentHash=_other(LAUNCH + 1)))
                for n in range(LAUNCH + 3, LAUNCH + 8):
                    await node.new_head(n)
                await until(lambda: cursor_at_least(mon, LAUNCH + 5)
                            and any(e.kind == "trade" and e.trade is not None
                                    and e.trade.block_number == LAUNCH + 4
                                    for e in sink.events), "the sync past the reorg")
                delivered.extend(e.trade.block_number for e in sink.events
                                 if e.kind == "trade" and e.trade is not None)

            await run_monitor(node, tmp_path, body, start_block=start_block, speed=1.0)

    asyncio.run(asyncio.wait_for(go(), 4 * TIMEOUT))
    assert delivered == [LAUNCH + 4], delivered
