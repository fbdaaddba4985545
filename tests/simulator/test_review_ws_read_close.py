"""A WebSocket message geth's reader stops at (not JSON): the calls of the connection still
running are answered before the close, as geth's handler.close waits for them (rpc/handler.go
``close``: ``callWG.Wait()`` before rpc/client.go ``clientConn.close`` closes the codec)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from simulator.server import Simulator
from simulator.settings import SimSettings
from tests.simulator.test_hostile_clients import _old_chain, call

TIMEOUT = 30.0


def test_a_call_still_running_is_answered_before_the_close_at_a_message_not_json() -> None:
    """eth_getLogs over blocks that left the window (rebuilt, ~2 ms each: it runs as a
    task of its own), then a message that is not JSON: the -32700, the whole eth_getLogs
    answer, then the close 1000. The running call was cancelled: no answer at all."""

    async def main() -> None:
        source = _old_chain(300, 40, cost_s=0.0)
        settings = SimSettings(history_blocks=300, window_blocks=16)
        async with Simulator(source, settings=settings, speed=8, autostart=False) as sim, \
                aiohttp.ClientSession() as http, http.ws_connect(sim.urls["ws"]) as ws:
            await ws.send_str(json.dumps(call("eth_subscribe", "newHeads")))
            await asyncio.wait_for(ws.receive(), TIMEOUT)
            sim.begin()
            await asyncio.wait_for(ws.receive(), TIMEOUT)  # the replay runs
            source.cost_s = 0.002
            await ws.send_str(json.dumps(call(
                "eth_getLogs", {"fromBlock": "earliest", "toBlock": hex(1000 + 299)},
                req_id=7)))
            await ws.send_str("hello")
            answers: dict[Any, Any] = {}
            while True:
                msg = await ws.receive(timeout=TIMEOUT)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                reply = json.loads(msg.data)
                if "id" in reply:
                    answers[reply["id"]] = reply
            assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1000, msg
            assert answers[None]["error"]["code"] == -32700
            assert 7 in answers, "the running eth_getLogs was never answered"
            assert len(answers[7]["result"]) == 300 * 4

    asyncio.run(asyncio.wait_for(main(), 120))
