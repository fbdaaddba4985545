"""The node pings a WebSocket connection it has not written to for a while and closes one
that does not answer, as geth v1.17 does (rpc/websocket.go pingLoop: wsPingInterval and
wsPongTimeout, 30 s each; here ``ws_ping_interval_s`` made short). The simulator never
pinged: a client that had stopped reading (a stalled event loop) kept its connection for
ever, where geth drops it within a minute."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from aiohttp import WSMsgType

from simulator.server import Simulator
from simulator.settings import NodeSettings, SettingsError, SimSettings
from tests.simulator.node_fixtures import make_recording

TIMEOUT = 30.0
INTERVAL_S = 0.2
CALL = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})


def _settings(interval: float | None = INTERVAL_S) -> SimSettings:
    return SimSettings(node=NodeSettings(ws_ping_interval_s=interval))


def test_an_idle_connection_is_pinged_and_closed_when_it_does_not_answer() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6, settings=_settings()) as sim, \
                aiohttp.ClientSession() as http, \
                http.ws_connect(sim.urls["ws"], autoping=False) as ws:
            start = time.monotonic()
            msg = await ws.receive(timeout=TIMEOUT)
            pinged = time.monotonic() - start
            assert msg.type is WSMsgType.PING and msg.data == b""
            assert pinged >= INTERVAL_S * 0.8
            msg = await ws.receive(timeout=TIMEOUT)  # no pong: the close
            closed = time.monotonic() - start
            assert msg.type is WSMsgType.CLOSE and msg.data == 1000, msg
            assert closed >= 2 * INTERVAL_S * 0.8
            assert sim.status()["clients"] == 0

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_connection_that_answers_pings_stays() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6, settings=_settings()) as sim, \
                aiohttp.ClientSession() as http, \
                http.ws_connect(sim.urls["ws"], autoping=False) as ws:
            pings = 0
            deadline = time.monotonic() + 3 * INTERVAL_S
            while time.monotonic() < deadline:
                msg = await ws.receive(timeout=TIMEOUT)
                assert msg.type is WSMsgType.PING, msg
                pings += 1
                await ws.pong(msg.data)
            assert pings >= 2
            await ws.send_str(CALL)
            assert json.loads(await ws.receive_str(timeout=TIMEOUT))["result"] == "0x89"
            assert sim.status()["clients"] == 1

    asyncio.run(asyncio.wait_for(main(), 60))


def test_writes_put_the_ping_off() -> None:
    """geth's writeAndResetPing: a connection the node keeps writing to is not pinged."""
    interval = 0.5

    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6,
                             settings=_settings(interval)) as sim, \
                aiohttp.ClientSession() as http, \
                http.ws_connect(sim.urls["ws"], autoping=False) as ws:
            deadline = time.monotonic() + 2 * interval
            while time.monotonic() < deadline:  # answers, one after another
                await ws.send_str(CALL)
                msg = await ws.receive(timeout=TIMEOUT)
                assert msg.type is WSMsgType.TEXT, msg
            msg = await ws.receive(timeout=TIMEOUT)  # then idle: the ping
            assert msg.type is WSMsgType.PING, msg

    asyncio.run(asyncio.wait_for(main(), 60))


def test_the_ping_interval_can_be_turned_off_and_is_checked() -> None:
    async def main() -> None:
        async with Simulator(make_recording(2), speed=1e6, settings=_settings(None)) as sim, \
                aiohttp.ClientSession() as http, \
                http.ws_connect(sim.urls["ws"], autoping=False) as ws:
            with pytest.raises(TimeoutError):
                await ws.receive(timeout=3 * INTERVAL_S)

    asyncio.run(asyncio.wait_for(main(), 60))
    assert NodeSettings().ws_ping_interval_s == 30.0
    for bad in (0, -1.0, True, "30", float("inf")):
        with pytest.raises(SettingsError, match="ws_ping_interval_s"):
            NodeSettings(ws_ping_interval_s=bad)  # type: ignore[arg-type]
