"""The HTTP node's quota spent with a long wait named (Infura's daily count:
``backoff_seconds`` 3600): the backfill call is not held for it. The call fails at once,
the sync asks again every ``backoff_max`` with the gap kept (the cursor stays), live
delivery and a stop never wait for it, and the gap is fetched soon after the quota is
back. Before, the client waited 60 s a retry (3 retries) inside the one backfill call,
and as long again after the quota was back."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hostile_node import HostileNode, Raw
from monitor_helpers import order_filled
from test_reliability import cursor_at_least, first_sync, run_monitor, until

from monitor.sinks import MemorySink
from monitor.wallet_monitor import WalletMonitor
from polyvocab.errors import QuotaExhausted
from polyvocab.jsonrpc_http import JsonRpcHttpClient

DAILY = json.dumps({"jsonrpc": "2.0", "id": None, "error": {
    "code": -32005, "message": "daily request count exceeded, request rate limited",
    "data": {"rate": {"backoff_seconds": 3600}}}})


def test_a_quota_naming_a_wait_longer_than_a_call_may_wait_is_raised_at_once() -> None:
    """One request, raised within seconds: the wait it names (an hour) is no retry's."""
    seen: list[int] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(1)
        return web.Response(status=429, text=DAILY, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        try:
            async with aiohttp.ClientSession() as session:
                client = JsonRpcHttpClient(url, session, max_retries=3,
                                           retry_policy=lambda: iter([0.01] * 10))
                with pytest.raises(QuotaExhausted) as got:
                    await asyncio.wait_for(client.call("eth_getLogs", [{}]), 5.0)
                assert got.value.retry_after == 3600.0 and len(seen) == 1
        finally:
            await runner.cleanup()
    asyncio.run(main())


def test_a_backfill_refused_for_a_long_quota_is_asked_again_at_the_backoff_pace(
        tmp_path: Path) -> None:
    # speed 20, backoff_max 1 s (simulated): the sync asks again every 0.05 s (real)
    asked: list[float] = []

    def spent(_params: list[Any]) -> Any:
        asked.append(time.monotonic())
        return Raw((429, DAILY))

    async def go() -> None:
        async with HostileNode() as node:
            async def body(mon: WalletMonitor, sink: MemorySink) -> None:
                await first_sync(node, mon)
                node.rpc["eth_getLogs"] = spent
                node.logs.append(order_filled(block=105, tx=5))  # in the gap
                await node.new_head(110)  # a gap: a backfill the node refuses
                await until(lambda: len(asked) >= 3, "the backfill asked again")
                assert not cursor_at_least(mon, 100)  # the gap kept
                # live delivery goes on meanwhile
                live = order_filled(block=111, tx=7)
                node.logs.append(live)
                await node.notify("logs", live)
                await node.new_head(111)
                await until(lambda: len(sink.events) >= 1, "the live trade", timeout=5.0)
                spacing = [b - a for a, b in itertools.pairwise(asked)]
                assert min(spacing) >= 0.05 * 0.5, spacing  # not hammered
                del node.rpc["eth_getLogs"]  # the quota is back: the gap fetched soon
                await until(lambda: cursor_at_least(mon, 109), "the gap fetched",
                            timeout=5.0)
                assert len(sink.events) == 2
                node.rpc["eth_getLogs"] = spent  # spent again: a stop does not wait
                await node.new_head(120)
                n = len(asked)
                await until(lambda: len(asked) > n, "refused again")
                t = time.monotonic()
                await mon.stop()
                assert time.monotonic() - t < 5.0
            await run_monitor(node, tmp_path, body)
    asyncio.run(go())
