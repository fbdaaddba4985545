"""The monitor's JSON-RPC HTTP client holds a call for a server's asked wait (a 429's
``Retry-After``, Infura's ``backoff_seconds``) at most 60 simulated seconds, as every
interval of the monitor is scaled by ``speed``. It was 60 clock seconds whatever the
speed: at speed 100 a rate limit asking 30 s held one backfill call 30 clock seconds,
3,000 simulated ones. The client as the monitor builds it, against an aiohttp node on
loopback that rate-limits the first call."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from monitor.clock import SystemClock
from monitor.history import NullHistory
from monitor.wallet_monitor import _Rpc

LIMITED = json.dumps({"jsonrpc": "2.0", "id": 1, "error": {
    "code": -32005, "message": "project ID request rate exceeded",
    "data": {"see": "https://infura.io/dashboard", "current_rps": 13.3,
             "allowed_rps": 10.0, "backoff_seconds": 30.0}}})


def test_an_asked_wait_holds_a_call_at_most_60_simulated_seconds(tmp_path: Path) -> None:
    asked: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        req = await request.json()
        asked.append(time.monotonic())
        if len(asked) == 1:
            return web.Response(status=429, text=LIMITED, content_type="application/json")
        return web.json_response({"jsonrpc": "2.0", "id": req["id"], "result": "0x10"})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        try:
            async with aiohttp.ClientSession() as session:
                rpc = _Rpc(url, session, history=NullHistory(), clock=SystemClock(),
                           timeout=5.0, speed=100.0, rate_per_s=1000.0)
                # 30 s asked; 60 simulated seconds at speed 100 are 0.6 clock seconds
                assert await asyncio.wait_for(rpc.call("eth_blockNumber", []), 10.0) == "0x10"
        finally:
            await runner.cleanup()
    asyncio.run(main())
    assert len(asked) == 2 and asked[1] - asked[0] < 5.0, asked
