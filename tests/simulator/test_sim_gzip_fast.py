"""The node compresses its HTTP answers at zlib's fastest level: the compression runs on
the event loop the replay (and, in virtual time, the monitor) shares, and level 6 cost
~2-3x the CPU on the answers a monitor asks for. The answer stays the same JSON."""

from __future__ import annotations

import asyncio
import gzip
import json

from simulator.server import Simulator
from tests.simulator.node_fixtures import make_recording
from tests.simulator.test_sim_http_gzip import call, send

#: RFC 1952 XFL (byte 8 of the header): 4 = "compressor used the fastest algorithm"
_XFL_FASTEST = 4


def test_small_and_long_answers_are_compressed_at_the_fastest_level() -> None:
    rec = make_recording(20, trades_per_block=5)
    logs_query = {"jsonrpc": "2.0", "id": 3, "method": "eth_getLogs",
                  "params": [{"fromBlock": hex(rec.blocks[0].number),
                              "toBlock": hex(rec.blocks[-1].number)}]}

    async def main() -> None:
        async with Simulator(rec, speed=1e6) as sim:
            await sim.wait_published(20)
            url = sim.urls["http"]
            small = await send(url, call({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}))
            long = await send(url, call(logs_query))
            plain = await send(url, call(logs_query), headers=())
            for a in (small, long):
                assert a.gzipped and a.body[:2] == b"\x1f\x8b"
                assert a.body[8] == _XFL_FASTEST, a.body[:10]
            assert json.loads(small.text())["result"] == "0x89"
            assert json.loads(gzip.decompress(long.body)) == json.loads(plain.body)

    asyncio.run(asyncio.wait_for(main(), 60))
