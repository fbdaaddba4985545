"""The pilot's start block from a node that is still syncing: its ``eth_blockNumber`` is
a block of the chain's past (a self-hosted bor, geth or erigon catching up), which its
``eth_syncing`` says (``currentBlock`` far below ``highestBlock``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from monitor.config import load_settings
from monitor.errors import MonitorError
from monitor.node_sync import SYNC_SLACK_BLOCKS
from monitor.pilot import Pilot, PilotStore
from tests.monitor.hostile_node import HostileNode, RpcErr

W = "0x" + "11" * 20
CHAIN = 80_000_000


def _syncing(current: int, highest: int) -> dict[str, str]:
    return {"startingBlock": "0x0", "currentBlock": hex(current),
            "highestBlock": hex(highest)}


async def _start(tmp_path: Path, syncing: Any, head: int) -> str | None:
    """The pilot's start against a node at ``head`` answering eth_syncing ``syncing``:
    the error's message, or None when it started."""
    async with HostileNode() as node:
        node.head = head
        node.rpc["eth_syncing"] = lambda _p: syncing
        settings = load_settings({"websocket_url": node.ws_url, "rpc_url": node.rpc_url,
                                  "explorer_url": node.explorer_url, "wallets": [W],
                                  "block_interval": 2.0}, environ={})
        pilot = Pilot(settings, tmp_path / "store", beat_s=0.5)
        try:
            await asyncio.wait_for(pilot.start(), 30)
        except MonitorError as exc:
            return exc.message
        finally:
            await asyncio.wait_for(pilot.stop(), 30)
    return None


def _start_block(tmp_path: Path) -> Any:
    store = PilotStore(tmp_path / "store", readonly=True)
    try:
        return store.meta().get("start_block")
    finally:
        store.close()


def test_a_syncing_node_gives_no_start_block(tmp_path: Path) -> None:
    """A node at block 30,000,000 of 80,000,000 gave start block 30,000,001, stored for
    good: both paths watched 50 million blocks of the past (days of eth_getLogs, every
    old trade of the wallets a sighting). The start fails naming the node and what it
    said; no start block is stored, so the next start (once synced) takes its head."""
    message = asyncio.run(_start(tmp_path, _syncing(30_000_000, CHAIN), 30_000_000))
    assert message is not None, "the pilot started from a syncing node's head"
    assert message.startswith("--rpc-url http://127.0.0.1:")
    assert "syncing" in message and "30000000 of 80000000" in message
    assert _start_block(tmp_path) is None


@pytest.mark.parametrize("syncing", [
    False,  # synced
    _syncing(CHAIN - SYNC_SLACK_BLOCKS, CHAIN),  # a restarted node a few blocks behind
    RpcErr(-32601, "the method eth_syncing does not exist/is not available"),
    {"currentBlock": "garbage"},
])
def test_a_node_synced_or_that_cannot_say_starts(syncing: Any, tmp_path: Path) -> None:
    assert asyncio.run(_start(tmp_path, syncing, CHAIN)) is None
    assert _start_block(tmp_path) == CHAIN + 1
