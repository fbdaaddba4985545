"""The pilot's start block, from a node whose head is 0 (a self-hosted bor or geth still
syncing from genesis answers ``eth_blockNumber`` 0x0; "0x" reads as 0 too)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor.config import load_settings
from monitor.errors import MonitorError
from monitor.pilot import Pilot, PilotStore
from tests.monitor.hostile_node import HostileNode

W = "0x" + "11" * 20


@pytest.mark.parametrize("head", ["0x0", "0x"])
def test_a_node_at_head_0_stores_no_start_block(head: str, tmp_path: Path) -> None:
    """A node at block 0 gave start block 1, stored for good: both paths watched the
    chain from genesis (some 80 million blocks of eth_getLogs, every old trade of the
    wallets a sighting). The start fails naming the node; no start block is stored, so
    the next start (once the node has synced) takes its head then."""
    async def main() -> None:
        async with HostileNode() as node:
            node.rpc["eth_blockNumber"] = lambda _p: head
            settings = load_settings({"websocket_url": node.ws_url, "rpc_url": node.rpc_url,
                                      "explorer_url": node.explorer_url, "wallets": [W],
                                      "block_interval": 2.0}, environ={})
            pilot = Pilot(settings, tmp_path / "store", beat_s=0.5)
            try:
                with pytest.raises(MonitorError) as err:
                    await asyncio.wait_for(pilot.start(), 30)
            finally:
                await asyncio.wait_for(pilot.stop(), 30)
            assert "--rpc-url http://127.0.0.1:" in err.value.message
            assert "head 0" in err.value.message and "syncing" in err.value.message
    asyncio.run(main())
    store = PilotStore(tmp_path / "store", readonly=True)
    try:
        assert "start_block" not in store.meta()
    finally:
        store.close()
