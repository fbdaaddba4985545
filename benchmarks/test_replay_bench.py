"""Replay a busy recording at maximum speed to 10 WebSocket subscribers over loopback.

Each subscriber holds ``newHeads`` and a ``logs`` subscription filtered on OrderFilled of a
few active wallets. The clients live in another process (so they do not share the
server's core); the figure is blocks per second from the start of the replay until every
client has received every notification it is owed (the count is checked exactly).

Run: ``.venv/bin/python -m pytest benchmarks/test_replay_bench.py --benchmark-enable``.
Target: >= 500 blocks/s.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import pytest

from monitor.polymarket import ORDER_FILLED_TOPICS
from simulator.filters import BlockIndex, LogFilter
from simulator.recording import Recording
from simulator.server import Simulator

BLOCKS = 300
CLIENTS = 10
WALLETS_PER_CLIENT = 5


@pytest.fixture(scope="module")
def busy() -> Recording:
    from simulator.synth import synthesise

    return synthesise("busy", seed=1, blocks=BLOCKS)


def _filters(rec: Recording) -> list[dict[str, Any]]:
    makers = Counter(lg["topics"][2] for b in rec.blocks for lg in b.logs
                     if lg["topics"] and lg["topics"][0] in ORDER_FILLED_TOPICS)
    top = [m for m, _ in makers.most_common(CLIENTS * WALLETS_PER_CLIENT)]
    return [{"topics": [list(ORDER_FILLED_TOPICS), None,
                        top[i * WALLETS_PER_CLIENT:(i + 1) * WALLETS_PER_CLIENT]]}
            for i in range(CLIENTS)]


def _clients(url: str, filters: list[dict[str, Any]], expected: list[int],
             pipe: Connection) -> None:
    """Client process: subscribe, say ready, count frames until each has its due."""
    import json

    import aiohttp

    async def one(session: aiohttp.ClientSession, flt: dict[str, Any], want: int,
                  ready: asyncio.Event, counts: list[int], idx: int) -> None:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                          "params": ["newHeads"]}))
            await ws.receive()
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "eth_subscribe",
                                          "params": ["logs", flt]}))
            await ws.receive()
            counts[idx] = 0
            ready.set()
            while counts[idx] < want:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"client {idx}: {msg.type}")
                counts[idx] += 1

    async def main() -> None:
        counts = [-1] * len(filters)
        async with aiohttp.ClientSession() as session:
            readies = [asyncio.Event() for _ in filters]
            tasks = [asyncio.create_task(one(session, f, w, r, counts, i))
                     for i, (f, w, r) in enumerate(zip(filters, expected, readies, strict=True))]
            await asyncio.gather(*(r.wait() for r in readies))
            pipe.send("ready")
            await asyncio.wait_for(asyncio.gather(*tasks), 300)
            pipe.send(("done", time.monotonic_ns(), counts))

    asyncio.run(main())


def _replay_once(rec: Recording) -> dict[str, Any]:
    filters = _filters(rec)
    expected = []
    for f in filters:
        flt = LogFilter.parse(f)
        expected.append(len(rec.blocks) + sum(len(flt.select(BlockIndex(b.logs)))
                                              for b in rec.blocks))

    async def main() -> dict[str, Any]:
        async with Simulator(rec, speed=1e9, autostart=False) as sim:
            ctx = mp.get_context("spawn")
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_clients, args=(sim.urls["ws"], filters, expected, child))
            proc.start()
            loop = asyncio.get_running_loop()
            msg = await loop.run_in_executor(None, parent.recv)
            assert msg == "ready"
            t0 = time.monotonic_ns()
            sim.begin(t0)
            done = await loop.run_in_executor(None, parent.recv)
            proc.join(30)
            assert done[0] == "done"
            elapsed = (done[1] - t0) / 1e9
            assert done[2] == expected, "every notification delivered, exactly"
            assert sim.chain.published == len(rec.blocks)
            return {"elapsed_s": elapsed, "blocks_per_s": len(rec.blocks) / elapsed,
                    "notifications": sum(expected)}

    return asyncio.run(main())


@pytest.mark.slow
def test_replay_busy_recording_to_10_subscribers(benchmark: Any, busy: Recording) -> None:
    results: list[dict[str, Any]] = []

    def run() -> None:
        results.append(_replay_once(busy))

    benchmark.pedantic(run, rounds=3, iterations=1)
    best = max(r["blocks_per_s"] for r in results)
    benchmark.extra_info.update(blocks=len(busy.blocks), clients=CLIENTS,
                                notifications=results[0]["notifications"],
                                blocks_per_s=[round(r["blocks_per_s"]) for r in results])
    print(f"\nreplay: {len(busy.blocks)} busy blocks to {CLIENTS} subscribers, "
          f"{results[0]['notifications']} notifications: "
          f"{', '.join(str(round(r['blocks_per_s'])) for r in results)} blocks/s")
    assert best >= 500, f"{best:.0f} blocks/s is below the 500 blocks/s target"
