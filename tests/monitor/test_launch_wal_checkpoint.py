"""A launch point of many wallets writes as many cursor rows at start. Their WAL was left
for the first live batch's commit to copy back (past ``CHECKPOINT_HARD_ROWS`` it runs the
checkpoint itself): at 100,000 wallets the first block's trades waited 100-235 ms behind it
(``benchmarks/test_wallets_bench.py``). Start-up now checkpoints what it wrote before the
feed runs."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from hostile_node import HostileNode
from test_reliability import settings

from monitor.sinks import MemorySink
from monitor.store import CHECKPOINT_ROWS
from monitor.wallet_monitor import WalletMonitor

TIMEOUT = 30.0


def test_the_launch_points_rows_are_checkpointed_before_the_feed_runs(tmp_path: Path) -> None:
    rng = random.Random(5)
    wallets = ["0x" + rng.getrandbits(160).to_bytes(20, "big").hex()
               for _ in range(CHECKPOINT_ROWS + 500)]

    async def go() -> tuple[int, bool, int | None]:
        async with HostileNode() as node:
            node.head = 100
            mon = WalletMonitor(settings(node, tmp_path, wallets=wallets, start_block=None),
                                sink=MemorySink())
            await mon.start()
            try:
                assert mon.pipeline is not None and mon.store is not None
                done = mon.pipeline.counters["wal_checkpoints"]
                due = mon.store.checkpoint_if_due()  # nothing left for a live commit
                cursor = mon.store.cursor(wallets[-1])
                return done, due, None if cursor is None else cursor.block
            finally:
                await mon.stop()

    done, due, cursor = asyncio.run(asyncio.wait_for(go(), 4 * TIMEOUT))
    assert cursor == 100  # the launch point was written ...
    assert done == 1  # ... and copied back at start (before: 0)
    assert due is False  # (before: True, left for the first batch's commit)
