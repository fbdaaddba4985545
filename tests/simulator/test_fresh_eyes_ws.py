"""Fresh-eyes review of the concurrent WebSocket calls (3a022a5): notifications held for
a call's new subscriptions."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.simulator.test_sim_fidelity2 import TIMEOUT, _first_block, _old_logs, _streamed_sim


def test_two_subscriptions_made_in_one_slow_batch_notify_in_block_order() -> None:
    """Issue: a batch ``[eth_subscribe newHeads, eth_subscribe newHeads, eth_getLogs of old
    blocks]`` held each new subscription's notifications in a list of its own and sent
    them list after list: every head of the first subscription, then every head of the
    second, so the second's block N came after the first's block N+k (the notifications
    of one connection no longer kept the chain's order). Now what was held goes out in
    the order it was made."""
    async def run() -> list[Any]:
        sim = _streamed_sim(speed=200.0)  # a block every 10 ms
        await sim.start()
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
                base = await _first_block(sim)
                req = _old_logs(3)
                req["params"][0].update(fromBlock=hex(base), toBlock=hex(base + 300))
                published = sim.chain.published
                sub = {"jsonrpc": "2.0", "method": "eth_subscribe", "params": ["newHeads"]}
                await ws.send_str(json.dumps([{**sub, "id": 1}, {**sub, "id": 2}, req]))
                frames = [json.loads((await ws.receive(timeout=TIMEOUT)).data)]
                assert sim.chain.published > published + 2, "no blocks during the batch"
                for _ in range(6):
                    frames.append(json.loads((await ws.receive(timeout=TIMEOUT)).data))
        finally:
            await sim.stop()
        return frames

    frames = asyncio.run(run())
    assert isinstance(frames[0], list), frames[0]
    ids = {frames[0][0]["result"], frames[0][1]["result"]}
    assert {f["params"]["subscription"] for f in frames[1:]} == ids
    heads = [int(f["params"]["result"]["number"], 16) for f in frames[1:]]
    assert heads == sorted(heads), heads  # each block's heads before the next block's
    assert heads[0] == heads[1] and heads[1] < heads[2], heads
