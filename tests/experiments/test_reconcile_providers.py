"""Reconcile's truth against the simulator as the provider, with each real provider's
eth_getLogs limits and error texts (simulator.providers): the truth is the same set of
trades whatever the provider refuses on the way."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest

from experiments.reconcile import _rpc, chain_truth
from polyvocab import ORDER_FILLED_TOPICS, trade_id
from simulator.server import Simulator
from simulator.settings import NodeSettings, SimSettings
from simulator.synth import synthesise

BLOCKS = 12


def _wallets_and_trades(rec: Any, n: int) -> tuple[list[str], set[str]]:
    by_wallet: dict[str, set[str]] = {}
    for b in rec.blocks:
        for lg in b.logs:
            t = lg.get("topics") or []
            if len(t) >= 3 and t[0] in ORDER_FILLED_TOPICS:
                by_wallet.setdefault("0x" + t[2][-40:], set()).add(
                    trade_id(lg["transactionHash"], int(lg["logIndex"], 16)))
    wallets = sorted(by_wallet, key=lambda w: -len(by_wallet[w]))[:n]
    return wallets, set().union(*(by_wallet[w] for w in wallets))


@pytest.mark.parametrize("profile", ["geth", "alchemy", "infura", "quicknode"])
def test_the_truth_is_whole_under_each_providers_limits(profile: str) -> None:
    rec = synthesise("busy", seed=3, blocks=BLOCKS)
    wallets, want = _wallets_and_trades(rec, 5)
    first, last = rec.blocks[0].number, rec.blocks[-1].number
    node = NodeSettings(profile=profile, logs_max_results=100,
                        **({} if profile == "geth" else {"logs_max_range": 3}))

    async def go() -> set[str]:
        async with Simulator(rec, settings=SimSettings(node=node), speed=50.0,
                             autostart=False) as sim:
            sim.begin()
            await sim.wait_published(BLOCKS, timeout=60)
            async with aiohttp.ClientSession() as session:
                rpc = _rpc(sim.urls["http"], session, rate_per_s=1000.0)
                rpc._retry_policy = lambda: itertools.repeat(0.01)  # fast retries
                truth, _ = await chain_truth(rpc, wallets, first, last, chunk_blocks=1000,
                                             offset_s=0.0)
        return set(truth["trade_id"])

    got = asyncio.run(go())
    assert len(want) > 100 and got == want
