"""A first start against a node still syncing (a self-hosted bor, geth or erigon catching
up: its ``eth_blockNumber`` a block of the chain's past). The launch point was taken from
that head and stored for good: the monitor watched from there, and every trade since went
to the bot as new (the pilot had the same defect, found by H32). The start now fails with
a clear error and stores nothing; a node a few blocks behind, synced, or one that cannot
say starts as before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hostile_node import HostileNode
from test_reliability import settings

from monitor.errors import MonitorError
from monitor.node_sync import SYNC_SLACK_BLOCKS
from monitor.sinks import MemorySink
from monitor.store import Store
from monitor.wallet_monitor import WalletMonitor

CHAIN = 80_000_000


def _syncing(current: int, highest: int) -> dict[str, str]:
    return {"startingBlock": "0x0", "currentBlock": hex(current), "highestBlock": hex(highest)}


def _start(tmp: Path, syncing: Any) -> tuple[str | None, int | None]:
    async def go() -> str | None:
        async with HostileNode() as node:
            node.head = 30_000_000
            if syncing is not None:
                node.rpc["eth_syncing"] = lambda _p: syncing
            mon = WalletMonitor(settings(node, tmp, start_block=None), sink=MemorySink())
            try:
                await mon.start()
            except MonitorError as exc:
                return exc.message
            await mon.stop()
            return None
    error = asyncio.run(go())
    store = Store(tmp / "state.db")
    try:
        cursors = store.cursors()
    finally:
        store.close()
    return error, next((c.block for c in cursors.values()), None)


def test_a_syncing_node_gives_no_launch_point(tmp_path: Path) -> None:
    error, cursor = _start(tmp_path, _syncing(30_000_000, CHAIN))
    assert error is not None and "syncing (at block 30000000 of 80000000)" in error
    assert "start_block" in error and "127.0.0.1" not in error
    assert cursor is None  # nothing stored: the next start asks again


@pytest.mark.parametrize("syncing", [False, None, _syncing(CHAIN - SYNC_SLACK_BLOCKS, CHAIN),
                                     "garbage"],
                         ids=["synced", "no_method", "a_few_behind", "garbage"])
def test_a_node_synced_or_that_cannot_say_starts_as_before(tmp_path: Path,
                                                           syncing: Any) -> None:
    error, cursor = _start(tmp_path, syncing)
    assert error is None and cursor == 30_000_000
