"""Fidelity hunt: the mock node and explorer answer as the real systems do, as a client
(or the monitor) meets them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from simulator.server import Simulator
from simulator.settings import LagSettings, SimSettings
from tests.simulator.node_fixtures import WALLETS, make_recording

TIMEOUT = 30.0
KEY = "ABCDEFGHIJ"


def run(main: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), TIMEOUT * 2))


async def _explorer(h: aiohttp.ClientSession, sim: Simulator, **params: str) -> Any:
    query = {"chainid": "137", "apikey": KEY, **params}
    async with h.get(sim.urls["explorer"], params=query) as resp:
        assert resp.status == 200
        return await resp.json()


def test_explorer_proxy_block_number_is_the_nodes_head_not_the_indexs() -> None:
    """Etherscan's ``module=proxy`` forwards to a node (its Geth proxy): its
    ``eth_blockNumber`` is the chain's head while getLogs answers from the index, which
    has the last blocks only some seconds later. A poller reading the head must query its
    last blocks again (the monitor's overlap). The mock answered the index's head, so a
    poller without enough overlap lost nothing here and would lose trades for real."""
    rec = make_recording(5)
    # an index an hour behind (simulated; 36 s of wall time at speed 100): nothing indexed
    lag = LagSettings(median_s=3600, p95_s=3600.001, min_s=3600, max_s=3600)
    async def main() -> None:
        async with Simulator(rec, settings=SimSettings(lag=lag), speed=100) as sim, \
                aiohttp.ClientSession() as h:
            await sim.wait_published(5)
            head = await _explorer(h, sim, module="proxy", action="eth_blockNumber")
            assert head == {"jsonrpc": "2.0", "id": 83, "result": hex(rec.blocks[-1].number)}
            # ... while the index has none of those blocks yet
            rows = await _explorer(h, sim, module="logs", action="getLogs",
                                   fromBlock=str(rec.blocks[0].number),
                                   toBlock=str(rec.blocks[-1].number),
                                   topic2="0x" + "0" * 24 + WALLETS[1][2:])
            assert rows == {"status": "0", "message": "No records found", "result": []}
    run(main)
