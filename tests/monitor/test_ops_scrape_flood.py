"""The ops server against a client asking /metrics in a loop: the monitors are read at
most once every SCRAPE_EVERY_S, whatever the number of requests."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import aiohttp

from monitor.ops_server import OpsServer


class _Counted:
    """Stands in for a monitor: counts how often a scrape reads it (then fails, which
    the collector logs and skips)."""

    def __init__(self) -> None:
        self.reads = 0

    def tasks_alive(self) -> dict[str, bool]:
        self.reads += 1
        raise RuntimeError("read")

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


def test_a_client_scraping_in_a_loop_does_not_read_the_monitor_each_time() -> None:
    """500 /metrics on 10 connections: each read the monitors on the event loop (SQLite
    counts of the outbox among it), 500 reads, the monitor's delivery held while a local
    client asked. One read serves them all within SCRAPE_EVERY_S; once it has passed the
    next request reads again."""
    mon = _Counted()
    now = [100.0]

    async def main() -> None:
        # (the clock is a parameter of the fixed server: the test fails on the reads,
        # not on the parameter, before it)
        clocked = "clock" in inspect.signature(OpsServer).parameters
        ops = OpsServer([({}, mon)], **({"clock": lambda: now[0]} if clocked else {}))
        await ops.start()
        try:
            async with aiohttp.ClientSession() as http:
                async def many(n: int) -> None:
                    for _ in range(n):
                        async with http.get(f"{ops.url}/metrics") as r:
                            assert r.status == 200
                            await r.read()

                await asyncio.gather(*(many(50) for _ in range(10)))
                assert mon.reads == 1
                now[0] += ops.scrape_every_s
                await many(3)
                assert mon.reads == 2
        finally:
            await ops.stop()

    asyncio.run(main())
