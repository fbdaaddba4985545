"""Simulator fidelity against REFERENCE.md and geth where it is silent (geth v1.17, the
newest release): notifications held for a call not answered yet are bounded in bytes,
the error codes and texts of a filter's bounds, the block tag "earliest" in a filter.
Each test failed before its fix."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from simulator.server import Simulator, WsConn
from simulator.settings import NodeSettings, SimSettings
from simulator.source import SynthSource
from tests.simulator.test_sim_fidelity2 import TIMEOUT, _first_block, _old_logs


def _held_chars(conn: WsConn) -> int:
    """Characters of the notifications held for the connection's unanswered calls."""
    lists = {id(sub.held): sub for sub in conn.subs.values() if sub.held}
    return sum(len(sub.prefix) + len(payload) + 2
               for sub in lists.values() for _, payload in (sub.held or ()))


def test_notifications_held_for_an_unanswered_call_are_bounded_in_bytes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue: while a batch ``[eth_subscribe logs, eth_getLogs of old blocks]`` was being
    answered (old blocks rebuilt, up to a minute), the new subscription's notifications
    were held with a cap of 10,000 messages and no byte cap: ~800 KB in 0.6 s here, a
    busy block's logs at a time. Now they count with the queued ones against
    ``notify_buffer_bytes``, and past it the connection is dropped (as geth drops a
    subscriber that falls too far behind) while the call is still running."""
    cap = 64 << 10
    dropped_while_held: list[bool] = []
    abort = WsConn.abort

    def noting_abort(conn: WsConn) -> None:
        dropped_while_held.append(any(sub.held is not None for sub in conn.subs.values()))
        abort(conn)

    monkeypatch.setattr(WsConn, "abort", noting_abort)

    async def main() -> tuple[int, int, list[Any]]:
        sim = Simulator(SynthSource("default", seed=3, blocks=5000, checkpoint_every=16),
                        settings=SimSettings(history_blocks=400, window_blocks=8,
                                             node=NodeSettings(profile="geth",
                                                               notify_buffer_bytes=cap)),
                        speed=200.0)  # a block every 10 ms
        await sim.start()
        most = 0
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
                base = await _first_block(sim)
                (conn,) = sim.conns.values()
                req = _old_logs(2)
                req["params"][0].update(fromBlock=hex(base), toBlock=hex(base + 390))
                sub = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                       "params": ["logs", {}]}
                published = sim.chain.published
                done = asyncio.Event()

                async def sample() -> None:
                    nonlocal most
                    while not done.is_set():
                        most = max(most, _held_chars(conn))
                        await asyncio.sleep(0)

                sampler = asyncio.create_task(sample())
                await ws.send_str(json.dumps([sub, req]))
                kinds = []
                while True:  # a slow reader: it reads only once the batch is over
                    msg = await ws.receive(timeout=TIMEOUT)
                    kinds.append(msg.type)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                done.set()
                await sampler
                blocks = sim.chain.published - published
        finally:
            await sim.stop()
        return most, blocks, kinds

    most, blocks, kinds = asyncio.run(main())
    assert blocks >= 2, blocks
    assert dropped_while_held == [True], dropped_while_held
    assert most <= cap, most
    assert kinds[-1] in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE,
                         aiohttp.WSMsgType.ERROR), kinds
